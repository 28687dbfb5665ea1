-- Records finished attempts and acknowledges their entries (invariants 4, 6), batched.
-- KEYS[1]  group prefix
-- KEYS[2], KEYS[3]  (optional) the worker's own stream and its retry set, for broadcast
--          runs; without them the group stream and `retry`
-- ARGV[1]  worker id
-- ARGV[2], ARGV[3]  lowest / highest entry id of the batch
-- ARGV[4]  n: how many plain successes follow as quadruples: entry, run id, duration ms,
--          ms since the attempt started. A plain success (first attempt, no result, no
--          concurrency policy) is the common case, recorded with one HSET of four fields;
--          its finished_at is started_at + duration_ms when read.
-- then 13 per other attempt: entry, run id, job id, outcome, attempt, max attempts, retry
--          delay ms ("" = no retry), code, duration ms, result JSON or "", error or "", "1"
--          when the job has a concurrency policy (its in-flight marker is then released),
--          ms since the attempt started.
--          outcome: succeeded | failed | timed_out | cancelled | fatal (failed, never retry)
--          | skip (acknowledge the entry without touching the run record)
-- Reads:   the stream's pending list (only entries still pending for this worker are
--          recorded, so a run another worker reclaimed and finished is recorded once);
--          cancel (the reason of a requested cancel); run record (F_HISTORY); inflight;
--          runs:<job> (whether a run is its job's newest: one ZRANGE per run)
-- Writes:  run record (F_STATUS, F_ATTEMPT, F_DURATION_MS, F_STARTED_AT, F_FINISHED_AT,
--          F_WORKER, and where they apply F_CODE, F_RESULT, F_ERROR, F_RETRY_AT,
--          F_HISTORY); retry (a failure with attempts left stays pending, listed there for
--          its backoff); dead (a dead letter D_* when attempts are exhausted); cancel;
--          inflight; last (jobs whose newest run was recorded: one ZADD per batch); the
--          stream (one XACK per batch); active (one HDEL per batch);
--          alerts: fail-streaks (job -> consecutive failed runs: + 1 on a final failure,
--          deleted on a success, looked at only while it exists) and alert-events (one
--          capped XADD per final failure or timed-out attempt: A_KIND, A_RUN, A_ATTEMPT,
--          A_STREAK, A_ERROR)
-- Reply:   one verdict per attempt, plain successes first: "final" | "dead" | "retry" |
--          "stale" (no longer this worker's) | "skip".
local worker = ARGV[1]
local stream = P .. K_STREAM
local retry_key = P .. K_RETRY
if KEYS[2] then stream, retry_key = KEYS[2], KEYS[3] end
local now = now_ms()
local W = 13
local n_fast = tonumber(ARGV[4])
local slow_from = 5 + 4 * n_fast

-- Which of the batch's entries are still pending for this worker.
local mine = {}
-- (An own stream deleted when its executor was judged stopped holds nothing of it.)
if not KEYS[2] or has_group(stream) then
  for _, p in ipairs(redis.call('XPENDING', stream, CONSUMER_GROUP, ARGV[2], ARGV[3], 100000, worker)) do
    mine[p[1]] = true
  end
end
local cancel_key = P .. K_CANCEL
local cancels = redis.call('EXISTS', cancel_key) == 1
-- Alerts: a job's failure streak, and an event per final failure or timed-out attempt.
local streaks_key = P .. K_FAIL_STREAKS
local streaking = redis.call('EXISTS', streaks_key) == 1
local function alert_event(P, kind, run, attempt, streak, err)
  redis.call('XADD', P .. K_ALERT_EVENTS, 'MAXLEN', '~', 10000, '*', A_KIND, kind, A_RUN, run,
    A_ATTEMPT, attempt, A_STREAK, streak, A_ERROR, err)
end

-- Attempt history (a JSON array): kept only for runs that failed, were cancelled or took
-- more than one attempt, so a first-time success costs nothing extra.
local function history(rk, attempt, status, code, duration, started, err)
  local h = redis.call('HGET', rk, F_HISTORY)
  local list = h and cjson.decode(h) or {}
  list[#list + 1] = {attempt = attempt, status = status, started_at = started,
    finished_at = now, duration_ms = tonumber(duration), worker = worker,
    code = tonumber(code), error = err}
  while #list > 25 do table.remove(list, 1) end
  return cjson.encode(list)
end

local out, ack, done, unretry, last = {}, {}, {}, {}, {}
local run_prefix = P .. K_RUN
for i = 5, slow_from - 1, 4 do
  local entry, run = ARGV[i], ARGV[i + 1]
  if mine[entry] then
    redis.call('HSET', run_prefix .. run, F_STATUS, 'succeeded', F_DURATION_MS, ARGV[i + 2],
      F_STARTED_AT, now - tonumber(ARGV[i + 3]), F_WORKER, worker)
    note_last(P, run, 'succeeded', last)
    if streaking then redis.call('HDEL', streaks_key, string.match(run, '^[^-]+')) end
    ack[#ack + 1] = entry
    done[#done + 1] = run
    out[#out + 1] = 'final'
  else
    out[#out + 1] = 'stale'
  end
end
for i = slow_from, #ARGV, W do
  local entry, run, job, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local attempt, max_attempts = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local delay, code, duration = ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
  local result, err, guarded = ARGV[i + 9], ARGV[i + 10], ARGV[i + 11] == '1'
  local started = now - tonumber(ARGV[i + 12])
  local rk = run_prefix .. run
  local failure = outcome == 'failed' or outcome == 'timed_out'
  if outcome == 'skip' then
    ack[#ack + 1] = entry
    if run ~= '' then done[#done + 1] = run end
    out[#out + 1] = 'skip'
  elseif not mine[entry] then
    out[#out + 1] = 'stale'
  elseif failure and attempt < max_attempts and delay ~= '' then
    local due = now + tonumber(delay)
    redis.call('HSET', rk, F_STATUS, outcome, F_ATTEMPT, attempt,
      F_DURATION_MS, duration, F_STARTED_AT, started, F_FINISHED_AT, now, F_WORKER, worker,
      F_ERROR, err, F_RETRY_AT, due,
      F_HISTORY, history(rk, attempt, outcome, code, duration, started, err))
    redis.call('ZADD', retry_key, due, entry)
    note_last(P, run, outcome, last)
    if outcome == 'timed_out' then alert_event(P, outcome, run, attempt, 0, err) end
    out[#out + 1] = 'retry'
  else
    local status = outcome
    if outcome == 'fatal' then status = 'failed' end
    if outcome == 'cancelled' and cancels then
      err = redis.call('HGET', cancel_key, run) or err
      redis.call('HDEL', cancel_key, run)
    end
    local verdict = 'final'
    if failure and max_attempts > 1 then
      status = 'dead'
      verdict = 'dead'
      redis.call('XADD', P .. K_DEAD, 'MAXLEN', '~', 100000, '*', D_RUN, run, D_JOB, job,
        D_ENTRY, entry, D_ATTEMPTS, attempt, D_ERROR, err, D_FAILED_AT, now)
    end
    local eventful = status ~= 'succeeded' or attempt > 1
    if not eventful and result == '' then
      -- The common case, without building an argument table. The code follows from the
      -- status when read.
      redis.call('HSET', rk, F_STATUS, status, F_ATTEMPT, attempt, F_DURATION_MS, duration,
        F_STARTED_AT, started, F_FINISHED_AT, now, F_WORKER, worker)
    else
      local rec = {F_STATUS, status, F_ATTEMPT, attempt, F_DURATION_MS, duration,
        F_STARTED_AT, started, F_FINISHED_AT, now, F_WORKER, worker}
      if status == 'dead' then
        rec[#rec + 1] = F_CODE
        rec[#rec + 1] = code
      end
      if result ~= '' then
        rec[#rec + 1] = F_RESULT
        rec[#rec + 1] = result
      end
      if err ~= '' then
        rec[#rec + 1] = F_ERROR
        rec[#rec + 1] = err
      end
      if eventful then
        rec[#rec + 1] = F_HISTORY
        rec[#rec + 1] = history(rk, attempt, status, code, duration, started, err)
      end
      redis.call('HSET', rk, unpack(rec))
    end
    note_last(P, run, status, last)
    if status == 'failed' or status == 'dead' or status == 'timed_out' then
      alert_event(P, status, run, attempt, redis.call('HINCRBY', streaks_key, job, 1), err)
    elseif status == 'succeeded' and streaking then
      redis.call('HDEL', streaks_key, job)
    end
    if eventful then
      redis.call('HDEL', rk, F_RETRY_AT)
      unretry[#unretry + 1] = entry
    end
    if guarded and redis.call('HGET', P .. K_INFLIGHT, job) == run then
      redis.call('HDEL', P .. K_INFLIGHT, job)
    end
    ack[#ack + 1] = entry
    done[#done + 1] = run
    out[#out + 1] = verdict
  end
end
write_last(P, last)
if #ack > 0 then redis.call('XACK', stream, CONSUMER_GROUP, unpack(ack)) end
if #done > 0 then redis.call('HDEL', P .. K_ACTIVE, unpack(done)) end
if #unretry > 0 then redis.call('ZREM', retry_key, unpack(unretry)) end
return out
