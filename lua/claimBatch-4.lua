#!lua flags=allow-oom
--[[
  claimBatch: takes (or renews) the flush lease of a shard and returns the
  shard's batch to insert. A batch is fixed before it is inserted: when an
  earlier batch was never acknowledged (its flusher crashed or failed), the
  same batch with the same id is returned again, so a retried insert carries
  the same insert_deduplication_token. Otherwise up to maxRows rows / maxBytes
  bytes are moved from `ready` into a new batch (at least one row, however
  large). The first row of a batch is always the oldest ready row.

  KEYS[1]  ready  LIST    finished rows awaiting insert
  KEYS[2]  batch  LIST    rows of the shard's current batch
  KEYS[3]  meta   HASH    id (batch id), rows, bytes of the current batch (and group fields, see flushGroup)
  KEYS[4]  lease  STRING  owner of the shard's flush lease

  ARGV[1]  owner     flusher id
  ARGV[2]  leaseMs   lease time to live, ms
  ARGV[3]  newId     id to give a new batch (a ULID; used only when a new batch is made)
  ARGV[4]  maxRows   rows per batch, >= 1
  ARGV[5]  maxBytes  bytes per batch

  Returns: { 0 }                          nothing to insert (lease still taken)
           { 1, id, row1, row2, ... }     an unacknowledged batch, returned again
           { 2, id, row1, row2, ... }     a new batch
           { 3, id, group, members, row1, ... }  an unacknowledged batch of a group
                                          insert (see flushGroup-2.lua)
           -3 LEASE_HELD  another owner holds the lease
]]
local ready, batch, meta, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local owner, leaseMs, newId = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local maxRows, maxBytes = tonumber(ARGV[4]), tonumber(ARGV[5])

local holder = redis.call('GET', lease)
if holder and holder ~= owner then return -3 end
redis.call('SET', lease, owner, 'PX', leaseMs)

local current = redis.call('HMGET', meta, 'id', 'group', 'members')
local id = current[1]
if id then
  local out = { 1, id }
  if current[2] then out = { 3, id, current[2], current[3] } end
  local rows = redis.call('LRANGE', batch, 0, -1)
  local n = #out
  for i = 1, #rows do out[n + i] = rows[i] end
  return out
end

local rows = redis.call('LRANGE', ready, 0, maxRows - 1)
if #rows == 0 then return { 0 } end
local take, bytes = 0, 0
for i = 1, #rows do
  local size = #rows[i]
  if take > 0 and bytes + size > maxBytes then break end
  take, bytes = i, bytes + size
end
-- RPUSH in slices: unpack() of thousands of values would overflow Lua's C stack
local slice = 1000
for from = 1, take, slice do
  local to = math.min(from + slice - 1, take)
  redis.call('RPUSH', batch, unpack(rows, from, to))
end
redis.call('LTRIM', ready, take, -1)
redis.call('HSET', meta, 'id', newId, 'rows', take, 'bytes', bytes)
local out = { 2, newId }
for i = 1, take do out[i + 2] = rows[i] end
return out
