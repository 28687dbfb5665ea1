-- One-time backfill of the job table's last-status index (`last`: job id -> code of its
-- newest run's status, see views/last.rs) for jobs that existed before it. Sets each job of
-- a batch to the code of its newest run as recorded now; the scripts that change a job's
-- newest run write the same code, so a rerun, two replicas at once, or a job changed
-- between two calls all leave the index right. Stops after ARGV[2] jobs, so a call stays
-- short; after the last job it sets the marker (the job table then reads the index).
-- KEYS[1]  group prefix
-- ARGV[1]  cursor: job id to start after ("" = the first job)
-- ARGV[2]  jobs per call
-- Reads:   last-backfilled; jobs; runs:<job> (its newest run); run record (F_STATUS)
-- Writes:  last (one ZADD per call); last-backfilled (the Redis time in ms) once the last
--          job was seen
-- Reply:   {next cursor or "" when every job was seen, jobs indexed, 1 if the group was
--          already backfilled (nothing read) else 0}.
if redis.call('EXISTS', P .. K_LAST_BACKFILLED) == 1 then return {'', 0, 1} end
local batch = tonumber(ARGV[2])
local from = '-'
if ARGV[1] ~= '' then from = '(' .. ARGV[1] end
local jobs = redis.call('ZRANGE', P .. K_JOBS, from, '+', 'BYLEX', 'LIMIT', 0, batch)
local args = {}
for _, job in ipairs(jobs) do
  local top = redis.call('ZRANGE', P .. K_RUNS .. job, -1, -1)[1]
  local st = top and redis.call('HGET', P .. K_RUN .. top, F_STATUS)
  args[#args + 1] = last_code(st)
  args[#args + 1] = job
end
if #args > 0 then redis.call('ZADD', P .. K_LAST, unpack(args)) end
if #jobs < batch then
  redis.call('SET', P .. K_LAST_BACKFILLED, now_ms())
  return {'', #jobs, 0}
end
return {jobs[#jobs], #jobs, 0}
