-- Enqueues one run of a job by hand (manual trigger, child job, dead-letter requeue).
-- KEYS[1] group prefix
-- ARGV[1] group, ARGV[2] job id, ARGV[3] params override JSON or "", ARGV[4] trigger kind,
-- ARGV[5] parent run id or "", ARGV[6] events channel
-- The job's concurrency policy applies as to scheduled ticks: under `forbid` a trigger while
-- a run is in flight is refused (error "INFLIGHT <run>"); under `replace` that run is
-- cancelled.
-- Returns the run id; error "NOTFOUND" if the job does not exist.
local P = KEYS[1]
local group, id, params, kind, parent = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local job = redis.call('HMGET', P .. 'job:' .. id, 'version', 'concurrency')
local version, policy = job[1], job[2]
if not version then return redis.error_reply('NOTFOUND') end
local now = now_ms()
local current = policy ~= 'allow' and redis.call('HGET', P .. 'inflight', id)
if current and run_active(P, current) then
  if policy == 'forbid' then return redis.error_reply('INFLIGHT ' .. current) end
  cancel_run(P, group, current, ARGV[6], 'replaced by a manual run', now)
end
local n = redis.call('INCR', P .. 'seq')
local run = id .. '-m' .. now .. '-' .. n
local fields = {'run', run, 'job', id, 'v', version, 'at', now}
if params ~= '' then
  fields[#fields + 1] = 'p'
  fields[#fields + 1] = params
end
local e = redis.call('XADD', P .. 'stream', '*', unpack(fields))
local rk = P .. 'run:' .. run
redis.call('HSET', rk, 'id', run, 'job_id', id, 'job_version', version, 'group', group,
  'status', 'queued', 'attempt', 0, 'scheduled_at', now, 'enqueued_at', now, 'entry', e,
  'trigger', kind)
if params ~= '' then redis.call('HSET', rk, 'params', params) end
if parent ~= '' then redis.call('HSET', rk, 'parent_run', parent) end
redis.call('HSET', P .. 'active', e, run)
redis.call('ZADD', P .. 'runs:' .. id, now, run)
if policy ~= 'allow' then redis.call('HSET', P .. 'inflight', id, run) end
return run
