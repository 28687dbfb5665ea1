-- Records one delivery attempt in the delivery log, then schedules the next attempt or
-- forgets the delivery.
-- KEYS[1]  alerts prefix
-- ARGV[1]  delivery id
-- ARGV[2]  attempt number
-- ARGV[3]  "delivered" | "retrying" | "failed" (no attempt left, or the rule is gone)
-- ARGV[4]  ms until the next attempt (retrying)
-- ARGV[5]  the receiver's HTTP status ("" when none answered)
-- ARGV[6]  error ("" for none)
-- ARGV[7]  delivery log bound (XADD MAXLEN ~)
-- Reads:   delivery:<id> (A_RULE, A_EVENT, A_SUBJECT, A_GROUP, A_JOB)
-- Writes:  deliveries (A_DELIVERY, A_RULE, A_EVENT, A_SUBJECT, A_GROUP, A_JOB, A_ATTEMPTS,
--          A_STATUS, A_CODE, A_ERROR); retrying: delivery:<id> (A_ATTEMPTS), queue (next
--          due); delivered or failed: delivery:<id> and its queue entry removed
-- Reply:   "ok" | "gone" (the delivery is not queued any more)
local id, attempt, status = ARGV[1], ARGV[2], ARGV[3]
local dk = P .. K_ALERT_DELIVERY .. id
local d = redis.call('HMGET', dk, A_RULE, A_EVENT, A_SUBJECT, A_GROUP, A_JOB)
if not d[1] then return 'gone' end
local entry = {A_DELIVERY, id, A_RULE, d[1], A_EVENT, d[2], A_SUBJECT, d[3], A_GROUP, d[4],
  A_JOB, d[5], A_ATTEMPTS, attempt, A_STATUS, status}
if ARGV[5] ~= '' then
  entry[#entry + 1] = A_CODE
  entry[#entry + 1] = ARGV[5]
end
if ARGV[6] ~= '' then
  entry[#entry + 1] = A_ERROR
  entry[#entry + 1] = ARGV[6]
end
redis.call('XADD', P .. K_ALERT_DELIVERIES, 'MAXLEN', '~', tonumber(ARGV[7]), '*', unpack(entry))
if status == 'retrying' then
  redis.call('HSET', dk, A_ATTEMPTS, attempt)
  redis.call('ZADD', P .. K_ALERT_QUEUE, now_ms() + tonumber(ARGV[4]), id)
else
  redis.call('DEL', dk)
  redis.call('ZREM', P .. K_ALERT_QUEUE, id)
end
return 'ok'
