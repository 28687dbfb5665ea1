-- Marks delivered runs as running before a later attempt starts (batched per read).
-- KEYS[1]  group prefix
-- ARGV[1]  worker id
-- ARGV[2]  how many interrupted attempts make a run poison
-- ARGV[3..] pairs: run id, attempt
-- Reads:   run record (F_STATUS; F_HISTORY, F_ATTEMPT, F_WORKER, F_STARTED_AT of a run still
--          marked running, i.e. reclaimed from an executor that stopped mid-attempt)
-- Writes:  run record: F_HISTORY (an `interrupted` attempt), then F_STATUS 'running',
--          F_STARTED_AT, F_WORKER, F_ATTEMPT; deletes F_RETRY_AT, F_FINISHED_AT,
--          F_DURATION_MS, F_CODE; last (a job whose newest run it is: one ZADD per call)
-- Reply:   {now, verdict, ...}: "ok" to run it; "gone" when the run record is missing;
--          "poison" when its executors died during that many started attempts (it must not
--          run again); otherwise the run's status when it must not run (e.g. "cancelled").
local worker = ARGV[1]
local poison = tonumber(ARGV[2])
local now = now_ms()
local out = {tostring(now)}
local last = {}

-- A run still marked running was reclaimed from an executor that stopped mid-attempt: keep
-- that attempt in the history. Returns how many attempts were interrupted so far.
local function note_interrupted(rk)
  local f = redis.call('HMGET', rk, F_HISTORY, F_ATTEMPT, F_WORKER, F_STARTED_AT)
  local list = f[1] and cjson.decode(f[1]) or {}
  list[#list + 1] = {attempt = tonumber(f[2]), status = 'interrupted', worker = f[3],
    started_at = tonumber(f[4]), error = 'its executor stopped during the attempt'}
  while #list > 25 do table.remove(list, 1) end
  redis.call('HSET', rk, F_HISTORY, cjson.encode(list))
  local n = 0
  for _, a in ipairs(list) do
    if a.status == 'interrupted' then n = n + 1 end
  end
  return n
end

for i = 3, #ARGV, 2 do
  local rk = P .. K_RUN .. ARGV[i]
  local st = redis.call('HGET', rk, F_STATUS)
  if not st then
    out[#out + 1] = 'gone'
  elseif st == 'queued' or st == 'running' or st == 'failed' or st == 'timed_out' then
    if st == 'running' and note_interrupted(rk) >= poison then
      out[#out + 1] = 'poison'
    else
      redis.call('HSET', rk, F_STATUS, 'running', F_STARTED_AT, now, F_WORKER, worker,
        F_ATTEMPT, ARGV[i + 1])
      note_last(P, ARGV[i], 'running', last)
      redis.call('HDEL', rk, F_RETRY_AT, F_FINISHED_AT, F_DURATION_MS, F_CODE)
      out[#out + 1] = 'ok'
    end
  else
    out[#out + 1] = st
  end
end
write_last(P, last)
return out
