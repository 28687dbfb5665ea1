-- Deletes a job, its schedule entry and its run history.
-- KEYS[1]  group prefix
-- KEYS[2]  job index hash (job id -> group)   } absent on a Redis Cluster (other slots):
-- KEYS[3]  job id set                          } the caller removes the job after the script
-- ARGV[1]  job id
-- Reads:   runs:<job> (the job's runs); active (their unacknowledged entries); F_EXECUTOR
--          of those (a broadcast run's entry is in stream:<executor>)
-- Writes:  deletes job:<id>, its schedule / jobs / last / inflight members, its job index and
--          job id set members, its run records, logs and run index, and its runs' group-runs
--          members; its runs still in the stream are acknowledged and their entries deleted
--          (so a worker finishing one afterwards records nothing), and leave retry and active
-- Reply:   1 if the job existed, else 0.
local id = ARGV[1]
if redis.call('DEL', P .. K_JOB .. id) == 0 then return 0 end
redis.call('ZREM', P .. K_SCHEDULE, id)
redis.call('ZREM', P .. K_JOBS, id)
redis.call('ZREM', P .. K_LAST, id)
redis.call('HDEL', P .. K_INFLIGHT, id)
if KEYS[2] then
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
local stream = P .. K_STREAM
local runs_key = P .. K_RUNS .. id
local runs = redis.call('ZRANGE', runs_key, 0, -1)
for _, r in ipairs(runs) do
  local entry = redis.call('HGET', P .. K_ACTIVE, r)
  if entry then
    -- A broadcast run's entry is in its executor's own stream.
    local s, retry = stream, P .. K_RETRY
    local ex = redis.call('HGET', P .. K_RUN .. r, F_EXECUTOR)
    if ex then s, retry = P .. K_EXECUTOR_STREAM .. ex, P .. K_EXECUTOR_RETRY .. ex end
    redis.call('XACK', s, CONSUMER_GROUP, entry)
    redis.call('XDEL', s, entry)
    redis.call('ZREM', retry, entry)
    redis.call('HDEL', P .. K_ACTIVE, r)
  end
  redis.call('DEL', P .. K_RUN .. r, P .. K_LOG .. r)
end
-- Out of the group's index too, a bounded number of members per ZREM.
for from = 1, #runs, 1000 do
  redis.call('ZREM', P .. K_GROUP_RUNS, unpack(runs, from, math.min(from + 999, #runs)))
end
redis.call('DEL', runs_key)
return 1
