-- Takes over runs due for another attempt, and runs whose worker died (invariants 4, 6).
-- KEYS[1] group prefix
-- ARGV[1] consumer, ARGV[2] lease ms, ARGV[3] most entries, ARGV[4] XAUTOCLAIM cursor,
-- ARGV[5] "1" to run the XAUTOCLAIM step, "0" for due retries only
-- Returns {next cursor, {{entry id, delivery count, {field, value, ...}}, ...}, lost}.
-- The delivery count is the attempt number. Entries Redis reports deleted while pending
-- become `lost` runs. An entry waiting out its retry backoff is left pending: if
-- XAUTOCLAIM took it because its idle time passed the lease, its delivery count is restored.
local P = KEYS[1]
local me, lease, count, cursor = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local stream = P .. 'stream'
local now = now_ms()
local out, lost = {}, 0

local function pending(id)
  return redis.call('XPENDING', stream, 'workers', id, id, 1)[1]
end

-- The run an entry belongs to: `active` maps run -> entry, so search it (lost entries are
-- rare; this scans the runs in flight).
local function run_of(entry)
  local cursor = '0'
  repeat
    local r = redis.call('HSCAN', P .. 'active', cursor, 'COUNT', 1000)
    cursor = r[1]
    for k = 1, #r[2], 2 do
      if r[2][k + 1] == entry then return r[2][k] end
    end
  until cursor == '0'
  return nil
end

local function mark_lost(id)
  local run = run_of(id)
  if run then redis.call('HDEL', P .. 'active', run) end
  redis.call('ZREM', P .. 'retry', id)
  if run then
    local rk = P .. 'run:' .. run
    if redis.call('EXISTS', rk) == 1 then
      redis.call('HSET', rk, 'status', 'lost', 'finished_at', now,
        'error', 'stream entry ' .. id .. ' was deleted while pending')
      redis.call('HDEL', rk, 'retry_at')
      redis.call('HDEL', P .. 'inflight', redis.call('HGET', rk, 'job_id') or '')
    end
  end
  lost = lost + 1
end

local function emit(e)
  local p = pending(e[1])
  out[#out + 1] = {e[1], p and p[4] or 1, e[2]}
end

-- 1. Retries whose backoff has passed.
local due = redis.call('ZRANGE', P .. 'retry', '-inf', now, 'BYSCORE', 'LIMIT', 0, count)
for _, id in ipairs(due) do
  redis.call('ZREM', P .. 'retry', id)
  if pending(id) then
    local got = redis.call('XCLAIM', stream, 'workers', me, 0, id)
    if got[1] and got[1][2] then emit(got[1]) else mark_lost(id) end
  end
end

-- 2. Entries idle past the lease: their worker stopped touching them.
local next_cursor = '0-0'
if ARGV[5] == '1' and #out < count then
  local res = redis.call('XAUTOCLAIM', stream, 'workers', me, lease, cursor, 'COUNT',
    count - #out)
  next_cursor = res[1]
  for _, e in ipairs(res[2]) do
    local rs = redis.call('ZSCORE', P .. 'retry', e[1])
    if rs and tonumber(rs) > now then
      local p = pending(e[1])
      redis.call('XCLAIM', stream, 'workers', me, 0, e[1], 'RETRYCOUNT',
        math.max((p and p[4] or 1) - 1, 0), 'JUSTID')
    else
      if rs then redis.call('ZREM', P .. 'retry', e[1]) end
      emit(e)
    end
  end
  for _, id in ipairs(res[3] or {}) do mark_lost(id) end
  -- An entry idle longer than the lease was enqueued before now - lease, and the pending
  -- list is ordered by id: past that point there is nothing to find, so start over.
  local cursor_ms = tonumber(string.match(next_cursor, '^(%d+)'))
  if next_cursor ~= '0-0' and cursor_ms and cursor_ms > now - lease then
    next_cursor = '0-0'
  end
end
return {next_cursor, out, lost}
