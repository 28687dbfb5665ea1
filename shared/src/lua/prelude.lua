-- Shared prelude, prepended to every script (after `local CLOCK_OFFSET_MS = <n>`, which is 0
-- unless a test process set DOTJOB_TEST_CLOCK_OFFSET_MS).

-- The Redis clock in milliseconds: every due decision is made on it (invariant 1).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + CLOCK_OFFSET_MS
end

-- Whether a run still holds its job (queued, running, or waiting for a retry).
local function run_active(P, run)
  local f = redis.call('HMGET', P .. 'run:' .. run, 'status', 'retry_at')
  local st = f[1]
  return st == 'queued' or st == 'running' or ((st == 'failed' or st == 'timed_out') and f[2] ~= false)
end

-- Cancels a run. One that has not started is cancelled at once: its entry is deleted if no
-- worker has read it yet, or acknowledged if it is waiting for a retry. A run a worker holds
-- is listed in `cancel` (run -> reason) and its executor told on `channel`; executors also
-- poll that list on heartbeats. Returns "cancelled", "cancelling", "final:<status>" when it
-- had already ended, or "" when it does not exist.
local function cancel_run(P, group, run, channel, reason, now)
  local rk = P .. 'run:' .. run
  local f = redis.call('HMGET', rk, 'status', 'retry_at', 'entry', 'job_id')
  local st, entry = f[1], f[3]
  if not st then return '' end
  local waiting = (st == 'failed' or st == 'timed_out') and f[2]
  local held = false
  if entry and st == 'queued' then
    held = redis.call('XPENDING', P .. 'stream', 'workers', entry, entry, 1)[1] ~= nil
  end
  if (st == 'queued' and not held) or waiting then
    redis.call('HSET', rk, 'status', 'cancelled', 'finished_at', now, 'error', reason)
    redis.call('HDEL', rk, 'retry_at')
    if entry then
      if waiting then
        redis.call('XACK', P .. 'stream', 'workers', entry)
        redis.call('ZREM', P .. 'retry', entry)
      else
        redis.call('XDEL', P .. 'stream', entry)
      end
    end
    redis.call('HDEL', P .. 'active', run)
    if f[4] and redis.call('HGET', P .. 'inflight', f[4]) == run then
      redis.call('HDEL', P .. 'inflight', f[4])
    end
    return 'cancelled'
  elseif st == 'queued' or st == 'running' then
    redis.call('HSET', P .. 'cancel', run, reason)
    redis.call('PUBLISH', channel,
      cjson.encode({kind = 'cancel', group = group, run = run}))
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
