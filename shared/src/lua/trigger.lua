-- Enqueues runs of a job by hand (manual trigger, child job, dead-letter requeue, bulk).
-- KEYS[1]  group prefix
-- ARGV[1]  group name
-- ARGV[2]  job id
-- ARGV[3]  params override JSON or ""
-- ARGV[4]  trigger kind (recorded on the run unless it is a plain "manual" one)
-- ARGV[5]  parent run id or ""
-- ARGV[6]  events channel (a `replace` tells the executor of the replaced run)
-- ARGV[7]  how many runs (bulk; only for jobs that allow overlap; at most 2000 per call)
-- ARGV[8]  shard count of a sharded job ("" = not resolved: error "SHARDED" if the job is
--          sharded)
-- ARGV[9]  index of the first shard to enqueue
-- ARGV[10..] the parameter (JSON or "") of each shard to enqueue: a single run becomes one
--          run `<run>-s<k>` per shard
-- The job's concurrency policy applies as to scheduled ticks: under `forbid` a trigger while
-- a run is in flight is refused; under `replace` that run is cancelled. Per run: one XADD
-- and one HSET of what cannot be derived (the run id gives the job and the instant, the entry
-- id the enqueue time); the run indexes, the active map and the counter are written once
-- per call.
-- Reads:   job:<id> (`version`, `concurrency`, `routing`); inflight and the in-flight run's
--          record
-- Writes:  seq (+ count); the stream (E_RUN, E_VERSION, and where they apply E_PARAMS,
--          E_SHARD, E_SHARDS, E_SHARD_PARAM); run record (F_STATUS 'queued', F_ENTRY,
--          F_VERSION, and where they apply F_TRIGGER, F_PARAMS, F_PARENT_RUN, F_SHARD,
--          F_SHARDS, F_SHARD_PARAM); runs:<job> and group-runs; active; inflight (forbid /
--          replace); a `replace` cancels the run in flight (see cancel_run)
-- A broadcast job's run becomes one run `<run>-e<executor>` per live, enabled executor
-- (see live_executors), each in that executor's own stream (F_EXECUTOR, F_WORKER), or one
-- `skipped` run `<run>` when no executor is live.
-- Reply:   the run id (a list of one) for a single run, an empty list for a bulk, a list of
--          shard runs for a sharded job, of executor runs for a broadcast job; errors
--          "NOTFOUND" (no such job), "SHARDED" (the shards must be spelled out), "INFLIGHT <run>" (forbid: a run is in flight),
--          "BULK" (a bulk trigger of a job that does not allow overlap).
local group, id, params, kind, parent = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local job = redis.call('HMGET', P .. K_JOB .. id, 'version', 'concurrency', 'routing')
local version, policy = job[1], job[2]
if not version then return redis.error_reply('NOTFOUND') end
if ARGV[8] == '' and job[3] and string.find(job[3], '"sharded"', 1, true) then
  -- The caller did not spell out the shards of this sharded job: it reads them and retries.
  return redis.error_reply('SHARDED')
end
local now = now_ms()
local count = tonumber(ARGV[7] or '1')
if count > 1 and policy ~= 'allow' then
  return redis.error_reply('BULK bulk triggers need concurrency `allow`')
end
if count > 1 and job[3] and string.find(job[3], '"broadcast"', 1, true) then
  return redis.error_reply('BULK bulk triggers need routing `any`')
end
local current = policy ~= 'allow' and redis.call('HGET', P .. K_INFLIGHT, id)
if current and run_active(P, current) then
  if policy == 'forbid' then return redis.error_reply('INFLIGHT ' .. current) end
  cancel_run(P, group, current, ARGV[6], 'replaced by a manual run', now)
