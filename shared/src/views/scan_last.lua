-- Read-only: which of a group's jobs whose newest run has one status match the job table's
-- other filters, read from the group's last-status index (`last`: job id -> status code, 0
-- for a job without runs). The members of one code share a score, so they are adjacent and
-- in id order; their ranks are found with ZCOUNT and a binary search, never by a scan.
-- KEYS[1] the group's last-status index
-- ARGV[1] status code, ARGV[2] prefix of the group's job hashes (`<prefix>job:`)
-- ARGV[3] start after this job id ("" first), ARGV[4] members checked per call
-- ARGV[5] name needle, lowercase ("" any), ARGV[6] enabled ("" any, "true", "false")
-- ARGV[7] collect matching ids after this one ("" all), ARGV[8] most ids collected
-- Returns {next job id or "", matches among the members checked, id1, id2, ...}. Without a
-- name or enabled filter nothing is checked: one call answers, the matches are every member
-- of the code (ZCOUNT) and the ids are read from the collect cursor on.
local idx = KEYS[1]
local code, jobs = tonumber(ARGV[1]), ARGV[2]
local lo = redis.call('ZCOUNT', idx, '-inf', '(' .. code)
local n = redis.call('ZCOUNT', idx, code, code)
local hi = lo + n -- one past the last rank of the code

-- The first rank of the code whose member sorts after `id` ("" = its first rank).
local function after(id)
  if id == '' then return lo end
  local s = redis.call('ZSCORE', idx, id)
  if s and tonumber(s) == code then return redis.call('ZRANK', idx, id) + 1 end
  local a, b = lo, hi
  while a < b do
    local m = math.floor((a + b) / 2)
    if redis.call('ZRANGE', idx, m, m)[1] > id then b = m else a = m + 1 end
  end
  return a
end

local needle, enabled = ARGV[5], ARGV[6]
local collect_after, want = ARGV[7], tonumber(ARGV[8])
local out = {'', '0'}
if needle == '' and enabled == '' then
  out[2] = tostring(n)
  local from = after(collect_after)
  local to = math.min(from + want, hi) - 1
  if from <= to then
    for _, id in ipairs(redis.call('ZRANGE', idx, from, to)) do out[#out + 1] = id end
  end
  return out
end
local from = after(ARGV[3])
local to = math.min(from + tonumber(ARGV[4]), hi) - 1
if from > to then return out end
local ids = redis.call('ZRANGE', idx, from, to)
local matches = 0
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', jobs .. id, 'name', 'enabled')
  local ok = f[1] ~= false
  if ok and needle ~= '' then ok = string.find(string.lower(f[1]), needle, 1, true) ~= nil end
  if ok and enabled ~= '' then ok = f[2] == enabled end
  if ok then
    matches = matches + 1
    if (collect_after == '' or id > collect_after) and #out - 2 < want then
      out[#out + 1] = id
    end
  end
end
if to < hi - 1 then out[1] = ids[#ids] end
out[2] = tostring(matches)
return out
