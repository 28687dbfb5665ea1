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
-- ARGV[10] the run id ("" = `<job>-m<ms>-<n>`): a derived id (a child job's run,
--          `<child>-c<parent run>`) is enqueued at most once: when the job's run index holds
--          it (or its shard `-s<first>`) already, nothing is written and the reply is
--          "REPLAYED <run>"
-- ARGV[11] idempotency key or "": a key this job saw within the window answers
--          "REPLAYED <its first run>" and enqueues nothing; else the run id is kept under it
-- ARGV[12] the idempotency window (ms)
-- ARGV[13..] the parameter (JSON or "") of each shard to enqueue: a single run becomes one
--          run `<run>-s<k>` per shard
-- The job's concurrency policy applies as to scheduled ticks: under `forbid` a trigger while
-- a run is in flight is refused; under `replace` that run is cancelled (a replay neither).
-- A sharded job's in-flight marker names the run's base id (without `-s<k>`), and it is in
-- flight while any of its shards is. Per run: one XADD
-- and one HSET of what cannot be derived (the run id gives the job and the instant, the entry
-- id the enqueue time); the run indexes, the active map and the counter are written once
-- per call.
-- Reads:   job:<id> (`version`, `concurrency`, `routing`); inflight and the in-flight run's
--          (or its shards') record; idem:<job>:<key>; runs:<job> (a derived run id)
-- Writes:  seq (+ count, unless the run id is given); the stream (E_RUN, E_VERSION, and where they apply E_PARAMS,
--          E_SHARD, E_SHARDS, E_SHARD_PARAM); run record (F_STATUS 'queued', F_ENTRY,
--          F_VERSION, and where they apply F_TRIGGER, F_PARAMS, F_PARENT_RUN, F_SHARD,
--          F_SHARDS, F_SHARD_PARAM); runs:<job> and group-runs; active; last (queued, if
--          one of these runs is the job's newest); inflight (forbid / replace); a `replace`
--          cancels the run in flight (see cancel_run); idem:<job>:<key> (SET PX the window)
-- A broadcast job's run becomes one run `<run>-e<executor>` per live, enabled executor
-- (see live_executors), each in that executor's own stream (F_EXECUTOR, F_WORKER), or one
-- `skipped` run `<run>` when no executor is live.
-- Reply:   the run id (a list of one) for a single run, an empty list for a bulk, a list of
--          shard runs for a sharded job, of executor runs for a broadcast job; errors
--          "NOTFOUND" (no such job), "SHARDED" (the shards must be spelled out),
--          "INFLIGHT <run>" (forbid: a run is in flight), "BULK" (a bulk trigger of a job
--          that does not allow overlap, or of a broadcast job), "REPLAYED <run>" (nothing
--          enqueued: the run of this derived id or idempotency key).
local group, id, params, kind, parent = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local job = redis.call('HMGET', P .. K_JOB .. id, 'version', 'concurrency', 'routing')
local version, policy = job[1], job[2]
if not version then return redis.error_reply('NOTFOUND') end
local given, idem = ARGV[10] or '', ARGV[11] or ''
local idem_key = idem ~= '' and (P .. K_IDEM .. id .. ':' .. idem)
if idem_key then
  local first_run = redis.call('GET', idem_key)
  if first_run then return redis.error_reply('REPLAYED ' .. first_run) end
end
if given ~= '' then
  local runs_key = P .. K_RUNS .. id
  local s0 = given .. '-s' .. (ARGV[9] ~= '' and ARGV[9] or '0')
  if redis.call('ZSCORE', runs_key, given) then return redis.error_reply('REPLAYED ' .. given) end
  if redis.call('ZSCORE', runs_key, s0) then return redis.error_reply('REPLAYED ' .. s0) end
end
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
local shards, first = tonumber(ARGV[8]) or 0, tonumber(ARGV[9]) or 0
local current = policy ~= 'allow' and redis.call('HGET', P .. K_INFLIGHT, id)
if current and shards > 0 then
  -- A sharded job's marker names a base run: in flight while any of its shards is.
  local live = active_shards(P, current, shards)
  if #live > 0 and policy == 'forbid' then return redis.error_reply('INFLIGHT ' .. live[1]) end
  for _, r in ipairs(live) do
    cancel_run(P, group, r, ARGV[6], 'replaced by a manual run', now)
  end
elseif current and run_active(P, current) then
  if policy == 'forbid' then return redis.error_reply('INFLIGHT ' .. current) end
  cancel_run(P, group, current, ARGV[6], 'replaced by a manual run', now)
end
local last = count
if given == '' then last = redis.call('INCRBY', P .. K_SEQ, count) end
local stream = P .. K_STREAM
local out, index, active = {}, {}, {}
local plain = params == '' and parent == '' and kind == 'manual'
local base = id .. '-m' .. now .. '-'
local key_base = P .. K_RUN .. base
if given ~= '' then
  -- One run of a derived id.
  base = given
  key_base = P .. K_RUN .. given
end
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
  if given ~= '' then run = given end
  local live = live_executors(P, now)
  local extra = {}
  if not plain then extra = {F_TRIGGER, kind} end
  if params ~= '' then extra[#extra + 1] = F_PARAMS; extra[#extra + 1] = params end
  if parent ~= '' then extra[#extra + 1] = F_PARENT_RUN; extra[#extra + 1] = parent end
  if #live == 0 then
    redis.call('HSET', P .. K_RUN .. run, F_STATUS, 'skipped', F_VERSION, version,
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
    redis.call('HSET', P .. K_RUN .. erun, F_STATUS, 'queued', F_ENTRY, e,
      F_VERSION, version, F_EXECUTOR, ex, F_WORKER, ex, unpack(extra))
    enqueued(erun, e)
  end
  redis.call('ZADD', P .. K_RUNS .. id, unpack(index))
  redis.call('ZADD', P .. K_GROUP_RUNS, unpack(index))
  if #active > 0 then redis.call('HSET', P .. K_ACTIVE, unpack(active)) end
  -- The last-status index: these runs are the job's newest unless a tick fired ahead is.
  local top = redis.call('ZRANGE', P .. K_RUNS .. id, -1, -1)[1]
  if top == run or (top and string.sub(top, 1, #run + 2) == run .. '-e') then
    redis.call('ZADD', P .. K_LAST, last_code(#live == 0 and 'skipped' or 'queued'), id)
  end
  if idem_key then redis.call('SET', idem_key, out[1], 'PX', ARGV[12]) end
  return out
end
for n = last - count + 1, last do
  local ns = given == '' and tostring(n) or ''
  local run = base .. ns
  local rk = key_base .. ns
  local e
  if shards > 0 then
    for a = 13, #ARGV do
      local s = first + a - 13
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
-- The job's newest run is queued if it is one of these runs (a tick fired ahead, later
-- than now, may be newer).
local top = redis.call('ZRANGE', P .. K_RUNS .. id, -1, -1)[1]
for _, r in ipairs(out) do
  if r == top then
    redis.call('ZADD', P .. K_LAST, last_code('queued'), id)
    break
  end
end
redis.call('HSET', P .. K_ACTIVE, unpack(active))
if policy ~= 'allow' then
  -- A sharded job's marker names the base run (its shards are checked one by one).
  local marker = out[#out]
  if shards > 0 then marker = base .. (given == '' and tostring(last) or '') end
  redis.call('HSET', P .. K_INFLIGHT, id, marker)
end
if idem_key then redis.call('SET', idem_key, out[1], 'PX', ARGV[12]) end
if count > 1 then return {} end
return out
