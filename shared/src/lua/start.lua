-- Marks delivered runs as running (batched per read).
-- KEYS[1] group prefix
-- ARGV[1] worker id, then pairs: run id, attempt
-- Returns {now, verdict, ...}: "ok" to run it; "gone" when the run record is missing;
-- otherwise the run's status when it must not run (e.g. "cancelled" while queued).
local P = KEYS[1]
local worker = ARGV[1]
local now = now_ms()
local out = {tostring(now)}
for i = 2, #ARGV, 2 do
  local rk = P .. 'run:' .. ARGV[i]
  local st = redis.call('HGET', rk, 'status')
  if not st then
    out[#out + 1] = 'gone'
  elseif st == 'queued' or st == 'running' or st == 'failed' or st == 'timed_out' then
    redis.call('HSET', rk, 'status', 'running', 'started_at', now, 'worker', worker,
      'attempt', ARGV[i + 1])
    redis.call('HDEL', rk, 'retry_at', 'finished_at', 'duration_ms', 'code')
    out[#out + 1] = 'ok'
  else
    out[#out + 1] = st
  end
end
return out
