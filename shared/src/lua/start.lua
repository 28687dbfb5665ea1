-- Marks delivered runs as running (batched per read).
-- KEYS[1] group prefix
-- ARGV[1] worker id, ARGV[2] how many interrupted attempts make a run poison, then pairs:
-- run id, attempt
-- Returns {now, verdict, ...}: "ok" to run it; "gone" when the run record is missing;
-- "poison" when its executors died during that many started attempts (it must not run
-- again); otherwise the run's status when it must not run (e.g. "cancelled" while queued).
local P = KEYS[1]
local worker = ARGV[1]
local poison = tonumber(ARGV[2])
local now = now_ms()
local out = {tostring(now)}

-- A run still marked running was reclaimed from an executor that stopped mid-attempt: keep
-- that attempt in the history. Returns how many attempts were interrupted so far.
local function note_interrupted(rk)
  local f = redis.call('HMGET', rk, 'history', 'attempt', 'worker', 'started_at')
  local list = f[1] and cjson.decode(f[1]) or {}
  list[#list + 1] = {attempt = tonumber(f[2]), status = 'interrupted', worker = f[3],
    started_at = tonumber(f[4]), error = 'its executor stopped during the attempt'}
  while #list > 25 do table.remove(list, 1) end
  redis.call('HSET', rk, 'history', cjson.encode(list))
  local n = 0
  for _, a in ipairs(list) do
    if a.status == 'interrupted' then n = n + 1 end
  end
  return n
end

for i = 3, #ARGV, 2 do
  local rk = P .. 'run:' .. ARGV[i]
  local st = redis.call('HGET', rk, 'status')
  if not st then
    out[#out + 1] = 'gone'
  elseif st == 'queued' or st == 'running' or st == 'failed' or st == 'timed_out' then
    if st == 'running' and note_interrupted(rk) >= poison then
      out[#out + 1] = 'poison'
    else
      redis.call('HSET', rk, 'status', 'running', 'started_at', now, 'worker', worker,
        'attempt', ARGV[i + 1])
      redis.call('HDEL', rk, 'retry_at', 'finished_at', 'duration_ms', 'code')
      out[#out + 1] = 'ok'
    end
  else
    out[#out + 1] = st
  end
end
return out
