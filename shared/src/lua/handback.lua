-- Hands unfinished runs back on shutdown: the entries stay pending but look idle past any
-- lease, so the next XAUTOCLAIM of a live worker takes them at once.
-- KEYS[1] group prefix
-- ARGV[1] consumer, ARGV[2] idle ms to set, then pairs: entry id, run id
local P = KEYS[1]
local stream = P .. 'stream'
for i = 3, #ARGV, 2 do
  local p = redis.call('XPENDING', stream, 'workers', ARGV[i], ARGV[i], 1, ARGV[1])
  if p[1] then
    redis.call('XCLAIM', stream, 'workers', ARGV[1], 0, ARGV[i], 'IDLE', ARGV[2], 'JUSTID')
    local rk = P .. 'run:' .. ARGV[i + 1]
    if redis.call('HGET', rk, 'status') == 'running' then
      local f = redis.call('HMGET', rk, 'history', 'attempt', 'started_at')
      local list = f[1] and cjson.decode(f[1]) or {}
      list[#list + 1] = {attempt = tonumber(f[2]), status = 'handed_back', worker = ARGV[1],
        started_at = tonumber(f[3]), error = 'its executor shut down before it finished'}
      redis.call('HSET', rk, 'status', 'queued', 'history', cjson.encode(list),
        'error', 'handed back by ' .. ARGV[1] .. ' at shutdown')
    end
  end
end
return 1
