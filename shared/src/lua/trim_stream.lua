-- Trims the group stream, and the own stream of every executor (broadcast runs), below the
-- oldest entry that is still needed (invariant 7): the oldest pending entry, and nothing the
-- consumer group has not delivered yet.
-- KEYS[1]  group prefix
-- Reads:   the streams' consumer groups (last delivered id) and pending lists (oldest
--          entry); heartbeats (the executors whose own streams to trim)
-- Writes:  the streams (XTRIM MINID ~)
-- Reply:   {entries removed (all streams), min id kept in the group stream ("" when nothing
--          could be trimmed)}.

-- Trims one stream; returns the entries removed and the min id kept (or 0, '').
local function trim(stream)
  if redis.call('EXISTS', stream) == 0 then return 0, '' end
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', stream)
  if not ok then return 0, '' end
  local last
  for _, g in ipairs(groups) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    if f['name'] == CONSUMER_GROUP then last = f['last-delivered-id'] end
  end
  if not last then return 0, '' end -- no consumer group yet: keep everything
  local minid = last
  local summary = redis.call('XPENDING', stream, CONSUMER_GROUP)
  if summary[1] > 0 and stream_id_lt(summary[2], minid) then
    minid = summary[2]
  end
  return redis.call('XTRIM', stream, 'MINID', '~', minid), minid
end

local removed, minid = trim(P .. K_STREAM)
for _, ex in ipairs(redis.call('ZRANGE', P .. K_HEARTBEATS, 0, -1)) do
  removed = removed + trim(P .. K_EXECUTOR_STREAM .. ex)
end
return {removed, minid}
