#!lua flags=allow-oom
--[[
  flushGroup: the per-shard steps of a group insert, which puts the batches of
  several shards into one ClickHouse insert (chDB spends ~35 ms of CPU on any
  insert into `events` and its views, so one insert per shard per second was
  most of the machine). A group is fixed before it is inserted, like a batch:
  its token is the insert_deduplication_token, and its rows are its members'
  batches in the order of its member list. Its first member is the leader, and
  the leader's batch meta is where the group's fate is decided, once:

    join     a non-leader batch takes the group (intended member list)
    commit   the leader takes the group (final member list): the commit point.
             Refused when a recoverer has aborted the group on the leader.
    resolve  asked of the leader by whoever finds a non-leader batch of the
             group: committed (returns the final list), or not, in which case
             the group is marked aborted so that a late commit is refused
    leave    a non-leader batch of an aborted or split group becomes plain
    split    the leader gives a committed group up (ClickHouse rejected its
             rows), so each member is inserted on its own, bisected as usual

  Acknowledgements go non-leaders first, the leader last, so a grouped batch
  whose leader batch is gone was never part of a confirmed group insert.
  Batches never change while they exist, so a committed group re-read from
  its members is the same rows and the same token.

  KEYS[1]  meta   HASH    id, rows, bytes of the shard's current batch; group
                          (token), members ("<shard>:<batch id>,..."), aborted
  KEYS[2]  lease  STRING  owner of the shard's flush lease

  ARGV[1]  mode     join | commit | resolve | leave | split
  ARGV[2]  batchId  the batch this step is about (the leader's for resolve and split)
  ARGV[3]  group    the group's token
  ARGV[4]  owner    flusher id (join, commit: the lease must be the caller's)
  ARGV[5]  members  the member list (join: intended, commit: final)

  Returns: { 1 } done; { 1, members } committed (resolve); { 0 } refused: the
           lease is not the caller's, the batch is gone or replaced, it is in
           another group, or (commit) the group was aborted
           -1 ARGS_MISMATCH  mode is none of the five
]]
local meta, lease = KEYS[1], KEYS[2]
local mode, batchId, group, owner, members = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local fields = redis.call('HMGET', meta, 'id', 'group', 'aborted', 'members')
local id, current, aborted, list = fields[1], fields[2], fields[3], fields[4]
if id ~= batchId then return { 0 } end

if mode == 'join' or mode == 'commit' then
  if redis.call('GET', lease) ~= owner or current then return { 0 } end
  if mode == 'commit' and aborted == group then return { 0 } end
  redis.call('HSET', meta, 'group', group, 'members', members)
  return { 1 }
elseif mode == 'resolve' then
  if current == group then return { 1, list } end
  redis.call('HSET', meta, 'aborted', group)
  return { 0 }
elseif mode == 'leave' or mode == 'split' then
  if current ~= group then return { 0 } end
  redis.call('HDEL', meta, 'group', 'members')
  if mode == 'split' then redis.call('HSET', meta, 'aborted', group) end
  return { 1 }
end
return -1
