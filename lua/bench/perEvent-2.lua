--[[
  perEvent: the floor cost of one script call per event, for `event-lens bench`
  (luaPerEvent): one ZADD and one HSET, nothing else. Not used by the worker.

  KEYS[1]  z  ZSET  id -> createdAt
  KEYS[2]  h  HASH  id -> payload
  ARGV[1]  id
  ARGV[2]  createdAt ms
  ARGV[3]  payload

  Returns: 1
]]
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
