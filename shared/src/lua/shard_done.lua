-- Notes a succeeded shard of a sharded tick whose job has children: the tick's children
-- fire once every one of its shards succeeded.
-- KEYS[1]  group prefix
-- ARGV[1]  the tick's base run id (its shard runs' id without `-s<k>`)
-- ARGV[2]  the shard index
-- ARGV[3]  the shard count
-- ARGV[4]  how long the set is kept after its last change (ms)
-- Reads:   shards-ok:<base>
-- Writes:  shards-ok:<base> (SADD of the shard index, PEXPIRE)
-- Reply:   1 when every shard of the tick has succeeded, else 0. A set, not a counter: a
--          shard run again (its worker died before recording it) counts once; and once
--          complete, it answers 1 to such a re-run too, which fires the children again under
--          the same derived run ids (`trigger.lua` enqueues each once).
local key = P .. K_SHARDS_OK .. ARGV[1]
redis.call('SADD', key, ARGV[2])
redis.call('PEXPIRE', key, ARGV[4])
if redis.call('SCARD', key) >= tonumber(ARGV[3]) then return 1 end
return 0
