-- Records finished attempts and acknowledges their entries (invariants 4, 6), batched.
-- KEYS[1] group prefix
-- ARGV[1] worker id, ARGV[2] / ARGV[3] lowest / highest entry id of the batch,
-- ARGV[4] n: how many plain successes follow as quadruples: entry, run id, duration ms, ms
--   since the attempt started (first attempt, no result, no concurrency policy: the common
--   case, recorded with one HSET of four fields; finished_at is started_at + duration_ms
--   when read),
-- then 13 per other attempt: entry, run id, job id, outcome, attempt, max attempts, retry
--   delay ms ("" = no retry), code, duration ms, result JSON, error, "1" when the job has a
--   concurrency policy (its in-flight marker is then released), ms since it started
-- outcome: succeeded | failed | timed_out | cancelled | fatal (failed, never retry) |
--   skip (acknowledge the entry without touching the run record)
-- Only entries still pending for this worker are recorded (one XPENDING over the batch's id
-- range), so a run another worker reclaimed and finished is recorded once. A failure with
-- attempts left stays pending, listed in the retry set for its backoff. XACK and the
-- active-map cleanup are one command per batch.
-- Returns one verdict per attempt, plain successes first: "final" | "dead" | "retry" |
-- "stale" | "skip".
local P = KEYS[1]
local worker = ARGV[1]
local stream = P .. 'stream'
local now = now_ms()
local W = 13
local n_fast = tonumber(ARGV[4])
local slow_from = 5 + 4 * n_fast

-- Which of the batch's entries are still pending for this worker.
local mine = {}
for _, p in ipairs(redis.call('XPENDING', stream, 'workers', ARGV[2], ARGV[3], 100000, worker)) do
  mine[p[1]] = true
end
local cancels = redis.call('EXISTS', P .. 'cancel') == 1

-- Attempt history (field `history`, a JSON array): kept only for runs that failed, were
-- cancelled or took more than one attempt, so a first-time success costs nothing extra.
local function history(rk, attempt, status, code, duration, started, err)
  local h = redis.call('HGET', rk, 'history')
  local list = h and cjson.decode(h) or {}
  list[#list + 1] = {attempt = attempt, status = status, started_at = started,
    finished_at = now, duration_ms = tonumber(duration), worker = worker,
    code = tonumber(code), error = err}
  while #list > 25 do table.remove(list, 1) end
  return cjson.encode(list)
end

local out, ack, done, unretry = {}, {}, {}, {}
local run_prefix = P .. 'run:'
for i = 5, slow_from - 1, 4 do
  local entry, run = ARGV[i], ARGV[i + 1]
  if mine[entry] then
    redis.call('HSET', run_prefix .. run, 'status', 'succeeded', 'duration_ms', ARGV[i + 2],
      'started_at', now - tonumber(ARGV[i + 3]), 'worker', worker)
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
  local rk = P .. 'run:' .. run
  local failure = outcome == 'failed' or outcome == 'timed_out'
  if outcome == 'skip' then
    ack[#ack + 1] = entry
    if run ~= '' then done[#done + 1] = run end
    out[#out + 1] = 'skip'
  elseif not mine[entry] then
    out[#out + 1] = 'stale'
  elseif failure and attempt < max_attempts and delay ~= '' then
    local due = now + tonumber(delay)
    redis.call('HSET', rk, 'status', outcome, 'attempt', attempt,
      'duration_ms', duration, 'started_at', started, 'finished_at', now, 'worker', worker,
      'error', err, 'retry_at', due,
      'history', history(rk, attempt, outcome, code, duration, started, err))
    redis.call('ZADD', P .. 'retry', due, entry)
    out[#out + 1] = 'retry'
  else
    local status = outcome
    if outcome == 'fatal' then status = 'failed' end
    if outcome == 'cancelled' and cancels then
      err = redis.call('HGET', P .. 'cancel', run) or err
      redis.call('HDEL', P .. 'cancel', run)
    end
    local verdict = 'final'
    if failure and max_attempts > 1 then
      status = 'dead'
      verdict = 'dead'
      redis.call('XADD', P .. 'dead', 'MAXLEN', '~', 100000, '*', 'run', run, 'job', job,
        'entry', entry, 'attempts', attempt, 'error', err, 'failed_at', now)
    end
    local eventful = status ~= 'succeeded' or attempt > 1
    if not eventful and result == '' then
      -- The common case, without building an argument table. The code follows from the
      -- status when read.
      redis.call('HSET', rk, 'status', status, 'attempt', attempt, 'duration_ms', duration,
        'started_at', started, 'finished_at', now, 'worker', worker)
    else
      local rec = {'status', status, 'attempt', attempt, 'duration_ms', duration,
        'started_at', started, 'finished_at', now, 'worker', worker}
      if status == 'dead' then
        rec[#rec + 1] = 'code'
        rec[#rec + 1] = code
      end
      if result ~= '' then
        rec[#rec + 1] = 'result'
        rec[#rec + 1] = result
      end
      if err ~= '' then
        rec[#rec + 1] = 'error'
        rec[#rec + 1] = err
      end
      if eventful then
        rec[#rec + 1] = 'history'
        rec[#rec + 1] = history(rk, attempt, status, code, duration, started, err)
      end
      redis.call('HSET', rk, unpack(rec))
    end
    if eventful then
      redis.call('HDEL', rk, 'retry_at', 'cancel')
      unretry[#unretry + 1] = entry
    end
    if guarded and redis.call('HGET', P .. 'inflight', job) == run then
      redis.call('HDEL', P .. 'inflight', job)
    end
    ack[#ack + 1] = entry
    done[#done + 1] = run
    out[#out + 1] = verdict
  end
end
if #ack > 0 then redis.call('XACK', stream, 'workers', unpack(ack)) end
if #done > 0 then redis.call('HDEL', P .. 'active', unpack(done)) end
if #unretry > 0 then redis.call('ZREM', P .. 'retry', unpack(unretry)) end
return out
