-- Fires ticks of one group atomically: exactly-once enqueue per tick (invariant 2).
-- KEYS[1] group prefix
-- ARGV[1] group name
-- ARGV[2] fencing token "<replica>|<epoch>" that must hold the group lease, or "" for none
-- ARGV[3] events channel (to tell executors about runs cancelled by `replace`)
-- ARGV[4..] per job: id, expected score, next score ("" = unschedule), version, options,
--   n, then n ticks; a tick "~<ms>" is recorded `skipped` (misfire skip) instead of fired.
--   options: concurrency policy (a = allow, f = forbid, r = replace), then "1" when the
--   schedule is exhausted (the job then disables itself, like a fired @once).
-- A job is fired only if its schedule score still equals the expected one and is due on the
-- Redis clock; the score then moves to the next fire instant. A tick whose run record exists
-- already is a replay and is not enqueued again.
-- Returns {"ok"|"fenced", fired, stale, {run id, ...}}.
local P = KEYS[1]
local group, token, channel = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
if token ~= '' then
  local sep = string.find(token, '|', 1, true)
  local owner, epoch = string.sub(token, 1, sep - 1), string.sub(token, sep + 1)
  local l = redis.call('HMGET', P .. 'lease', 'owner', 'epoch', 'expires')
  if l[1] ~= owner or l[2] ~= epoch or tonumber(l[3] or '0') < now then
    return {'fenced', 0, 0, {}}
  end
end
local stream = P .. 'stream'
local fired, stale, runs = 0, 0, {}

local function record(rk, run, id, version, tick, status, err)
  redis.call('HSET', rk, 'id', run, 'job_id', id, 'job_version', version, 'group', group,
    'status', status, 'attempt', 0, 'scheduled_at', tick, 'finished_at', now,
    'trigger', 'schedule', 'fired_by', token, 'error', err)
end

local i = 4
while i <= #ARGV do
  local id, expected, nextv, version = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local policy, exhausted = string.sub(ARGV[i + 4], 1, 1), string.sub(ARGV[i + 4], 2, 2)
  local n = tonumber(ARGV[i + 5])
  i = i + 6
  local score = redis.call('ZSCORE', P .. 'schedule', id)
  if (not score) or tonumber(score) ~= expected or expected > now then
    stale = stale + 1
  else
    for k = 0, n - 1 do
      local tick = ARGV[i + k]
      local skipped = string.sub(tick, 1, 1) == '~'
      if skipped then tick = string.sub(tick, 2) end
      local run = id .. '-' .. tick
      local rk = P .. 'run:' .. run
      if redis.call('EXISTS', rk) == 0 then
        local current = policy ~= 'a' and redis.call('HGET', P .. 'inflight', id)
        if current and not run_active(P, current) then current = false end
        if skipped then
          record(rk, run, id, version, tick, 'skipped', 'misfire: the tick was missed by more than the threshold')
        elseif current and policy == 'f' then
          record(rk, run, id, version, tick, 'skipped', 'forbid: run ' .. current .. ' was still in flight')
        else
          if current then
            cancel_run(P, group, current, channel, 'replaced by run ' .. run, now)
          end
          local e = redis.call('XADD', stream, '*', 'run', run, 'job', id, 'v', version, 'at', tick)
          redis.call('HSET', rk, 'id', run, 'job_id', id, 'job_version', version, 'group', group,
            'status', 'queued', 'attempt', 0, 'scheduled_at', tick, 'enqueued_at', now,
            'entry', e, 'trigger', 'schedule', 'fired_by', token)
          redis.call('HSET', P .. 'active', e, run)
          if policy ~= 'a' then redis.call('HSET', P .. 'inflight', id, run) end
          fired = fired + 1
          runs[#runs + 1] = run
        end
        redis.call('ZADD', P .. 'runs:' .. id, tick, run)
      end
    end
    if nextv == '' then
      redis.call('ZREM', P .. 'schedule', id)
      local jk = P .. 'job:' .. id
      if exhausted == '1' and redis.call('HGET', jk, 'enabled') == 'true' then
        redis.call('HSET', jk, 'enabled', 'false', 'updated_at', now)
        redis.call('HINCRBY', jk, 'version', 1)
      end
    else
      redis.call('ZADD', P .. 'schedule', nextv, id)
    end
  end
  i = i + n
end
return {'ok', fired, stale, runs}
