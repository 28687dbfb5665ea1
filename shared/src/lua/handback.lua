-- Hands unfinished runs back on shutdown: the entries stay pending but look idle past any
-- lease, so the next XAUTOCLAIM of a live worker takes them at once.
-- KEYS[1]  group prefix
-- ARGV[1]  consumer (the worker shutting down)
-- ARGV[2]  idle ms to set on the entries
-- ARGV[3..] pairs: entry id, run id
-- Reads:   the stream's pending list; run record (F_STATUS, F_HISTORY, F_ATTEMPT,
--          F_STARTED_AT)
-- Writes:  the pending list (XCLAIM ... IDLE to itself); a running run's record goes back to
--          F_STATUS 'queued' with a `handed_back` attempt in F_HISTORY and F_ERROR; last (if
--          it is its job's newest run)
-- Reply:   1.
local me = ARGV[1]
local stream = P .. K_STREAM
for i = 3, #ARGV, 2 do
  local p = redis.call('XPENDING', stream, CONSUMER_GROUP, ARGV[i], ARGV[i], 1, me)
  if p[1] then
    redis.call('XCLAIM', stream, CONSUMER_GROUP, me, 0, ARGV[i], 'IDLE', ARGV[2], 'JUSTID')
    local rk = P .. K_RUN .. ARGV[i + 1]
    if redis.call('HGET', rk, F_STATUS) == 'running' then
      local f = redis.call('HMGET', rk, F_HISTORY, F_ATTEMPT, F_STARTED_AT)
      local list = f[1] and cjson.decode(f[1]) or {}
      list[#list + 1] = {attempt = tonumber(f[2]), status = 'handed_back', worker = me,
        started_at = tonumber(f[3]), error = 'its executor shut down before it finished'}
      redis.call('HSET', rk, F_STATUS, 'queued', F_HISTORY, cjson.encode(list),
        F_ERROR, 'handed back by ' .. me .. ' at shutdown')
      local last = {}
      note_last(P, ARGV[i + 1], 'queued', last)
      write_last(P, last)
    end
  end
end
return 1