end
local last = redis.call('INCRBY', P .. K_SEQ, count)
local stream = P .. K_STREAM
local out, index, active = {}, {}, {}
local shards, first = tonumber(ARGV[8]) or 0, tonumber(ARGV[9]) or 0
local plain = params == '' and parent == '' and kind == 'manual'
local base = id .. '-m' .. now .. '-'
local key_base = P .. K_RUN .. base
-- Notes a run written to the stream for the index, the active map and the answer.
local function enqueued(run, e)
  index[#index + 1] = now
  index[#index + 1] = run
  active[#active + 1] = run
  active[#active + 1] = e
  out[#out + 1] = run
end
if job[3] and string.find(job[3], '"broadcast"', 1, true) then
  local run = base .. last
  local live = live_executors(P, now)
  local extra = {}
  if not plain then extra = {F_TRIGGER, kind} end
  if params ~= '' then extra[#extra + 1] = F_PARAMS; extra[#extra + 1] = params end
  if parent ~= '' then extra[#extra + 1] = F_PARENT_RUN; extra[#extra + 1] = parent end
  if #live == 0 then
    redis.call('HSET', key_base .. last, F_STATUS, 'skipped', F_VERSION, version,
      F_FINISHED_AT, now, F_ERROR, 'broadcast: no live executor in the group', unpack(extra))
    index = {now, run}
    out = {run}
  end
  for _, ex in ipairs(live) do
    local erun = run .. '-e' .. ex
    local e
    if params ~= '' then
      e = redis.call('XADD', P .. K_EXECUTOR_STREAM .. ex, '*', E_RUN, erun, E_VERSION,
        version, E_PARAMS, params)
    else
      e = redis.call('XADD', P .. K_EXECUTOR_STREAM .. ex, '*', E_RUN, erun, E_VERSION, version)
    end
    redis.call('HSET', key_base .. last .. '-e' .. ex, F_STATUS, 'queued', F_ENTRY, e,
      F_VERSION, version, F_EXECUTOR, ex, F_WORKER, ex, unpack(extra))
    enqueued(erun, e)
  end
  redis.call('ZADD', P .. K_RUNS .. id, unpack(index))
  redis.call('ZADD', P .. K_GROUP_RUNS, unpack(index))
  if #active > 0 then redis.call('HSET', P .. K_ACTIVE, unpack(active)) end
  return out
end
for n = last - count + 1, last do
  local ns = tostring(n)
  local run = base .. ns
  local rk = key_base .. ns
  local e
  if shards > 0 then
    for a = 10, #ARGV do
      local s = first + a - 10
      local srun, sp = run .. '-s' .. s, ARGV[a]
      local fields = {E_RUN, srun, E_VERSION, version, E_SHARD, s, E_SHARDS, shards}
      local record = {F_STATUS, 'queued', F_VERSION, version, F_TRIGGER, kind, F_SHARD, s,
        F_SHARDS, shards}
      if sp ~= '' then
        fields[#fields + 1] = E_SHARD_PARAM; fields[#fields + 1] = sp
        record[#record + 1] = F_SHARD_PARAM; record[#record + 1] = sp
      end
      if params ~= '' then
        fields[#fields + 1] = E_PARAMS; fields[#fields + 1] = params
        record[#record + 1] = F_PARAMS; record[#record + 1] = params
      end
      if parent ~= '' then
        record[#record + 1] = F_PARENT_RUN; record[#record + 1] = parent
      end
      local se = redis.call('XADD', stream, '*', unpack(fields))
      record[#record + 1] = F_ENTRY; record[#record + 1] = se
      redis.call('HSET', rk .. '-s' .. s, unpack(record))
      enqueued(srun, se)
    end
  elseif plain then
    -- The common case, without building argument tables.
    e = redis.call('XADD', stream, '*', E_RUN, run, E_VERSION, version)
    redis.call('HSET', rk, F_STATUS, 'queued', F_ENTRY, e, F_VERSION, version)
  else
    if params ~= '' then
      e = redis.call('XADD', stream, '*', E_RUN, run, E_VERSION, version, E_PARAMS, params)
    else
      e = redis.call('XADD', stream, '*', E_RUN, run, E_VERSION, version)
    end
    redis.call('HSET', rk, F_STATUS, 'queued', F_ENTRY, e, F_VERSION, version, F_TRIGGER, kind)
    if params ~= '' then redis.call('HSET', rk, F_PARAMS, params) end
    if parent ~= '' then redis.call('HSET', rk, F_PARENT_RUN, parent) end
  end
  if shards == 0 then enqueued(run, e) end
end
redis.call('ZADD', P .. K_RUNS .. id, unpack(index))
redis.call('ZADD', P .. K_GROUP_RUNS, unpack(index))
redis.call('HSET', P .. K_ACTIVE, unpack(active))
if policy ~= 'allow' then redis.call('HSET', P .. K_INFLIGHT, id, out[#out]) end
if count > 1 then return {} end
return out
