#!lua flags=allow-oom
--[[
  ackBatch: acknowledges a batch after ClickHouse confirmed its insert, which
  removes its rows from Redis. Rows ClickHouse rejected (found by bisecting
  the batch) are moved to the shard's dead-letter list in the same call, each
  as a JSON object with the server's message. Acknowledging is idempotent: a
  second call for the same id finds no batch and says so. The lease is not
  checked: the id alone says which rows were inserted.

  KEYS[1]  batch  LIST  rows of the shard's current batch
  KEYS[2]  meta   HASH  id, rows, bytes of the current batch
  KEYS[3]  stats  HASH  shard counters (flushed, dead)
  KEYS[4]  dead   LIST  dead letters: {"error": "...", "row": {...}}

  ARGV[1]     batchId  the id claimBatch returned
  ARGV[2..]   dead letters to append (may be none)

  Returns: number of rows acknowledged (inserted + dead)
           -2 BATCH_MISMATCH  no batch with this id (already acknowledged, or replaced)
]]
local batch, meta, stats, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id = redis.call('HGET', meta, 'id')
if id ~= ARGV[1] then return -2 end
local rows = tonumber(redis.call('HGET', meta, 'rows'))
local deadCount = #ARGV - 1
for i = 2, #ARGV, 1000 do
  redis.call('RPUSH', dead, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('DEL', batch, meta)
redis.call('HINCRBY', stats, 'flushed', rows - deadCount)
if deadCount > 0 then redis.call('HINCRBY', stats, 'dead', deadCount) end
return rows
