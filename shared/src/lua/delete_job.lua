-- Deletes a job, its schedule entry and its run history.
-- KEYS[1] group prefix, KEYS[2] job index hash, KEYS[3] job id set
-- ARGV[1] job id
-- Runs of the job still in the stream are acknowledged and their entries deleted, so a
-- worker finishing one afterwards records nothing.
-- Returns 1 if the job existed.
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
  local entry = redis.call('HGET', P .. 'active', r)
  if entry then
    redis.call('XACK', P .. 'stream', 'workers', entry)
    redis.call('XDEL', P .. 'stream', entry)
    redis.call('ZREM', P .. 'retry', entry)
    redis.call('HDEL', P .. 'active', r)
  end
  redis.call('DEL', P .. 'run:' .. r, P .. 'log:' .. r)
end
redis.call('DEL', P .. 'runs:' .. id)
return 1
