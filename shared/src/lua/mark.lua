-- Marks runs `running` once they have run a while (the worker skips this write for runs that
-- finish quickly: their record goes from queued to final in one write).
-- KEYS[1] group prefix
-- ARGV[1] worker id, then triples: run id, attempt, ms since the attempt started
local P = KEYS[1]
local now = now_ms()
for i = 2, #ARGV, 3 do
  local rk = P .. 'run:' .. ARGV[i]
  if redis.call('HGET', rk, 'status') == 'queued' then
    redis.call('HSET', rk, 'status', 'running', 'started_at', now - tonumber(ARGV[i + 2]),
      'worker', ARGV[1], 'attempt', ARGV[i + 1])
  end
end
return 1
