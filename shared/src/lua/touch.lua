-- Heartbeat of a live executor: resets the idle time of the entries it is running, so a
-- long run is never reclaimed while its worker lives (invariant 4), and records the beat.
-- It also reports runs whose cancellation was requested, in case the executor missed the
-- pub/sub message.
-- KEYS[1] group prefix
-- ARGV[1] consumer, ARGV[2..] entry ids it is running
-- Returns {disabled (0/1), {ids no longer owned by it}, {run ids to cancel}}.
local P = KEYS[1]
local me = ARGV[1]
local stream = P .. 'stream'
local lost, cancel = {}, {}
for i = 2, #ARGV do
  local p = redis.call('XPENDING', stream, 'workers', ARGV[i], ARGV[i], 1, me)
  if p[1] then
    redis.call('XCLAIM', stream, 'workers', me, 0, ARGV[i], 'JUSTID')
    local run = redis.call('HGET', P .. 'active', ARGV[i])
    if run and redis.call('HEXISTS', P .. 'run:' .. run, 'cancel') == 1 then
      cancel[#cancel + 1] = run
    end
  else
    lost[#lost + 1] = ARGV[i]
  end
end
redis.call('ZADD', P .. 'heartbeats', now_ms(), me)
return {redis.call('SISMEMBER', P .. 'disabled', me), lost, cancel}
