-- Read-only: the newest runs of one run index, newest first (tick descending, then run id
-- descending): a group's `group-runs` or a job's `runs:<job>` (run id -> tick), optionally
-- only runs of one status (read from the run records of the entries examined). Reads the
-- index a slice at a time below the last entry examined, so the cost grows with the entries
-- examined, never with the size of the index; stops after about ARGV[8] entries and answers
-- where to resume, so one call never holds Redis for long.
-- KEYS[1] the run index
-- ARGV[1] run record key prefix (`<prefix>:{<group>}:run:`)
-- ARGV[2] need, ARGV[3] min tick ("-inf" or ms), ARGV[4] max tick ("+inf" or ms),
-- ARGV[5] cursor tick ("" none), ARGV[6] cursor run id (continue strictly after it),
-- ARGV[7] status ("" any), ARGV[8] entries examined per call
-- Returns {resume tick or "", resume run id or "", tick1, run1, tick2, run2, ...}, newest
-- first; a resume point (continue strictly after it) only when the call stopped before
-- finding `need` runs and the index may hold more.
local index, runs = KEYS[1], ARGV[1]
local need = tonumber(ARGV[2])
local lo, hi = ARGV[3], ARGV[4]
local cscore, crun = tonumber(ARGV[5]), ARGV[6]
local status = ARGV[7]
local budget = tonumber(ARGV[8])

local out = {'', ''}
local found = 0
-- Entries tied on the cursor's tick at or above its run id were shown already.
local max = hi
if cscore and (hi == '+inf' or tonumber(hi) >= cscore) then
  max = string.format('%d', cscore)
else
  cscore = nil
end
local chunk = need + 16
if status ~= '' then chunk = math.max(chunk, 256) end
chunk = math.min(chunk, budget)
-- `offset` skips the entries examined already that are tied on `max` (the next slice starts
-- at the last tick examined). Entries before the cursor (tied on its tick) are skipped and
-- not counted, so a resume point always lies past the cursor.
local offset, examined = 0, 0
local resume_tick, resume_run = nil, nil
while true do
  local rows = redis.call('ZRANGE', index, max, lo, 'BYSCORE', 'REV', 'LIMIT', offset, chunk,
    'WITHSCORES')
  local last_tick, ties = nil, 0
  for i = 1, #rows, 2 do
    local run, tick = rows[i], tonumber(rows[i + 1])
    if tick == last_tick then ties = ties + 1 else last_tick, ties = tick, 1 end
    if not (cscore and tick == cscore and run >= crun) then
      examined = examined + 1
      resume_tick, resume_run = tick, run
      if status == '' or redis.call('HGET', runs .. run, 'status') == status then
        out[#out + 1] = string.format('%d', tick)
        out[#out + 1] = run
        found = found + 1
        if found >= need then return out end
      end
    end
  end
  if #rows < 2 * chunk then return out end
  local next_max = string.format('%d', last_tick)
  if next_max == max then offset = offset + ties else offset = ties end
  max = next_max
  if examined >= budget and resume_run then
    out[1] = string.format('%d', resume_tick)
    out[2] = resume_run
    return out
  end
end
