--[[
  ackBatch: acknowledges a batch after ClickHouse confirmed its insert, which
  removes its rows from Redis. Acknowledging is idempotent: a second call for
  the same id finds no batch and says so. The lease is not checked: the id
  alone says which rows were inserted.

  KEYS[1]  batch  LIST  rows of the shard's current batch
  KEYS[2]  meta   HASH  id, rows, bytes of the current batch
  KEYS[3]  stats  HASH  shard counters (flushed)

  ARGV[1]  batchId  the id claimBatch returned

  Returns: number of rows acknowledged
           -2 BATCH_MISMATCH  no batch with this id (already acknowledged, or replaced)
]]
local batch, meta, stats = KEYS[1], KEYS[2], KEYS[3]
local id = redis.call('HGET', meta, 'id')
if id ~= ARGV[1] then return -2 end
local rows = tonumber(redis.call('HGET', meta, 'rows'))
redis.call('DEL', batch, meta)
redis.call('HINCRBY', stats, 'flushed', rows)
return rows
