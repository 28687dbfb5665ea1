-- Records finished attempts and acknowledges their entries (invariants 4, 6), batched.
-- KEYS[1] group prefix
-- ARGV[1] worker id, then 12 per attempt: entry, run id, job id, outcome, attempt,
--   max attempts, retry delay ms ("" = no retry), code, duration ms, result JSON, error,
--   "1" when the job has a concurrency policy (its in-flight marker is then released)
-- outcome: succeeded | failed | timed_out | cancelled | fatal (failed, never retry) |
--   skip (entry only: acknowledge without touching the run record)
-- A final outcome acknowledges the entry; only the attempt whose XACK removed it from the
-- pending list writes the record, so a run finished twice is recorded once. A failure with
-- attempts left stays pending and is listed in the retry set for its backoff.
-- Returns one verdict per attempt: "final" | "dead" | "retry" | "stale" | "skip".
local P = KEYS[1]
local worker = ARGV[1]
local stream = P .. 'stream'
local now = now_ms()
local out = {}

-- Attempt history (field `history`, a JSON array): kept only for runs that failed or took
-- more than one attempt, so a first-time success costs nothing extra.
local function add_history(rk, attempt, status, code, duration, err)
  local f = redis.call('HMGET', rk, 'history', 'started_at')
  local list = f[1] and cjson.decode(f[1]) or {}
  list[#list + 1] = {attempt = attempt, status = status, started_at = tonumber(f[2]),
    finished_at = now, duration_ms = tonumber(duration), worker = worker,
    code = tonumber(code), error = err}
  while #list > 25 do table.remove(list, 1) end
  redis.call('HSET', rk, 'history', cjson.encode(list))
end
for i = 2, #ARGV, 12 do
  local entry, run, job, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local attempt, max_attempts = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local delay, code, duration = ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
  local result, err, guarded = ARGV[i + 9], ARGV[i + 10], ARGV[i + 11] == '1' 
  local rk = P .. 'run:' .. run
  local failure = outcome == 'failed' or outcome == 'timed_out'
  if failure and attempt < max_attempts and delay ~= '' then
    local p = redis.call('XPENDING', stream, 'workers', entry, entry, 1)
    if #p == 0 or p[1][2] ~= worker then
      out[#out + 1] = 'stale'
    else
      local due = now + tonumber(delay)
      add_history(rk, attempt, outcome, code, duration, err)
      redis.call('HSET', rk, 'status', outcome, 'attempt', attempt, 'code', code,
        'duration_ms', duration, 'finished_at', now, 'worker', worker, 'error', err,
        'retry_at', due)
      redis.call('ZADD', P .. 'retry', due, entry)
      out[#out + 1] = 'retry'
    end
  else
    local acked = redis.call('XACK', stream, 'workers', entry)
    redis.call('HDEL', P .. 'active', entry)
    redis.call('ZREM', P .. 'retry', entry)
    if outcome == 'skip' then
      out[#out + 1] = 'skip'
    elseif acked == 0 or redis.call('EXISTS', rk) == 0 then
      out[#out + 1] = 'stale'
    else
      local status = outcome
      if outcome == 'fatal' then status = 'failed' end
      if outcome == 'cancelled' then
        err = redis.call('HGET', rk, 'cancel') or err
      end
      local verdict = 'final'
      if failure and max_attempts > 1 then
        status = 'dead'
        verdict = 'dead'
        redis.call('XADD', P .. 'dead', 'MAXLEN', '~', 100000, '*', 'run', run, 'job', job,
          'entry', entry, 'attempts', attempt, 'error', err, 'failed_at', now)
      end
      if status ~= 'succeeded' or attempt > 1 or redis.call('HEXISTS', rk, 'history') == 1 then
        add_history(rk, attempt, status, code, duration, err)
      end
      redis.call('HSET', rk, 'status', status, 'attempt', attempt, 'code', code,
        'duration_ms', duration, 'finished_at', now, 'worker', worker)
      if result ~= '' then redis.call('HSET', rk, 'result', result) end
      if err ~= '' then redis.call('HSET', rk, 'error', err) end
      redis.call('HDEL', rk, 'retry_at', 'cancel')
      if guarded and redis.call('HGET', P .. 'inflight', job) == run then
        redis.call('HDEL', P .. 'inflight', job)
      end
      out[#out + 1] = verdict
    end
  end
end
return out
