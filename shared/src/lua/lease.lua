-- Acquires, renews or releases a group's scheduling lease. The epoch grows with every new
-- holder and is the fencing token `fire.lua` checks (invariant 2 with many replicas).
-- KEYS[1] group prefix
-- ARGV[1] replica id, ARGV[2] ttl ms, ARGV[3] "acquire" | "release",
-- ARGV[4] how long the lease must have been expired before we take it (0 when we are the
-- group's chosen replica)
-- Returns {epoch held (0 = not ours), holder, expires}.
local P = KEYS[1]
local me, ttl, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local key = P .. 'lease'
local now = now_ms()
local l = redis.call('HMGET', key, 'owner', 'epoch', 'expires')
local owner, epoch, expires = l[1] or '', tonumber(l[2] or '0'), tonumber(l[3] or '0')
if mode == 'release' then
  if owner == me then redis.call('HSET', key, 'owner', '', 'expires', 0) end
  return {0, '', 0}
end
if owner == me and expires >= now then
  redis.call('HSET', key, 'expires', now + ttl)
  return {epoch, me, now + ttl}
end
if owner == '' or expires + tonumber(ARGV[4]) < now then
  epoch = redis.call('HINCRBY', key, 'epoch', 1)
  redis.call('HSET', key, 'owner', me, 'expires', now + ttl)
  return {epoch, me, now + ttl}
end
return {0, owner, expires}
