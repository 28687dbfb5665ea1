-- One-time backfill of the group run index (group-runs) from the job run indexes, for runs
-- recorded before group-runs existed. Adds every entry of runs:<job> (run id -> tick) to
-- group-runs with its tick: an entry already there is left as it is, so a rerun, or two
-- replicas at once, add nothing twice. Every entry of a job index is a live run at any
-- instant (the scripts that delete runs delete them from both indexes), so the union is
-- always right. Stops after the job at which ARGV[3] entries were read, so a call stays short.
-- KEYS[1]  group prefix
-- ARGV[1]  cursor: job id to start after ("" = the first job)
-- ARGV[2]  jobs per call
-- ARGV[3]  entries read per call (checked after each job)
-- Reads:   backfilled; jobs; runs:<job>
-- Writes:  group-runs; backfilled (the Redis time in ms) once the last job was seen
-- Reply:   {next cursor or "" when every job was seen, runs added, 1 if the group was
--          already backfilled (nothing read) else 0}.
if redis.call('EXISTS', P .. K_BACKFILLED) == 1 then return {'', 0, 1} end
local batch, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
local from = '-'
if ARGV[1] ~= '' then from = '(' .. ARGV[1] end
local jobs = redis.call('ZRANGE', P .. K_JOBS, from, '+', 'BYLEX', 'LIMIT', 0, batch)
local gk = P .. K_GROUP_RUNS
local added, read = 0, 0
for i, job in ipairs(jobs) do
  local flat = redis.call('ZRANGE', P .. K_RUNS .. job, 0, -1, 'WITHSCORES')
  local args = {}
  for j = 1, #flat, 2 do
    args[#args + 1] = flat[j + 1]
    args[#args + 1] = flat[j]
    if #args >= 1000 then
      added = added + redis.call('ZADD', gk, 'NX', unpack(args))
      args = {}
    end
  end
  if #args > 0 then added = added + redis.call('ZADD', gk, 'NX', unpack(args)) end
  read = read + #flat / 2
  if read >= budget and i < #jobs then return {job, added, 0} end
end
if #jobs < batch then
  redis.call('SET', P .. K_BACKFILLED, now_ms())
  return {'', added, 0}
end
return {jobs[#jobs], added, 0}
