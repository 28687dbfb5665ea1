-- Takes over runs due for another attempt, and runs whose worker died (invariants 4, 6).
-- KEYS[1]  group prefix
-- KEYS[2], KEYS[3]  (optional) the claiming worker's own stream and its retry set
--          (broadcast runs: only their executor claims them); without them the group
--          stream and `retry`
-- ARGV[1]  consumer (the claiming worker)
-- ARGV[2]  lease ms: an entry idle longer belongs to a worker that stopped touching it
-- ARGV[3]  most entries to claim
-- ARGV[4]  XAUTOCLAIM cursor ("0-0" to start over)
-- ARGV[5]  "1" to run the XAUTOCLAIM step, "0" for due retries only
-- Reads:   retry (entry -> due instant); the stream's pending list; active (to find the run
--          of a lost entry); run record (existence)
-- Writes:  the pending list (XCLAIM / XAUTOCLAIM to this consumer); retry (due entries
--          leave it); for an entry Redis reports deleted while pending: run record (F_STATUS
--          'lost', F_FINISHED_AT, F_ERROR; deletes F_RETRY_AT), last (if it is its job's
--          newest run), active, inflight (releases the job's marker if the run holds it)
-- Reply:   {next cursor, {{entry id, delivery count, {field, value, ...}}, ...}, lost count}.
--          The delivery count is the attempt number. An entry waiting out its retry backoff
--          is left pending: if XAUTOCLAIM took it because its idle time passed the lease,
--          its delivery count is restored.
local me, lease, count, cursor = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local stream = P .. K_STREAM
local retry = P .. K_RETRY
-- Runs of the own stream end `-e<me>`: `active` is searched for those only, as its entry
-- ids may repeat ids of the group stream.
local own_suffix = nil
if KEYS[2] then
  stream, retry, own_suffix = KEYS[2], KEYS[3], '-e' .. me
  if not has_group(stream) then return {'0-0', {}, 0} end
end
local now = now_ms()
local out, lost = {}, 0

local function pending(id)
  return redis.call('XPENDING', stream, CONSUMER_GROUP, id, id, 1)[1]
end

-- The run an entry belongs to: `active` maps run -> entry, so search it (lost entries are
-- rare; this scans the runs in flight).
local function run_of(entry)
  local cursor = '0'
  repeat
    local r = redis.call('HSCAN', P .. K_ACTIVE, cursor, 'COUNT', 1000)
    cursor = r[1]
    for k = 1, #r[2], 2 do
      if r[2][k + 1] == entry and (not own_suffix
          or string.sub(r[2][k], -#own_suffix) == own_suffix) then
        return r[2][k]
      end
    end
  until cursor == '0'
  return nil
end

local function mark_lost(id)
  local run = run_of(id)
  if run then redis.call('HDEL', P .. K_ACTIVE, run) end
  redis.call('ZREM', retry, id)
  if run then
    local rk = P .. K_RUN .. run
    if redis.call('EXISTS', rk) == 1 then
      redis.call('HSET', rk, F_STATUS, 'lost', F_FINISHED_AT, now,
        F_ERROR, 'stream entry ' .. id .. ' was deleted while pending')
      local last = {}
      note_last(P, run, 'lost', last)
      write_last(P, last)
      redis.call('HDEL', rk, F_RETRY_AT)
      -- Its job's in-flight marker, if it holds it (a run id starts with its job id).
      local job = string.match(run, '^[^-]+')
      if redis.call('HGET', P .. K_INFLIGHT, job) == run then
        redis.call('HDEL', P .. K_INFLIGHT, job)
      end
    end
  end
  lost = lost + 1
end

local function emit(e)
  local p = pending(e[1])
  out[#out + 1] = {e[1], p and p[4] or 1, e[2]}
end

-- 1. Retries whose backoff has passed.
local due = redis.call('ZRANGE', retry, '-inf', now, 'BYSCORE', 'LIMIT', 0, count)
for _, id in ipairs(due) do
  redis.call('ZREM', retry, id)
  if pending(id) then
    local got = redis.call('XCLAIM', stream, CONSUMER_GROUP, me, 0, id)
    if got[1] and got[1][2] then emit(got[1]) else mark_lost(id) end
  end
end

-- 2. Entries idle past the lease: their worker stopped touching them.
local next_cursor = '0-0'
if ARGV[5] == '1' and #out < count then
  local res = redis.call('XAUTOCLAIM', stream, CONSUMER_GROUP, me, lease, cursor, 'COUNT',
    count - #out)
  next_cursor = res[1]
  for _, e in ipairs(res[2]) do
    local rs = redis.call('ZSCORE', retry, e[1])
    if rs and tonumber(rs) > now then
      local p = pending(e[1])
      redis.call('XCLAIM', stream, CONSUMER_GROUP, me, 0, e[1], 'RETRYCOUNT',
        math.max((p and p[4] or 1) - 1, 0), 'JUSTID')
    else
      if rs then redis.call('ZREM', retry, e[1]) end
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
