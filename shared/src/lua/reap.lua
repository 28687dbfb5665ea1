-- Forgets executors whose heartbeat stopped, and removes consumers from the consumer group
-- once they hold no pending entries (XGROUP DELCONSUMER would drop them: live workers claim
-- them first through XAUTOCLAIM). The broadcast runs of an executor that is no longer alive
-- (see executor_alive) or is forgotten cannot go to another executor: they end `lost`
-- (end_executor_runs), and a forgotten executor's own stream and retry set are deleted.
-- KEYS[1]  group prefix
-- ARGV[1]  executor timeout ms
-- Reads:   heartbeats; executors (their reclaim times); the consumer group's consumers
--          (XINFO CONSUMERS); own streams of executors not alive, and their runs' records
-- Writes:  heartbeats, executors, disabled (the dead executors leave them); the consumer
--          group (XGROUP DELCONSUMER of idle consumers without a heartbeat or pending entry);
--          run records (F_STATUS 'lost', F_FINISHED_AT, F_ERROR), active, stream:<executor>
--          and retry:<executor> of executors not alive
-- Reply:   {executors forgotten, consumers deleted, broadcast runs ended `lost`}.
local now = now_ms()
local timeout = tonumber(ARGV[1])
local heartbeats = P .. K_HEARTBEATS
local ended = 0
local beats = redis.call('ZRANGE', heartbeats, 0, -1, 'WITHSCORES')
if #beats > 0 then
  local ids = {}
  for k = 1, #beats, 2 do ids[#ids + 1] = beats[k] end
  local regs = redis.call('HMGET', P .. K_EXECUTORS, unpack(ids))
  for k, id in ipairs(ids) do
    local forgotten = tonumber(beats[2 * k]) <= now - timeout
    if forgotten or not executor_alive(regs[k], beats[2 * k], now) then
      ended = ended + end_executor_runs(P, id, now, forgotten)
    end
  end
end
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
return {#dead, deleted, ended}
