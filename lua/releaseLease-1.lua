#!lua flags=allow-oom
--[[
  releaseLease: gives up a shard's flush lease if, and only if, the caller
  holds it (another flusher may have taken it after ours expired).

  KEYS[1]  lease  STRING  owner of the shard's flush lease
  ARGV[1]  owner  flusher id

  Returns: 1 released, 0 not held by this owner
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
