-- Read-only: which of a group's jobs match the job table's filters. Scans up to ARGV[2] jobs
-- per call in id order (resume with the returned job id), reading only what the filters
-- need: name and enabled from the job hash, and for a last-status filter the status of the
-- job's newest run.
-- KEYS[1] group prefix
-- ARGV[1] start after this job id ("" first), ARGV[2] jobs per call,
-- ARGV[3] name needle, lowercase ("" any), ARGV[4] enabled ("" any, "true", "false"),
-- ARGV[5] newest run's status ("" any, a status, or "none" for jobs without runs),
-- ARGV[6] collect matching ids after this one ("" all), ARGV[7] most ids collected
-- Returns {next job id or "", matches among the jobs scanned, id1, id2, ...}.
local P = KEYS[1]
local from = '-'
if ARGV[1] ~= '' then from = '(' .. ARGV[1] end
local batch = tonumber(ARGV[2])
local needle, enabled, last = ARGV[3], ARGV[4], ARGV[5]
local after, want = ARGV[6], tonumber(ARGV[7])
local jobs = redis.call('ZRANGE', P .. 'jobs', from, '+', 'BYLEX', 'LIMIT', 0, batch)
local matches = 0
local out = {'', 0}
for _, id in ipairs(jobs) do
  local f = redis.call('HMGET', P .. 'job:' .. id, 'name', 'enabled')
  local ok = f[1] ~= false
  if ok and needle ~= '' then ok = string.find(string.lower(f[1]), needle, 1, true) ~= nil end
  if ok and enabled ~= '' then ok = f[2] == enabled end
  if ok and last ~= '' then
    local newest = redis.call('ZRANGE', P .. 'runs:' .. id, -1, -1)
    local st = 'none'
    if #newest > 0 then st = redis.call('HGET', P .. 'run:' .. newest[1], 'status') or 'none' end
    ok = st == last
  end
  if ok then
    matches = matches + 1
    if (after == '' or id > after) and #out - 2 < want then out[#out + 1] = id end
  end
end
if #jobs == batch then out[1] = jobs[#jobs] end
out[2] = tostring(matches)
return out
