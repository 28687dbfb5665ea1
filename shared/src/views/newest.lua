-- Read-only: the newest runs of a group's jobs (or of one job), merged from their run
-- indexes (`runs:<job>`, scored by tick), optionally only runs of one status. Scans up to
-- ARGV[7] jobs per call (resume with the returned job id) and reads at most about
-- ARGV[10] run statuses per call (the job being read is always finished), so one call never
-- holds Redis for long. The score floor rises as the answer fills, so most jobs return
-- nothing.
-- KEYS[1] group prefix
-- ARGV[1] need, ARGV[2] min tick ("-inf" or ms), ARGV[3] max tick ("+inf" or ms),
-- ARGV[4] cursor tick ("" none), ARGV[5] cursor run id (continue strictly after it, in the
-- order tick desc, run id desc), ARGV[6] start after this job id ("" first),
-- ARGV[7] jobs per call, ARGV[8] floor from earlier calls ("" none),
-- ARGV[9] status ("" any), ARGV[10] status reads per call, ARGV[11] only this job ("" all)
-- Returns {next job id or "", tick1, run1, tick2, run2, ...}, newest first.
local P = KEYS[1]
local need = tonumber(ARGV[1])
local lo, hi = ARGV[2], ARGV[3]
local cscore = tonumber(ARGV[4])
local crun = ARGV[5]
local cjob = ''
if cscore then cjob = (string.match(crun, '^([^-]*)') or '') .. '-' end
local batch = tonumber(ARGV[7])
local status = ARGV[9]
local budget = tonumber(ARGV[10])
local lo_n = tonumber(lo)

local best = {}
local function newer(a, b)
  return a[1] > b[1] or (a[1] == b[1] and a[2] > b[2])
end
-- Rows are appended and compacted (sorted, cut to `need`) now and then, which sets the
-- floor: cheaper than keeping the list sorted on every insert.
local floor_row = nil
local floor = tonumber(ARGV[8])
if floor then floor_row = {floor, ''} end
local function compact()
  table.sort(best, newer)
  for i = #best, need + 1, -1 do best[i] = nil end
  if #best >= need and (not floor_row or newer(best[need], floor_row)) then floor_row = best[need] end
end
-- A floor from earlier calls has no id: runs tied on it still enter.
local function wanted(row)
  return not floor_row or newer(row, floor_row)
end

local jobs
if ARGV[11] ~= '' then
  jobs = {ARGV[11]}
else
  local from = '-'
  if ARGV[6] ~= '' then from = '(' .. ARGV[6] end
  jobs = redis.call('ZRANGE', P .. 'jobs', from, '+', 'BYLEX', 'LIMIT', 0, batch)
end
local reads = 0
local last = ''
for _, job in ipairs(jobs) do
  last = job
  local key = P .. 'runs:' .. job
  local max, extra = hi, 0
  if cscore and (hi == '+inf' or tonumber(hi) >= cscore) then
    local jk = job .. '-'
    if jk > cjob then max = '(' .. ARGV[4]
    elseif jk < cjob then max = ARGV[4]
    else max = ARGV[4]; extra = 1025 end
  end
  -- Read the job's runs newest first, a page at a time, until it can add nothing more.
  local offset, found = 0, 0
  while true do
    local min = lo
    if floor_row and (not lo_n or floor_row[1] > lo_n) then min = string.format('%d', floor_row[1]) end
    local size = need + extra
    local rows = redis.call('ZRANGE', key, max, min, 'BYSCORE', 'REV', 'LIMIT', offset, size, 'WITHSCORES')
    for i = 1, #rows, 2 do
      local row = {tonumber(rows[i + 1]), rows[i]}
      if not (cscore and row[1] == cscore and row[2] >= crun) and wanted(row) then
        local ok = true
        if status ~= '' then
          reads = reads + 1
          ok = redis.call('HGET', P .. 'run:' .. row[2], 'status') == status
        end
        if ok then
          best[#best + 1] = row
          found = found + 1
          if #best >= 4 * need + 64 then compact() end
        end
      end
    end
    -- Without a status filter the newest `need` rows are all this job can add; with one,
    -- go deeper only while fewer than `need` of its runs matched.
    if #rows < 2 * size or status == '' or found >= need then break end
    offset = offset + size
  end
  if reads >= budget then break end
end
compact()
local out = {''}
if ARGV[11] == '' and (#jobs == batch or reads >= budget) then out[1] = last end
for _, r in ipairs(best) do
  out[#out + 1] = string.format('%d', r[1])
  out[#out + 1] = r[2]
end
return out
