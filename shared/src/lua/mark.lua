-- Marks runs `running` once they have run a while (the worker skips this write for runs that
-- finish quickly: their record goes from queued to final in one write).
-- KEYS[1]  group prefix
-- ARGV[1]  worker id
-- ARGV[2..] triples: run id, attempt, ms since the attempt started
-- Reads:   run record (F_STATUS); runs:<job> (whether it is its job's newest run)
-- Writes:  a still queued run's record: F_STATUS 'running', F_STARTED_AT, F_WORKER, F_ATTEMPT;
--          last (a job whose newest run it is: one ZADD per call)
-- Reply:   1.
local now = now_ms()
local last = {}
for i = 2, #ARGV, 3 do
  local rk = P .. K_RUN .. ARGV[i]
  if redis.call('HGET', rk, F_STATUS) == 'queued' then
    redis.call('HSET', rk, F_STATUS, 'running', F_STARTED_AT, now - tonumber(ARGV[i + 2]),
      F_WORKER, ARGV[1], F_ATTEMPT, ARGV[i + 1])
    note_last(P, ARGV[i], 'running', last)
  end
end
write_last(P, last)
return 1
