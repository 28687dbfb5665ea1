-- Trims the group stream below the oldest entry that is still needed (invariant 7): the
-- oldest pending entry, and nothing the consumer group has not delivered yet.
-- KEYS[1] group prefix
-- Returns {entries removed, min id kept}.
local P = KEYS[1]
local stream = P .. 'stream'
if redis.call('EXISTS', stream) == 0 then return {0, ''} end
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', stream)
if not ok then return {0, ''} end
local last
for _, g in ipairs(groups) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  if f['name'] == 'workers' then last = f['last-delivered-id'] end
end
if not last then return {0, ''} end -- no consumer group yet: keep everything
local minid = last
local summary = redis.call('XPENDING', stream, 'workers')
if summary[1] > 0 then
  local lo = summary[2]
  local a_ms, a_seq = string.match(lo, '(%d+)-(%d+)')
  local b_ms, b_seq = string.match(minid, '(%d+)-(%d+)')
  if tonumber(a_ms) < tonumber(b_ms) or (a_ms == b_ms and tonumber(a_seq) < tonumber(b_seq)) then
    minid = lo
  end
end
local removed = redis.call('XTRIM', stream, 'MINID', '~', minid)
return {removed, minid}
