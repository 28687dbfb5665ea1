-- Due ticks of one group, on the Redis clock (invariant 1).
-- KEYS[1]  group prefix
-- ARGV[1]  most jobs to return
-- ARGV[2]  how far ahead of now to look (ms: ticks are fired that much early, and start at
--          their instant)
-- Reads:   schedule (job id -> next fire instant); job:<id> (field `version`)
-- Writes:  nothing
-- Reply:   {now, next score or "", {job id, score, version or "", ...}}: the jobs whose next
--          fire instant is due (or within the look-ahead), with the version of their
--          definition so callers can use a cache ("" when the definition is gone), and the
--          earliest score not returned: past the look-ahead, or the last one returned when
--          the batch is full (more are due) — so a caller that fired every job returned
--          knows when the group is due next without reading again.
local now = now_ms()
local schedule = P .. K_SCHEDULE
local due = redis.call('ZRANGE', schedule, '-inf', now + tonumber(ARGV[2] or '0'),
  'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]), 'WITHSCORES')
local out = {}
for i = 1, #due, 2 do
  out[#out + 1] = due[i]
  out[#out + 1] = due[i + 1]
  out[#out + 1] = redis.call('HGET', P .. K_JOB .. due[i], 'version') or ''
end
local limit = tonumber(ARGV[1])
if #due / 2 >= limit then
  return {tostring(now), due[#due], out}
end
local first = redis.call('ZRANGE', schedule, '(' .. (now + tonumber(ARGV[2] or '0')), '+inf',
  'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
return {tostring(now), first[2] or '', out}
