#!lua flags=allow-oom
--[[
  (allow-oom: this script moves memory out of the buffer towards ClickHouse, so it must
  run when Redis is at maxmemory; ingest has no such flag and fails with OOM there.)

  sweep: emits the rows of due sessions whose grace has passed, and finalises
  sessions that ended (graceMs after the arrival of a session_end that is
  their last event) or went idle (no arrival for sessionTimeoutMs + graceMs). A finalised session's held rows are all
  emitted (an unsettled screen_view gets its D2 duration or NULL); its
  payloads are gone and only ids and kinds stay, for dedupWindowMs, so that a
  retried job is still recognised (O3) and a late event can get its duration.
  The caller picks candidate members from `due`; each is re-checked here.

  Finalising also appends the session's row for the sessions table to
  `sessionsReady` (see sessionRow in includes/session.lua).

  KEYS[1]  due            ZSET  session member -> buffer time (ms) to sweep it next
  KEYS[2]  ready          LIST  finished event rows awaiting insert
  KEYS[3]  stats          HASH  shard counters (emitted, finalised, held)
  KEYS[4]  sessionsReady  LIST  finished sessions rows awaiting insert
  KEYS[5+3(i-1)], KEYS[6+3(i-1)], KEYS[7+3(i-1)]  z, h, p of session i

  ARGV[1]  now               buffer clock, epoch ms
  ARGV[2]  graceMs           ms
  ARGV[3]  sessionTimeoutMs  ms
  ARGV[4]  dedupWindowMs     ms a finalised session's ids are kept
  ARGV[5]  bufferTtlMs       ms (unused here; the argument layout is shared)
  ARGV[6]  S                 number of sessions
  ARGV[7..6+S]               session members, in KEYS order

  Returns: { rows emitted, sessions finalised }
           -1 ARGS_MISMATCH  the KEYS / ARGV counts do not match S
]]
--- @include "session"

local now = tonumber(ARGV[1])
local sessions = tonumber(ARGV[6])
if #KEYS ~= 4 + 3 * sessions or #ARGV ~= 6 + sessions then return -1 end
local due, ready, stats, sessionsReady = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local emitted, finalised = 0, 0

for i = 1, sessions do
  local z, h, p = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  local member = ARGV[6 + i]
  local meta = readMeta(h)
  if meta.la == nil then
    -- finalised already, or expired by the safety TTL: nothing is held
    redis.call('ZREM', due, member)
  else
    local closing = now >= closeAt(meta)
    local members
    if closing then
      members = redis.call('ZRANGE', p, 0, -1)
    else
      members = redis.call('ZRANGEBYSCORE', p, '-inf', now)
    end
    local em = nil
    for _, m in ipairs(members) do
      local t = emit(z, h, p, ready, m)
      if em == nil or t > em then em = t end
    end
    emitted = emitted + #members
    if em ~= nil and (meta.em == nil or em > meta.em) then meta.em = em end
    if closing then
      finalised = finalised + 1
      local srow = sessionRow(z, meta, now)
      if srow then redis.call('RPUSH', sessionsReady, srow) end
      redis.call('DEL', p)
      -- only ids and kinds stay (and what a late event needs); the next
      -- arrival reopens the session and sets the long TTLs again
      meta.la, meta.ea, meta.ee, meta.tt, meta.pk = nil, nil, nil, nil, nil
      writeMeta(h, meta)
      redis.call('ZREM', due, member)
      if DEDUP_WINDOW > 0 then
        redis.call('PEXPIRE', z, DEDUP_WINDOW)
        redis.call('PEXPIRE', h, DEDUP_WINDOW)
      else
        redis.call('DEL', z, h)
      end
    else
      redis.call('ZADD', due, dueAt(meta, p), member)
      writeMeta(h, meta)
    end
  end
end

if emitted > 0 then
  redis.call('HINCRBY', stats, 'emitted', emitted)
  redis.call('HINCRBY', stats, 'held', -emitted)
end
if finalised > 0 then redis.call('HINCRBY', stats, 'finalised', finalised) end
return { emitted, finalised }
