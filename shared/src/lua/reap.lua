-- Forgets executors whose heartbeat stopped, and removes consumers from the consumer group
-- once they hold no pending entries (XGROUP DELCONSUMER would drop them: live workers claim
-- them first through XAUTOCLAIM).
-- KEYS[1]  group prefix
-- ARGV[1]  executor timeout ms
-- Reads:   heartbeats; the consumer group's consumers (XINFO CONSUMERS)
-- Writes:  heartbeats, executors, disabled (the dead executors leave them); the consumer
--          group (XGROUP DELCONSUMER of idle consumers without a heartbeat or pending entry)
-- Reply:   {executors forgotten, consumers deleted}.
local now = now_ms()
local timeout = tonumber(ARGV[1])
local heartbeats = P .. K_HEARTBEATS
local dead = redis.call('ZRANGE', heartbeats, '-inf', now - timeout, 'BYSCORE')
for _, id in ipairs(dead) do
  redis.call('ZREM', heartbeats, id)
  redis.call('HDEL', P .. K_EXECUTORS, id)
  redis.call('SREM', P .. K_DISABLED, id)
end
local deleted = 0
local stream = P .. K_STREAM
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', stream, CONSUMER_GROUP)
if ok then
  for _, c in ipairs(consumers) do
    local f = {}
    for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
    local alive = redis.call('ZSCORE', heartbeats, f['name'])
    if (not alive) and f['pending'] == 0 and f['idle'] > timeout then
      redis.call('XGROUP', 'DELCONSUMER', stream, CONSUMER_GROUP, f['name'])
      deleted = deleted + 1
    end
  end
end
return {#dead, deleted}
