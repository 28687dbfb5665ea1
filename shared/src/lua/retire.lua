-- An executor leaving at shutdown: its broadcast runs not finished cannot go to another
-- executor, so they end `lost` (end_executor_runs), and its own stream and retry set are
-- deleted.
-- KEYS[1]  group prefix
-- ARGV[1]  the executor
-- Reads:   stream:<executor> and its runs' records (F_STATUS, F_RETRY_AT)
-- Writes:  run records (F_STATUS 'lost', F_FINISHED_AT, F_ERROR; deletes F_RETRY_AT), active;
--          deletes stream:<executor> and retry:<executor>
-- Reply:   how many runs ended `lost`.
return end_executor_runs(P, ARGV[1], now_ms(), true)
