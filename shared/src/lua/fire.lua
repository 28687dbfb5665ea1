-- Fires ticks of one group atomically: exactly-once enqueue per tick (invariant 2).
-- KEYS[1] group prefix
-- ARGV[1] group name
-- ARGV[2] fencing token "<owner>|<epoch>" that must hold the group lease, or "" for none
-- ARGV[3..] per job: id, expected score, next score ("" = unschedule), version, n, then n
--   ticks; a tick "~<ms>" is recorded `skipped` (misfire skip) instead of fired.
-- A job is fired only if its schedule score still equals the expected one and is due on the
-- Redis clock; the score then moves to the next fire instant. A tick whose run record exists
-- already is a replay and is not enqueued again.
-- Returns {"ok"|"fenced", fired, stale, {run id, ...}}.
local P = KEYS[1]
local group = ARGV[1]
local now = now_ms()
if ARGV[2] ~= '' then
  local sep = string.find(ARGV[2], '|', 1, true)
  local owner, epoch = string.sub(ARGV[2], 1, sep - 1), string.sub(ARGV[2], sep + 1)
  local l = redis.call('HMGET', P .. 'lease', 'owner', 'epoch', 'expires')
  if l[1] ~= owner or l[2] ~= epoch or tonumber(l[3] or '0') < now then
    return {'fenced', 0, 0, {}}
  end
end
local stream = P .. 'stream'
local fired, stale, runs = 0, 0, {}
local i = 3
while i <= #ARGV do
  local id, expected, nextv, version = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local n = tonumber(ARGV[i + 4])
  i = i + 5
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
        if skipped then
          redis.call('HSET', rk, 'id', run, 'job_id', id, 'job_version', version, 'group', group,
            'status', 'skipped', 'attempt', 0, 'scheduled_at', tick, 'finished_at', now,
            'trigger', 'schedule', 'error', 'misfire: tick missed by more than the threshold')
        else
          local e = redis.call('XADD', stream, '*', 'run', run, 'job', id, 'v', version, 'at', tick)
          redis.call('HSET', rk, 'id', run, 'job_id', id, 'job_version', version, 'group', group,
            'status', 'queued', 'attempt', 0, 'scheduled_at', tick, 'enqueued_at', now,
            'entry', e, 'trigger', 'schedule')
          redis.call('HSET', P .. 'active', e, run)
          fired = fired + 1
          runs[#runs + 1] = run
        end
        redis.call('ZADD', P .. 'runs:' .. id, tick, run)
      end
    end
    if nextv == '' then
      redis.call('ZREM', P .. 'schedule', id)
    else
      redis.call('ZADD', P .. 'schedule', nextv, id)
    end
  end
  i = i + n
end
return {'ok', fired, stale, runs}
