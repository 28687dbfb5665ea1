-- Acquires, renews or releases a group's scheduling lease. The epoch grows with every new
-- holder and is the fencing token `fire.lua` checks (invariant 2 with many replicas).
-- KEYS[1]  group prefix
-- ARGV[1]  replica id
-- ARGV[2]  ttl ms
-- ARGV[3]  "acquire" | "release"
-- ARGV[4]  "1" when this replica is the one chosen for the group, "0" otherwise
-- ARGV[5…] optional: the live replicas (heartbeat within one lease time, on the Redis clock)
-- A lease moves only when it is free or expired; an unchosen replica takes an expired one
-- only after a further ttl (the chosen one may just be starting). When the live replicas are
-- given, the chosen replica also takes a lease whose holder is not among them (a dead
-- replica's groups move as soon as its heartbeat lapses, however long the hold). A chosen
-- replica finding the lease held by another records itself in `want`; the holder hands the
-- lease over on its next renewal. A replica that died never asks, so its groups are never
-- handed to it.
-- Reads:   lease (owner, epoch, expires, want)
-- Writes:  lease (owner, expires; epoch + 1 on a new holder; want)
-- Reply:   {epoch held (0 = not ours), holder ("" = none), expires (ms), want ("" = none)}.
local me, ttl, mode, chosen = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1'
local key = P .. K_LEASE
local now = now_ms()
local l = redis.call('HMGET', key, 'owner', 'epoch', 'expires', 'want')
local owner, epoch, expires, want = l[1] or '', tonumber(l[2] or '0'), tonumber(l[3] or '0'), l[4] or ''
if mode == 'release' then
  if owner == me then redis.call('HSET', key, 'owner', '', 'expires', 0) end
  return {0, '', 0, want}
end
if owner == me and expires >= now then
  redis.call('HSET', key, 'expires', now + ttl)
  return {epoch, me, now + ttl, want}
end
local grace = 0
if not chosen then grace = ttl end
local dead = false
if chosen and #ARGV > 4 and owner ~= '' then
  dead = true
  for i = 5, #ARGV do
    if ARGV[i] == owner then dead = false end
  end
end
if owner == '' or expires + grace < now or dead then
  epoch = redis.call('HINCRBY', key, 'epoch', 1)
  redis.call('HSET', key, 'owner', me, 'expires', now + ttl)
  if want == me then
    redis.call('HDEL', key, 'want')
    want = ''
  end
  return {epoch, me, now + ttl, want}
end
if chosen and want ~= me then
  redis.call('HSET', key, 'want', me)
  want = me
end
return {0, owner, expires, want}
