-- Claims alert deliveries whose next attempt is due: each moves to now + hold in the queue,
-- so another replica takes it again only if this one died before recording the attempt
-- (deliveries are at least once; a receiver de-duplicates by the delivery id).
-- KEYS[1]  alerts prefix
-- ARGV[1]  most deliveries to claim
-- ARGV[2]  hold ms
-- Reads:   queue (due ids); delivery:<id>
-- Writes:  queue (claimed ids rescheduled to now + hold; ids without a delivery removed)
-- Reply:   {{id, {field, value, ...}}, ...}
local now = now_ms()
local queue = P .. K_ALERT_QUEUE
local due = redis.call('ZRANGE', queue, '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
local out, gone = {}, {}
for _, id in ipairs(due) do
  local d = redis.call('HGETALL', P .. K_ALERT_DELIVERY .. id)
  if #d == 0 then
    gone[#gone + 1] = id
  else
    redis.call('ZADD', queue, 'XX', now + tonumber(ARGV[2]), id)
    out[#out + 1] = {id, d}
  end
end
if #gone > 0 then redis.call('ZREM', queue, unpack(gone)) end
return out
