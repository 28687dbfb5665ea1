-- Fires ticks of one group atomically: exactly-once enqueue per tick (invariant 2).
-- KEYS[1]  group prefix
-- ARGV[1]  group name
-- ARGV[2]  fencing token "<replica>|<epoch>" that must hold the group lease, or "" for none
-- ARGV[3]  events channel (to tell executors about runs cancelled by `replace`)
-- ARGV[4]  how early a tick may be fired (ms; it starts at its instant, on the workers)
-- ARGV[5..] per job: id, expected score, next score ("" = unschedule), version, options,
--          n, then n ticks; a tick "~<ms>" is recorded `skipped` (misfire skip) instead of
--          fired. options: the concurrency policy (a = allow, f = forbid, r = replace), then
--          "1" when the schedule is exhausted (the job then disables itself, like a fired
--          @once) or "0", then "s" for a sharded job, whose ticks are followed by its shard
--          count N and N shard parameters (JSON, "" for none): each tick becomes N runs
--          `<id>-<tick>-s<k>`. Overlap policies apply to a sharded tick as a whole: its
--          in-flight marker is the base run `<id>-<tick>`, in flight while any shard is;
--          `forbid` records every shard of a tick `skipped`, `replace` cancels every shard
--          still active. Or "b" for a broadcast job: each tick becomes one run
--          `<id>-<tick>-e<executor>` per live, enabled executor (see live_executors), in
--          that executor's own stream, or one `skipped` run `<id>-<tick>` when none is live.
-- A job is fired only if its schedule score still equals the expected one, its version is
-- still the one given, and it is due on the
-- Redis clock (within the allowed look-ahead); the score then moves to the next fire
-- instant. A tick already in the job's run index is a replay and is not enqueued again
-- (`ZADD NX` is both check and index). Commands that take many members (ZMSCORE, ZADD, ZREM,
-- HSET) are issued once per call.
-- Reads:   lease (owner, epoch, expires: the fence); schedule; heartbeats, executors and
--          disabled (broadcast); the job's run index at the tick (a broadcast tick's replay
--          check); inflight and the in-flight
--          run's record (overlap policies); job:<id> (`version`: a job saved since it was
--          read is stale and left for the next round; `enabled`, when exhausted)
-- Writes:  runs:<job> (tick index) and group-runs (the same entries, one ZADD per call);
--          the stream (E_RUN, E_VERSION, and E_SHARD, E_SHARDS, E_SHARD_PARAM per shard);
--          run record (F_STATUS 'queued', F_ENTRY, F_VERSION,
--          F_FIRED_BY, F_SHARD, F_SHARDS, F_SHARD_PARAM, F_EXECUTOR and F_WORKER for a
--          broadcast run, whose entry goes to stream:<executor>; or F_STATUS 'skipped' with
--          F_FINISHED_AT and F_ERROR); active; inflight (forbid / replace); last (the code of
--          each job whose newest run this call wrote, one ZADD per call; one ZRANGE
--          runs:<job> -1 -1 per job fired tells); schedule (next
--          score or removal); job:<id> (`enabled` false, `updated_at`, `version` + 1 when
--          exhausted); a `replace` cancels the run in flight (see cancel_run); alert-events
--          (a capped XADD per skipped tick: A_KIND 'skipped', A_RUN, A_ERROR)
-- Reply:   {"ok" | "fenced", runs fired, jobs skipped as stale (fired or changed elsewhere)}
local group, token, channel = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local horizon = now + tonumber(ARGV[4])
if token ~= '' then
  local sep = string.find(token, '|', 1, true)
  local owner, epoch = string.sub(token, 1, sep - 1), string.sub(token, sep + 1)
  local l = redis.call('HMGET', P .. K_LEASE, 'owner', 'epoch', 'expires')
  if l[1] ~= owner or l[2] ~= epoch or tonumber(l[3] or '0') < now then
    return {'fenced', 0, 0}
  end
end
local stream = P .. K_STREAM

