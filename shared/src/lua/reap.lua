-- Forgets executors whose heartbeat stopped, and removes consumers from the consumer group
-- once they hold no pending entries (XGROUP DELCONSUMER would drop them: live workers claim
-- them first through XAUTOCLAIM).
-- KEYS[1] group prefix
-- ARGV[1] executor timeout ms
-- Returns {executors forgotten, consumers deleted}.
local P = KEYS[1]
local now = now_ms()
local cutoff = now - tonumber(ARGV[1])
local dead = redis.call('ZRANGE', P .. 'heartbeats', '-inf', cutoff, 'BYSCORE')
for _, id in ipairs(dead) do
  redis.call('ZREM', P .. 'heartbeats', id)
  redis.call('HDEL', P .. 'executors', id)
  redis.call('SREM', P .. 'disabled', id)
end
local deleted = 0
local stream = P .. 'stream'
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', stream, 'workers')
if ok then
  for _, c in ipairs(consumers) do
    local f = {}
    for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
    local alive = redis.call('ZSCORE', P .. 'heartbeats', f['name'])
    if (not alive) and f['pending'] == 0 and f['idle'] > tonumber(ARGV[1]) then
      redis.call('XGROUP', 'DELCONSUMER', stream, 'workers', f['name'])
      deleted = deleted + 1
    end
  end
end
return {#dead, deleted}
