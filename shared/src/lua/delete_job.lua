-- Deletes a job, its schedule entry and its run history.
-- KEYS[1] group prefix, KEYS[2] job index hash, KEYS[3] job id set
-- ARGV[1] job id
-- Returns 1 if the job existed. Entries still in the stream are acknowledged by the worker
-- that finds their job gone.
local P = KEYS[1]
local id = ARGV[1]
if redis.call('DEL', P .. 'job:' .. id) == 0 then return 0 end
redis.call('ZREM', P .. 'schedule', id)
redis.call('ZREM', P .. 'jobs', id)
redis.call('HDEL', P .. 'inflight', id)
redis.call('HDEL', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
local runs = redis.call('ZRANGE', P .. 'runs:' .. id, 0, -1)
for _, r in ipairs(runs) do
  redis.call('DEL', P .. 'run:' .. r, P .. 'log:' .. r)
end
redis.call('DEL', P .. 'runs:' .. id)
return 1
