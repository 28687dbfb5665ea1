-- Heartbeat of a live executor: resets the idle time of the entries it is running, so a
-- long run is never reclaimed while its worker lives (invariant 4), records the beat, and
-- reports runs whose cancellation was requested (in case the pub/sub message was missed).
-- KEYS[1]  group prefix
-- KEYS[2]  (optional) the executor's own stream, for broadcast runs; without it the group
--          stream
-- ARGV[1]  consumer (the executor)
-- ARGV[2..] pairs: entry id, run id (the runs it holds)
-- Reads:   the stream's pending list; cancel; disabled
-- Writes:  the pending list (XCLAIM ... JUSTID of its own entries resets their idle time);
--          heartbeats (consumer -> now)
-- Reply:   {disabled (0/1), {entry ids no longer its own}, {run ids to cancel}, Redis now}.
local me = ARGV[1]
local stream = KEYS[2] or P .. K_STREAM
local lost, cancel = {}, {}
if #ARGV >= 3 and KEYS[2] and not has_group(stream) then
  -- Its own stream is gone (it was judged stopped): none of those entries is its own.
  for i = 2, #ARGV, 2 do lost[#lost + 1] = ARGV[i] end
elseif #ARGV >= 3 then
  local lo, hi
  for i = 2, #ARGV, 2 do
    local e = ARGV[i]
    if not lo or stream_id_lt(e, lo) then lo = e end
    if not hi or stream_id_lt(hi, e) then hi = e end
  end
  local mine = {}
  for _, p in ipairs(redis.call('XPENDING', stream, CONSUMER_GROUP, lo, hi, 100000, me)) do
    mine[p[1]] = true
  end
  local keep, runs = {}, {}
  for i = 2, #ARGV, 2 do
    if mine[ARGV[i]] then
      keep[#keep + 1] = ARGV[i]
      runs[#runs + 1] = ARGV[i + 1]
    else
      lost[#lost + 1] = ARGV[i]
    end
  end
  if #keep > 0 then
    keep[#keep + 1] = 'JUSTID'
    redis.call('XCLAIM', stream, CONSUMER_GROUP, me, 0, unpack(keep))
  end
  local cancel_key = P .. K_CANCEL
  if #runs > 0 and redis.call('EXISTS', cancel_key) == 1 then
    local reasons = redis.call('HMGET', cancel_key, unpack(runs))
    for k, r in ipairs(reasons) do
      if r then cancel[#cancel + 1] = runs[k] end
    end
  end
end
local now = now_ms()
redis.call('ZADD', P .. K_HEARTBEATS, now, me)
return {redis.call('SISMEMBER', P .. K_DISABLED, me), lost, cancel, tostring(now)}
