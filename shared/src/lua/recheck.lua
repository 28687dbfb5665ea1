-- Checks runs fired ahead of their tick just before a worker starts them: a run recalled
-- (its job paused, rescheduled or deleted) is gone, and a job changed since the fire has a
-- newer version the worker must load (invariant 8).
-- KEYS[1]  group prefix
-- ARGV     pairs: run id, job id
-- Reads:   run record (F_STATUS); job:<id> (field `version`)
-- Writes:  nothing
-- Reply:   {Redis now in ms, {per run: status or "", current job version or "", ...}}.
local out, versions = {}, {}
for i = 1, #ARGV, 2 do
  local job = ARGV[i + 1]
  if versions[job] == nil then
    versions[job] = redis.call('HGET', P .. K_JOB .. job, 'version') or ''
  end
  out[#out + 1] = redis.call('HGET', P .. K_RUN .. ARGV[i], F_STATUS) or ''
  out[#out + 1] = versions[job]
end
return {now_ms(), out}
