-- Creates or updates a job definition atomically (invariants 8, 9).
-- KEYS[1]  group prefix
-- KEYS[2]  job index hash (job id -> group)   } absent on a Redis Cluster (other slots):
-- KEYS[3]  job id set                          } the caller writes them before the script
-- KEYS[4]  group set                           }
-- ARGV[1]  job id
-- ARGV[2]  group name
-- ARGV[3]  "create" | "update"
-- ARGV[4]  expected version (update; "" = any)
-- ARGV[5]  next fire: "" (unschedule), "keep" (leave the schedule score alone) or ms; when
--          it changes on an update, runs fired ahead for later instants are recalled
-- ARGV[6..] field, value pairs of the definition
-- Reads:   job:<id> (existence, `version`); runs:<job>, run records (F_STATUS, F_ENTRY,
--          F_EXECUTOR) and the stream's (or a broadcast run's own stream's) pending list
--          (recall)
-- Writes:  job:<id> (the fields; `version` + 1); on create: jobs, last (code 0: no run), the
--          job index, the job id set, the group set, the consumer group (created at the
--          stream's start); schedule; on a recall: deletes the recalled run records, their
--          runs:<job>, group-runs and active members, and their stream entries no worker has
--          read yet, and sets the job's last code from its newest run left
-- Reply:   the new version; errors "EXISTS" (create), "NOTFOUND" and "CONFLICT" (update).
local id, group, mode = ARGV[1], ARGV[2], ARGV[3]
local jk = P .. K_JOB .. id
local exists = redis.call('EXISTS', jk) == 1
if mode == 'create' and exists then return redis.error_reply('EXISTS') end
if mode == 'update' then
  if not exists then return redis.error_reply('NOTFOUND') end
  if ARGV[4] ~= '' and redis.call('HGET', jk, 'version') ~= ARGV[4] then
    return redis.error_reply('CONFLICT')
  end
end
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', jk, unpack(fields))
local version = redis.call('HINCRBY', jk, 'version', 1)
local stream = P .. K_STREAM
if mode == 'create' then
  redis.call('ZADD', P .. K_JOBS, 0, id)
  redis.call('ZADD', P .. K_LAST, 0, id)
  if KEYS[2] then
    redis.call('HSET', KEYS[2], id, group)
    redis.call('ZADD', KEYS[3], 0, id)
    redis.call('SADD', KEYS[4], group)
  end
  -- Start the consumer group at the stream's beginning so no run fired before the first
  -- worker arrives is missed.
  pcall(redis.call, 'XGROUP', 'CREATE', stream, CONSUMER_GROUP, '0', 'MKSTREAM')
end
if ARGV[5] == '' then
  redis.call('ZREM', P .. K_SCHEDULE, id)
elseif ARGV[5] ~= 'keep' then
  redis.call('ZADD', P .. K_SCHEDULE, ARGV[5], id)
end
if mode == 'update' and ARGV[5] ~= 'keep' then
  -- Ticks fired ahead of their instant under the old timing are recalled: they never were
  -- (a worker holding one finds its record gone and drops it), so they can fire again.
  -- Ticks less than 250 ms away are left to run: a worker re-checks a held run 20 ms before
  -- its tick and then starts it, so recalling one that close could race that start (the run
  -- would execute with its record gone).
  local now = now_ms()
  local runs_key = P .. K_RUNS .. id
  local recalled = false
  for _, run in ipairs(redis.call('ZRANGE', runs_key, '(' .. (now + 250), '+inf', 'BYSCORE')) do
    local rk = P .. K_RUN .. run
    local f = redis.call('HMGET', rk, F_STATUS, F_ENTRY, F_EXECUTOR)
    if f[1] == 'queued' then
      redis.call('DEL', rk)
      redis.call('ZREM', runs_key, run)
      redis.call('ZREM', P .. K_GROUP_RUNS, run)
      redis.call('HDEL', P .. K_ACTIVE, run)
      -- A broadcast run's entry is in its executor's own stream.
      local s = stream
      if f[3] then s = P .. K_EXECUTOR_STREAM .. f[3] end
      if f[2] and (not f[3] or has_group(s))
          and not redis.call('XPENDING', s, CONSUMER_GROUP, f[2], f[2], 1)[1] then
        redis.call('XDEL', s, f[2])
      end
      recalled = true
    end
  end
  if recalled then reindex_last(P, id) end
end
return version
