#!lua flags=allow-oom
--[[
  redriveDead: puts one dead letter's row back on its shard's ready list, for
  the flusher to insert again (after the operator fixed the cause). The entry
  is removed and the row appended in one call, so a row is re-driven at most
  once however often, or from however many processes, the command runs.

  KEYS[1]  dead   LIST  dead letters of one stream of a shard
  KEYS[2]  ready  LIST  the same stream's ready rows
  KEYS[3]  stats  HASH  shard counters (dead, redriven)

  ARGV[1]  entry  the dead letter exactly as listed (its JSON text)
  ARGV[2]  row    the row to put back (the entry's `text`)

  Returns: 1 re-driven, 0 no such entry (already re-driven or removed)
]]
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'dead', -1)
redis.call('HINCRBY', KEYS[3], 'redriven', 1)
return 1