-- Every job's current score in one call.
local ids = {}
local i = 5
while i <= #ARGV do
  ids[#ids + 1] = ARGV[i]
  local sharded = string.sub(ARGV[i + 4], 3, 3) == 's'
  i = i + 6 + tonumber(ARGV[i + 5])
  if sharded then i = i + 1 + tonumber(ARGV[i]) end
end
if #ids == 0 then return {'ok', 0, 0} end
local scores = redis.call('ZMSCORE', P .. K_SCHEDULE, unpack(ids))

local fired, stale = 0, 0
local active, inflight, reschedule, unschedule = {}, {}, {}, {}
local indexed = {} -- tick, run pairs newly in a job's run index, for the group's index
local fired_now = {} -- job id -> run fired by this call (for overlap policies)
local wrote = {} -- run -> status written by this call, for the last-status index
local last = {} -- code, job pairs for the last-status index (one ZADD per call)

local live = nil -- executors a broadcast tick goes to, read once per call

-- Whether a broadcast tick was fired already: a run of it (`<run>` or `<run>-e<executor>`)
-- is in the job's run index at the tick.
local function tick_fired(index, run, tick)
  for _, m in ipairs(redis.call('ZRANGE', index, tick, tick, 'BYSCORE')) do
    if m == run or string.sub(m, 1, #run + 1) == run .. '-' then return true end
  end
  return false
end

local function record(rk, version, status, err)
  redis.call('HSET', rk, F_STATUS, status, F_VERSION, version, F_FINISHED_AT, now,
    F_FIRED_BY, token, F_ERROR, err)
  -- An alert event: the run id is the rest of the record's key.
  redis.call('XADD', P .. K_ALERT_EVENTS, 'MAXLEN', '~', 10000, '*', A_KIND, status,
    A_RUN, string.sub(rk, #P + #K_RUN + 1), A_ERROR, err)
end

local j = 0
i = 5
while i <= #ARGV do
  j = j + 1
  local id, expected, nextv, version = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local policy, exhausted = string.sub(ARGV[i + 4], 1, 1), string.sub(ARGV[i + 4], 2, 2)
  local n = tonumber(ARGV[i + 5])
  i = i + 6
  local shards = 0
  if string.sub(ARGV[i - 2], 3, 3) == 's' then shards = tonumber(ARGV[i + n]) end
  local score = scores[j]
  -- A job saved since `due.lua` read it (same score, new version) is stale too: its ticks
  -- are fired by the next round, with the version (and so the params) now current. (A
  -- deleted job's leftover score is still removed below.)
  local saved = redis.call('HGET', P .. K_JOB .. id, 'version')
  if (not score) or tonumber(score) ~= expected or expected > horizon
      or (saved and saved ~= version) then
    stale = stale + 1
  else
    local index = P .. K_RUNS .. id
    for k = 0, n - 1 do
      local tick = ARGV[i + k]
      local skipped = string.sub(tick, 1, 1) == '~'
      if skipped then tick = string.sub(tick, 2) end
      local run = id .. '-' .. tick
      local rk = P .. K_RUN .. run
      if string.sub(ARGV[i - 2], 3, 3) == 'b' and not skipped then
        -- Broadcast: one run per live executor, in its own stream.
        if not tick_fired(index, run, tick) then
          live = live or live_executors(P, now)
          if #live == 0 then
            redis.call('ZADD', index, tick, run)
            indexed[#indexed + 1] = tick
            indexed[#indexed + 1] = run
            record(rk, version, 'skipped', 'broadcast: no live executor in the group at fire time')
            wrote[run] = 'skipped'
          end
          for _, ex in ipairs(live) do
            local erun = run .. '-e' .. ex
            redis.call('ZADD', index, tick, erun)
            indexed[#indexed + 1] = tick
            indexed[#indexed + 1] = erun
            local e = redis.call('XADD', P .. K_EXECUTOR_STREAM .. ex, '*', E_RUN, erun,
              E_VERSION, version)
            redis.call('HSET', rk .. '-e' .. ex, F_STATUS, 'queued', F_ENTRY, e,
              F_VERSION, version, F_FIRED_BY, token, F_EXECUTOR, ex, F_WORKER, ex)
            wrote[erun] = 'queued'
            active[#active + 1] = erun
            active[#active + 1] = e
            fired = fired + 1
          end
        end
      elseif shards > 0 and not skipped then
        -- One run per shard; the first shard's index entry is the replay check.
        if redis.call('ZADD', index, 'NX', tick, run .. '-s0') == 1 then
          -- Overlap policies apply to a tick as a whole: the one before (the marker names
          -- its base run) is in flight while any of its shards is.
          local n_fire, live = shards, {}
          if policy ~= 'a' then
            local current = fired_now[id] or redis.call('HGET', P .. K_INFLIGHT, id)
            if current then live = active_shards(P, current, shards) end
          end
          if #live > 0 and policy == 'f' then
            n_fire = 0
            for s = 0, shards - 1 do
              local srun = run .. '-s' .. s
              indexed[#indexed + 1] = tick
              indexed[#indexed + 1] = srun
              record(rk .. '-s' .. s, version, 'skipped',
                'forbid: run ' .. live[1] .. ' was still in flight')
              redis.call('HSET', rk .. '-s' .. s, F_SHARD, s, F_SHARDS, shards)
              if s > 0 then redis.call('ZADD', index, tick, srun) end
              wrote[srun] = 'skipped'
            end
          else
            for _, r in ipairs(live) do
              cancel_run(P, group, r, channel, 'replaced by run ' .. run, now)
            end
            if policy ~= 'a' then
              fired_now[id] = run
              inflight[#inflight + 1] = id
              inflight[#inflight + 1] = run
            end
          end
          for s = 0, n_fire - 1 do
            local srun = run .. '-s' .. s
            indexed[#indexed + 1] = tick
            indexed[#indexed + 1] = srun
            local sp = ARGV[i + n + 1 + s]
            local e
            if sp == '' then
              e = redis.call('XADD', stream, '*', E_RUN, srun, E_VERSION, version,
                E_SHARD, s, E_SHARDS, shards)
              redis.call('HSET', rk .. '-s' .. s, F_STATUS, 'queued', F_ENTRY, e,
                F_VERSION, version, F_FIRED_BY, token, F_SHARD, s, F_SHARDS, shards)
            else
              e = redis.call('XADD', stream, '*', E_RUN, srun, E_VERSION, version,
                E_SHARD, s, E_SHARDS, shards, E_SHARD_PARAM, sp)
              redis.call('HSET', rk .. '-s' .. s, F_STATUS, 'queued', F_ENTRY, e,
                F_VERSION, version, F_FIRED_BY, token, F_SHARD, s, F_SHARDS, shards,
                F_SHARD_PARAM, sp)
            end
            if s > 0 then redis.call('ZADD', index, tick, srun) end
            wrote[srun] = 'queued'
            active[#active + 1] = srun
            active[#active + 1] = e
            fired = fired + 1
          end
        end
      elseif redis.call('ZADD', index, 'NX', tick, run) == 1 then
        indexed[#indexed + 1] = tick
        indexed[#indexed + 1] = run
        local current = false
        if policy ~= 'a' then
          current = fired_now[id] or redis.call('HGET', P .. K_INFLIGHT, id)
          if current and not run_active(P, current) then current = false end
        end
        if skipped then
          record(rk, version, 'skipped', 'misfire: the tick was missed by more than the threshold')
          wrote[run] = 'skipped'
        elseif current and policy == 'f' then
          record(rk, version, 'skipped', 'forbid: run ' .. current .. ' was still in flight')
          wrote[run] = 'skipped'
        else
          if current then
            cancel_run(P, group, current, channel, 'replaced by run ' .. run, now)
          end
          local e = redis.call('XADD', stream, '*', E_RUN, run, E_VERSION, version)
          redis.call('HSET', rk, F_STATUS, 'queued', F_ENTRY, e, F_VERSION, version,
            F_FIRED_BY, token)
          active[#active + 1] = run
          active[#active + 1] = e
          wrote[run] = 'queued'
          if policy ~= 'a' then
            fired_now[id] = run
            inflight[#inflight + 1] = id
            inflight[#inflight + 1] = run
          end
          fired = fired + 1
        end
      end
    end
    if n > 0 then
      -- The job's newest run, if this call wrote it (a manual run may have a later tick).
      local st = wrote[redis.call('ZRANGE', index, -1, -1)[1]]
      if st then
        last[#last + 1] = last_code(st)
        last[#last + 1] = id
      end
    end
    if nextv == '' then
      unschedule[#unschedule + 1] = id
      local jk = P .. K_JOB .. id
      if exhausted == '1' and redis.call('HGET', jk, 'enabled') == 'true' then
        redis.call('HSET', jk, 'enabled', 'false', 'updated_at', now)
        redis.call('HINCRBY', jk, 'version', 1)
      end
    else
      reschedule[#reschedule + 1] = nextv
      reschedule[#reschedule + 1] = id
    end
  end
  i = i + n
  if shards > 0 then i = i + 1 + shards end
end
if #reschedule > 0 then redis.call('ZADD', P .. K_SCHEDULE, unpack(reschedule)) end
if #unschedule > 0 then redis.call('ZREM', P .. K_SCHEDULE, unpack(unschedule)) end
if #active > 0 then redis.call('HSET', P .. K_ACTIVE, unpack(active)) end
if #indexed > 0 then redis.call('ZADD', P .. K_GROUP_RUNS, unpack(indexed)) end
if #inflight > 0 then redis.call('HSET', P .. K_INFLIGHT, unpack(inflight)) end
if #last > 0 then redis.call('ZADD', P .. K_LAST, unpack(last)) end
return {'ok', fired, stale}
