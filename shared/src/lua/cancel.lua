-- Cancels a run by hand (see `cancel_run` in the prelude).
-- KEYS[1] group prefix
-- ARGV[1] group, ARGV[2] run id, ARGV[3] events channel
-- Returns "cancelled", "cancelling", "final:<status>" when it had already ended, or "" when
-- it does not exist.
return cancel_run(KEYS[1], ARGV[1], ARGV[2], ARGV[3], 'cancelled on request', now_ms())
