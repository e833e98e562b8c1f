#!lua flags=allow-oom
--[[
  (allow-oom: this script moves memory out of the buffer towards ClickHouse, so it must
  run when Redis is at maxmemory; ingest has no such flag and fails with OOM there.)

  sweep: emits the rows of due sessions whose grace has passed, computing
  their durations (D1-D4, viewFigures / endFigures in includes/session.lua),
  and finalises sessions that ended (graceMs after the arrival of a
  session_end that is their last event) or went idle (no arrival for
  sessionTimeoutMs + graceMs). A finalised session's held rows are all
  emitted (an unsettled screen_view gets its D2 duration or NULL); its
  payloads are gone and only its index stays, for dedupWindowMs, so that a
  retried job is still recognised (O3) and a late event can get its duration.
  The caller picks candidate members from `due`; each is re-checked here.

  Finalising also appends the session's row for the sessions table to
  `sessionsReady` (see sessionRow in includes/session.lua).

  KEYS[1]  due            ZSET  session member -> buffer time (ms) to sweep it next
  KEYS[2]  ready          LIST  finished event rows awaiting insert
  KEYS[3]  stats          HASH  shard counters (emitted, finalised, held)
  KEYS[4]  sessionsReady  LIST  finished sessions rows awaiting insert
  KEYS[5+3(i-1)], KEYS[6+3(i-1)], KEYS[7+3(i-1)]  z, h, p of session i (as for ingest-4.lua)

  ARGV[1]  now               buffer clock, epoch ms
  ARGV[2]  graceMs           ms
  ARGV[3]  sessionTimeoutMs  ms
  ARGV[4]  dedupWindowMs     ms a finalised session's index is kept
  ARGV[5]  bufferTtlMs       safety TTL (ms) of an open session's hash
  ARGV[6]  S                 number of sessions
  ARGV[7..6+S]               session members, in KEYS order

  Returns: { rows emitted, sessions finalised }
           -1 ARGS_MISMATCH  the KEYS / ARGV counts do not match S
]]
--- @include "session"

configure(tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
local now = tonumber(ARGV[1])
local sessions = tonumber(ARGV[6])
if #KEYS ~= 4 + 3 * sessions or #ARGV ~= 6 + sessions then return -1 end
local due, ready, stats, sessionsReady = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local emitted, finalised = 0, 0
local rows, dueEntries, done = {}, {}, {}

-- Emits the held rows of S that are due (all of them when closing), in session order.
local function emitDue(S, closing)
  local list = {}
  for m, at in pairs(S.held) do
    if closing or at <= now then list[#list + 1] = m end
  end
  if #list == 0 then return false end
  table.sort(list, function(x, y) return earlier(S.heldT[x], x, S.heldT[y], y) end)
  local ids = {}
  for i, m in ipairs(list) do ids[i] = idOf(m) end
  local payloads = redis.call('HMGET', S.h, unpack(ids))
  local M = S.M
  for i, m in ipairs(list) do
    local t = S.heldT[m]
    local duration, views
    if kindOf(m) == 'e' then
      duration, views = endFigures(S, t, m)
    else
      local _
      _, duration = viewFigures(S, t, m)
      views = 0
    end
    rows[#rows + 1] = row(duration, views, payloads[i] or '{}')
    S.held[m], S.heldT[m] = nil, nil
    if not M[EMITTED_UP_TO] or t > M[EMITTED_UP_TO] then M[EMITTED_UP_TO] = t end
  end
  redis.call('HDEL', S.h, unpack(ids))
  emitted = emitted + #list
  return true
end

for i = 1, sessions do
  local z, h, p = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  local member = ARGV[6 + i]
  local S = loadSession(z, h, p)
  local M = S.M
  if not M[LAST_ARRIVAL] then
    -- finalised already, or expired by the safety TTL: nothing is held
    if S.converted then saveSession(S, {}) end
    done[#done + 1] = member
  else
    local closing = now >= closeAt(M)
    local changed = emitDue(S, closing) or S.converted
    if closing then
      finalised = finalised + 1
      local srow = sessionRow(S, now)
      if srow then redis.call('RPUSH', sessionsReady, srow) end
      -- only the index stays (and what a late event needs); the next
      -- arrival reopens the session and sets the long TTL again
      M[LAST_ARRIVAL], M[END_ARRIVAL], M[END_MEMBER], M[TTL_SET_AT] = false, false, false, false
      done[#done + 1] = member
      if C.dedupWindow > 0 then
        saveSession(S, {})
        redis.call('PEXPIRE', h, C.dedupWindow)
      else
        redis.call('DEL', h)
      end
    else
      local setTtl = keepTtl(S, now)
      if changed or setTtl then saveSession(S, {}) end
      if setTtl then redis.call('PEXPIRE', h, C.bufferTtl) end
      dueEntries[#dueEntries + 1] = dueAt(S)
      dueEntries[#dueEntries + 1] = member
    end
  end
end

sendSliced('RPUSH', ready, rows)
sendSliced('ZREM', due, done)
sendSliced('ZADD', due, dueEntries)
if emitted > 0 then
  redis.call('HINCRBY', stats, 'emitted', emitted)
  redis.call('HINCRBY', stats, 'held', -emitted)
end
if finalised > 0 then redis.call('HINCRBY', stats, 'finalised', finalised) end
return { emitted, finalised }
