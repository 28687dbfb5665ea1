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

-- Cancels a run: at once if it has not started or is waiting for a retry; a running one is
-- flagged and its executor told on `channel` (executors also poll the flag on heartbeats).
-- Returns "cancelled", "cancelling", or the final status it already had ("" if unknown).
local function cancel_run(P, group, run, channel, reason, now)
  local rk = P .. 'run:' .. run
  local f = redis.call('HMGET', rk, 'status', 'retry_at', 'entry', 'job_id')
  local st = f[1]
  if not st then return '' end
  local waiting = (st == 'failed' or st == 'timed_out') and f[2]
  if st == 'queued' or waiting then
    redis.call('HSET', rk, 'status', 'cancelled', 'finished_at', now, 'error', reason)
    redis.call('HDEL', rk, 'retry_at')
    if waiting and f[3] then
      redis.call('XACK', P .. 'stream', 'workers', f[3])
      redis.call('ZREM', P .. 'retry', f[3])
      redis.call('HDEL', P .. 'active', f[3])
    end
    if f[4] and redis.call('HGET', P .. 'inflight', f[4]) == run then
      redis.call('HDEL', P .. 'inflight', f[4])
    end
    return 'cancelled'
  elseif st == 'running' then
    redis.call('HSET', rk, 'cancel', reason)
    redis.call('PUBLISH', channel,
      cjson.encode({kind = 'cancel', group = group, run = run}))
    return 'cancelling'
  end
  return st
end
