-- Shared prelude, prepended to every script after `local CLOCK_OFFSET_MS = <n>` (0 unless a
-- test process set DOTJOB_TEST_CLOCK_OFFSET_MS) and `local P = KEYS[1]` (the group prefix).
-- Shared names are written in place by the loader (scripts/mod.rs): key suffixes K_<NAME>
-- and CONSUMER_GROUP (keys.rs), field names F_<NAME> (run records), E_<NAME> (stream
-- entries) and D_<NAME> (dead letters) (scripts/fields.rs), and EVENT_CANCEL (events.rs).

-- The Redis clock in milliseconds: every due decision is made on it (invariant 1).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + CLOCK_OFFSET_MS
end

-- The helpers take the group prefix as an argument: a function capturing a local (P) as an
-- upvalue costs time on every script call.

-- Whether a run still holds its job (queued, running, or waiting for a retry).
local function run_active(P, run)
  local f = redis.call('HMGET', P .. K_RUN .. run, F_STATUS, F_RETRY_AT)
  local st = f[1]
  return st == 'queued' or st == 'running' or ((st == 'failed' or st == 'timed_out') and f[2] ~= false)
end

-- The shards still active of a sharded job's in-flight marker `base` (a tick's or manual
-- run's base id `<job>-<tick>`, which has no record of its own): `<base>-s<k>` for k below
-- the shard count recorded on shard 0 (else `shards`). A marker written before the job was
-- sharded names a run of its own, checked as such.
local function active_shards(P, base, shards)
  local rk = P .. K_RUN .. base
  local n = redis.call('HGET', rk .. '-s0', F_SHARDS)
  if not n and redis.call('EXISTS', rk) == 1 then
    if run_active(P, base) then return {base} end
    return {}
  end
  local live = {}
  for k = 0, tonumber(n or shards) - 1 do
    local r = base .. '-s' .. k
    if run_active(P, r) then live[#live + 1] = r end
  end
  return live
end

-- The job table's last-status index (`last`, views/last.rs): every job of the group -> the
-- code of its newest run's status (`last_code`, written before this prelude by the loader).
-- A script that changes a run's status notes it with note_last into a batch of code, job
-- pairs and writes the batch with one ZADD (write_last); only a job's newest run (the top
-- of runs:<job>, a run id starting with its job id) counts. reindex_last sets a job's
-- code from its newest run as recorded, after runs were added or removed.
local function note_last(P, run, status, batch)
  local job = string.match(run, '^[^-]+')
  if redis.call('ZRANGE', P .. K_RUNS .. job, -1, -1)[1] == run then
    batch[#batch + 1] = last_code(status)
    batch[#batch + 1] = job
  end
end

local function write_last(P, batch)
  if #batch > 0 then redis.call('ZADD', P .. K_LAST, unpack(batch)) end
end

local function reindex_last(P, job)
  local top = redis.call('ZRANGE', P .. K_RUNS .. job, -1, -1)[1]
  local st = top and redis.call('HGET', P .. K_RUN .. top, F_STATUS)
  redis.call('ZADD', P .. K_LAST, last_code(st), job)
end

-- Whether `stream` exists and has the consumer group. Only an executor's own stream may
-- lack it (not created yet by its executor, or deleted when the executor was reaped);
-- XPENDING, XCLAIM and XAUTOCLAIM fail without it.
local function has_group(stream)
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', stream)
  if not ok then return false end
  for _, g in ipairs(groups) do
    if g[2] == CONSUMER_GROUP then return true end
  end
  return false
end

-- Cancels a run. One that has not started is cancelled at once: its entry is deleted if no
-- worker has read it yet, or acknowledged if it is waiting for a retry, and its job's
-- in-flight marker is released if it holds it (a run id starts with its job id, which
-- contains no '-'). A run a worker holds is listed in the `cancel` hash
-- (run -> reason) and its executor told on `channel`; executors also poll that hash on
-- heartbeats (the completion then releases the marker).
-- Returns "cancelled", "cancelling", "final:<status>" when it had already ended, or "" when
-- it does not exist.
local function cancel_run(P, group, run, channel, reason, now)
  local rk = P .. K_RUN .. run
  local f = redis.call('HMGET', rk, F_STATUS, F_RETRY_AT, F_ENTRY, F_EXECUTOR)
  local st, entry = f[1], f[3]
  if not st then return '' end
  -- A broadcast run's entry is in its executor's own stream.
  local stream, retry = P .. K_STREAM, P .. K_RETRY
  if f[4] then stream, retry = P .. K_EXECUTOR_STREAM .. f[4], P .. K_EXECUTOR_RETRY .. f[4] end
  local waiting = (st == 'failed' or st == 'timed_out') and f[2]
  local held = false
  if entry and st == 'queued' and (not f[4] or has_group(stream)) then
    held = redis.call('XPENDING', stream, CONSUMER_GROUP, entry, entry, 1)[1] ~= nil
  end
  if (st == 'queued' and not held) or waiting then
    redis.call('HSET', rk, F_STATUS, 'cancelled', F_FINISHED_AT, now, F_ERROR, reason)
    local last = {}
    note_last(P, run, 'cancelled', last)
    write_last(P, last)
    redis.call('HDEL', rk, F_RETRY_AT)
    if entry then
      if waiting then
        redis.call('XACK', stream, CONSUMER_GROUP, entry)
        redis.call('ZREM', retry, entry)
      else
        redis.call('XDEL', stream, entry)
      end
    end
    redis.call('HDEL', P .. K_ACTIVE, run)
    local job = string.match(run, '^[^-]+')
    if redis.call('HGET', P .. K_INFLIGHT, job) == run then
      redis.call('HDEL', P .. K_INFLIGHT, job)
    end
    return 'cancelled'
  elseif st == 'queued' or st == 'running' then
    redis.call('HSET', P .. K_CANCEL, run, reason)
    redis.call('PUBLISH', channel,
      cjson.encode({kind = EVENT_CANCEL, group = group, run = run}))
    return 'cancelling'
  end
  return 'final:' .. st
end

-- Whether stream id `a` sorts before `b` (`<ms>-<seq>`).
local function stream_id_lt(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, bm = tonumber(am), tonumber(bm)
  if am ~= bm then return am < bm end
  return tonumber(as) < tonumber(bs)
end

-- Broadcast routing. An executor is alive while its last heartbeat is within three of its
-- own reclaim times (its registration's `lease_ms`, 10 s when unknown), and never less than
-- 10 s, on the Redis clock: the rule the API's `alive` uses (groups.rs).
local function executor_alive(registration, beat, now)
  local lease = 10000
  if registration then
    lease = tonumber(string.match(registration, '"lease_ms":(%d+)') or '10000')
  end
  return now - tonumber(beat) <= math.max(3 * lease, 10000)
end

-- The executors a broadcast tick or trigger goes to now, sorted: alive, not disabled, and
-- with an id that is safe in a key and a run id (letters, digits, `.`, `_`, `-`).
local function live_executors(P, now)
  local beats = redis.call('ZRANGE', P .. K_HEARTBEATS, 0, -1, 'WITHSCORES')
  local ids, out = {}, {}
  for k = 1, #beats, 2 do ids[#ids + 1] = beats[k] end
  if #ids == 0 then return out end
  local regs = redis.call('HMGET', P .. K_EXECUTORS, unpack(ids))
  for k, id in ipairs(ids) do
    if executor_alive(regs[k], beats[2 * k], now) and string.find(id, '^[%w%._%-]+$')
        and redis.call('SISMEMBER', P .. K_DISABLED, id) == 0 then
      out[#out + 1] = id
    end
  end
  table.sort(out)
  return out
end

-- Ends the broadcast runs of an executor that stopped (heartbeat lapsed, reaped, or shut
-- down): they cannot move to another executor, so every run of its own stream not final yet
-- is recorded `lost` with the reason, and leaves `active`; the entries are acknowledged and
-- deleted, and with `forget` the stream and its retry set are deleted too; the last-status
-- index follows. At most 1000
-- entries per call (the next janitor round takes the rest). Returns how many runs ended.
local function end_executor_runs(P, id, now, forget)
  local stream = P .. K_EXECUTOR_STREAM .. id
  local entries = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1000)
  local ids, ended, last = {}, {}, {}
  local reason = 'executor ' .. id .. ' stopped before finishing; broadcast runs are not moved to another executor'
  for _, e in ipairs(entries) do
    ids[#ids + 1] = e[1]
    local run
    for k = 1, #e[2], 2 do
      if e[2][k] == E_RUN then run = e[2][k + 1] end
    end
    if run and run_active(P, run) then
      local rk = P .. K_RUN .. run
      redis.call('HSET', rk, F_STATUS, 'lost', F_FINISHED_AT, now, F_ERROR, reason)
      redis.call('HDEL', rk, F_RETRY_AT)
      note_last(P, run, 'lost', last)
      ended[#ended + 1] = run
    end
  end
  write_last(P, last)
  if #ended > 0 then redis.call('HDEL', P .. K_ACTIVE, unpack(ended)) end
  if forget then
    redis.call('DEL', stream, P .. K_EXECUTOR_RETRY .. id)
  elseif #ids > 0 then
    redis.call('XACK', stream, CONSUMER_GROUP, unpack(ids))
    redis.call('XDEL', stream, unpack(ids))
    redis.call('DEL', P .. K_EXECUTOR_RETRY .. id)
  end
  return #ended
end
