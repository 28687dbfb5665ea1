-- Queues one alert delivery unless its event was already taken for the rule or the rule is
-- silent for the subject: one alert per event however many replicas evaluate it, and at
-- most one per silence window per (rule, subject).
-- KEYS[1]  alerts prefix
-- ARGV[1]  delivery id
-- ARGV[2]  rule id
-- ARGV[3]  subject (job id, run id or group: what the silence window is kept for)
-- ARGV[4]  silence ms (0: none, e.g. a test alert)
-- ARGV[5]  "<group>:<event id>" of the event, or "" for an alert from a state check
-- ARGV[6]  event (`dead`, `missed`, `no_executor`, ..., `test`)
-- ARGV[7]  group ("" for none); ARGV[8] job ("" for none)
-- ARGV[9]  payload (JSON)
-- ARGV[10] how long the seen marker of an event is kept (ms)
-- Reads:   seen:<rule>:<group>:<event>; silence:<rule>:<subject>
-- Writes:  seen (SET NX PX); silence (SET NX PX); delivery:<id> (A_RULE, A_EVENT,
--          A_SUBJECT, A_GROUP, A_JOB, A_PAYLOAD, A_ATTEMPTS 0); queue (due now)
-- Reply:   "queued" | "seen" | "silenced"
local id, rule, subject, silence, event_ref = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
if event_ref ~= '' then
  local seen = redis.call('SET', P .. K_ALERT_SEEN .. rule .. ':' .. event_ref, '1', 'NX',
    'PX', tonumber(ARGV[10]))
  if not seen then return 'seen' end
end
if silence > 0 then
  local quiet = redis.call('SET', P .. K_ALERT_SILENCE .. rule .. ':' .. subject, '1', 'NX',
    'PX', silence)
  if not quiet then return 'silenced' end
end
redis.call('HSET', P .. K_ALERT_DELIVERY .. id, A_RULE, rule, A_EVENT, ARGV[6],
  A_SUBJECT, subject, A_GROUP, ARGV[7], A_JOB, ARGV[8], A_PAYLOAD, ARGV[9], A_ATTEMPTS, 0)
redis.call('ZADD', P .. K_ALERT_QUEUE, now_ms(), id)
return 'queued'
