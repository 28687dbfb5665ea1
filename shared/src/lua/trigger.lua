-- Enqueues runs of a job by hand (manual trigger, child job, dead-letter requeue, bulk).
-- KEYS[1] group prefix
-- ARGV[1] group, ARGV[2] job id, ARGV[3] params override JSON or "", ARGV[4] trigger kind,
-- ARGV[5] parent run id or "", ARGV[6] events channel, ARGV[7] how many runs (bulk; only
-- for jobs that allow overlap; at most 2000 per call)
-- The job's concurrency policy applies as to scheduled ticks: under `forbid` a trigger while
-- a run is in flight is refused (error "INFLIGHT <run>"); under `replace` that run is
-- cancelled. Per run: one XADD and one HSET of what cannot be derived (the run id gives the
-- job and the instant, the entry id the enqueue time); the index, the active map and the
-- counter are written once per call.
-- Returns the run id (a list of one) for a single run, an empty list for a bulk; error
-- "NOTFOUND" if the job does not exist.
local P = KEYS[1]
local group, id, params, kind, parent = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local job = redis.call('HMGET', P .. 'job:' .. id, 'version', 'concurrency')
local version, policy = job[1], job[2]
if not version then return redis.error_reply('NOTFOUND') end
local now = now_ms()
local count = tonumber(ARGV[7] or '1')
if count > 1 and policy ~= 'allow' then
  return redis.error_reply('INFLIGHT bulk triggers need concurrency `allow`')
end
local current = policy ~= 'allow' and redis.call('HGET', P .. 'inflight', id)
if current and run_active(P, current) then
  if policy == 'forbid' then return redis.error_reply('INFLIGHT ' .. current) end
  cancel_run(P, group, current, ARGV[6], 'replaced by a manual run', now)
end
local last = redis.call('INCRBY', P .. 'seq', count)
local stream = P .. 'stream'
local out, index, active = {}, {}, {}
local plain = params == '' and parent == '' and kind == 'manual'
local base = id .. '-m' .. now .. '-'
local key_base = P .. 'run:' .. base
for n = last - count + 1, last do
  local ns = tostring(n)
  local run = base .. ns
  local rk = key_base .. ns
  local e
  if plain then
    -- The common case, without building argument tables.
    e = redis.call('XADD', stream, '*', 'run', run, 'v', version)
    redis.call('HSET', rk, 'status', 'queued', 'entry', e, 'v', version)
  else
    if params ~= '' then
      e = redis.call('XADD', stream, '*', 'run', run, 'v', version, 'p', params)
    else
      e = redis.call('XADD', stream, '*', 'run', run, 'v', version)
    end
    redis.call('HSET', rk, 'status', 'queued', 'entry', e, 'v', version, 'trigger', kind)
    if params ~= '' then redis.call('HSET', rk, 'params', params) end
    if parent ~= '' then redis.call('HSET', rk, 'parent_run', parent) end
  end
  index[#index + 1] = now
  index[#index + 1] = run
  active[#active + 1] = run
  active[#active + 1] = e
  out[#out + 1] = run
end
redis.call('ZADD', P .. 'runs:' .. id, unpack(index))
redis.call('HSET', P .. 'active', unpack(active))
if policy ~= 'allow' then redis.call('HSET', P .. 'inflight', id, out[#out]) end
if count > 1 then return {} end
return out
