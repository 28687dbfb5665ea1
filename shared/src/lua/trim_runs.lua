-- Retention of run records: keeps at most ARGV[1] runs per job and none older than ARGV[2]
-- ms, never touching a run that is queued, running or waiting for a retry.
-- KEYS[1]  group prefix
-- ARGV[1]  runs kept per job
-- ARGV[2]  oldest run kept (ms of age, on the scheduled instant)
-- ARGV[3]  cursor: job id to start after ("" = the first job)
-- ARGV[4]  jobs per call
-- Reads:   jobs; runs:<job>; run record (F_STATUS, F_RETRY_AT)
-- Writes:  deletes old run records and their logs, and their runs:<job> and group-runs
--          members; last (the code of a job that lost runs, from its newest run left)
-- Reply:   {next cursor or "" when every job was seen, runs deleted}.
local keep, max_age, batch = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local from = '-'
if ARGV[3] ~= '' then from = '(' .. ARGV[3] end
local jobs = redis.call('ZRANGE', P .. K_JOBS, from, '+', 'BYLEX', 'LIMIT', 0, batch)
local cutoff = now_ms() - max_age
local deleted = 0
local dropped = false -- whether the current job lost a run (its newest may have changed)
local function drop(job, run)
  local rk = P .. K_RUN .. run
  local st = redis.call('HGET', rk, F_STATUS)
  local active = st == 'queued' or st == 'running' or
    ((st == 'failed' or st == 'timed_out') and redis.call('HEXISTS', rk, F_RETRY_AT) == 1)
  if not active then
    redis.call('DEL', rk, P .. K_LOG .. run)
    redis.call('ZREM', P .. K_RUNS .. job, run)
    redis.call('ZREM', P .. K_GROUP_RUNS, run)
    deleted = deleted + 1
    dropped = true
  end
end
for _, job in ipairs(jobs) do
  dropped = false
  local rk = P .. K_RUNS .. job
  local n = redis.call('ZCARD', rk)
  if n > keep then
    for _, run in ipairs(redis.call('ZRANGE', rk, 0, n - keep - 1)) do drop(job, run) end
  end
  for _, run in ipairs(redis.call('ZRANGE', rk, '-inf', cutoff, 'BYSCORE', 'LIMIT', 0, 1000)) do
    drop(job, run)
  end
  if dropped then reindex_last(P, job) end
end
if #jobs < batch then return {'', deleted} end
return {jobs[#jobs], deleted}
