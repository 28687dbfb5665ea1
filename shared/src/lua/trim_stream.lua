-- Trims the group stream below the oldest entry that is still needed (invariant 7): the
-- oldest pending entry, and nothing the consumer group has not delivered yet.
-- KEYS[1]  group prefix
-- Reads:   the stream's consumer groups (last delivered id) and pending list (oldest entry)
-- Writes:  the stream (XTRIM MINID ~)
-- Reply:   {entries removed, min id kept ("" when nothing could be trimmed)}.
local stream = P .. K_STREAM
if redis.call('EXISTS', stream) == 0 then return {0, ''} end
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', stream)
if not ok then return {0, ''} end
local last
for _, g in ipairs(groups) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  if f['name'] == CONSUMER_GROUP then last = f['last-delivered-id'] end
end
if not last then return {0, ''} end -- no consumer group yet: keep everything
local minid = last
local summary = redis.call('XPENDING', stream, CONSUMER_GROUP)
if summary[1] > 0 and stream_id_lt(summary[2], minid) then
  minid = summary[2]
end
local removed = redis.call('XTRIM', stream, 'MINID', '~', minid)
return {removed, minid}
