-- Advances a group's alert-event cursor, fenced by the group lease like fire.lua: only the
-- replica holding the lease moves it, and never backwards. (An event evaluated twice, by a
-- replica that lost the lease or crashed before this call, is still delivered once: the
-- queueing script keeps a `seen` marker per rule and event.)
-- KEYS[1]  group prefix
-- ARGV[1]  fencing token "<replica>|<epoch>" that must hold the group lease, or "" for none
-- ARGV[2]  id of the last alert event evaluated
-- Reads:   lease (owner, epoch, expires); alert-cursor
-- Writes:  alert-cursor
-- Reply:   "ok" | "fenced"
local token, last = ARGV[1], ARGV[2]
if token ~= '' then
  local sep = string.find(token, '|', 1, true)
  local owner, epoch = string.sub(token, 1, sep - 1), string.sub(token, sep + 1)
  local l = redis.call('HMGET', P .. K_LEASE, 'owner', 'epoch', 'expires')
  if l[1] ~= owner or l[2] ~= epoch or tonumber(l[3] or '0') < now_ms() then
    return 'fenced'
  end
end
local cur = redis.call('GET', P .. K_ALERT_CURSOR)
if not cur or stream_id_lt(cur, last) then
  redis.call('SET', P .. K_ALERT_CURSOR, last)
end
return 'ok'
