#!lua flags=allow-oom
--[[
  (allow-oom: this script moves memory out of the buffer towards ClickHouse, so it must
  run when Redis is at maxmemory; ingest has no such flag and fails with OOM there.)

  sweep: emits the rows of due sessions whose grace has passed, computing
  their durations (D1-D4, viewFigures / endFigures in includes/durations.lua),
  and finalises sessions that ended (graceMs after the arrival of a
  session_end that is their last event) or went idle (no arrival for
  sessionTimeoutMs + graceMs). A finalised session's held rows are all
  emitted (an unsettled screen_view gets its D2 duration or NULL); its
  payloads are gone and only its order set and state stay, for
  dedupWindowMs, so that a retried job is still recognised (O3) and a late
  event can get its duration. The caller picks candidate members from
  `due`; each is re-checked here, and a session still open gets its exact
  next due time.

  Finalising also appends the session's row for the sessions table to
  `sessionsReady` (see sessionRow in includes/rows.lua).

  KEYS[1]  due            ZSET  session member -> buffer time (ms) to sweep it next
  KEYS[2]  ready          LIST  finished event rows awaiting insert
  KEYS[3]  stats          HASH  shard counters (emitted, finalised, held)
  KEYS[4]  sessionsReady  LIST  finished sessions rows awaiting insert
  KEYS[5+3(i-1)], KEYS[6+3(i-1)], KEYS[7+3(i-1)]  z, p, h of session i (see includes/state.lua)

  ARGV[1]  now               buffer clock, epoch ms
  ARGV[2]  graceMs           ms
  ARGV[3]  sessionTimeoutMs  ms
  ARGV[4]  dedupWindowMs     ms a finalised session's keys are kept
  ARGV[5]  bufferTtlMs       safety TTL (ms) of an open session's keys
  ARGV[6]  S                 number of sessions
  ARGV[7..6+S]               session members, in KEYS order

  Returns: { rows emitted, sessions finalised }
           -1 ARGS_MISMATCH  the KEYS / ARGV counts do not match S
]]
--- @include "base"
--- @include "state"
--- @include "order"
--- @include "held"
--- @include "durations"
--- @include "rows"
--- @include "upgrade"

configure(tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
-- a sweep's window walks each session's rows in order: larger first reads (includes/order.lua)
readAhead(16)
local now = tonumber(ARGV[1])
local sessions = tonumber(ARGV[6])
if not sessions or #KEYS ~= 4 + 3 * sessions or #ARGV ~= 6 + sessions then return -1 end
local due, ready, stats, sessionsReady = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local emitted, finalised = 0, 0
local rows, sessionRows, dueEntries, done = {}, {}, {}, {}

-- Emits the held rows of S that are due (all of them when closing), in
-- session order; returns whether any was and, when closing, the session's
-- facts (read with the payloads; nil when no row was held).
local function emitDue(S, closing)
  local list
  local M = S.M
  if closing then
    list = redis.call('ZRANGE', S.p, '0', '-1')
    -- the unsettled tail screen_view (includes/held.lua) gets its D2 duration or NULL
    if M[TAIL_HELD] and kindOf(M[TAIL_BOUNDARY]) == V then list[#list + 1] = M[TAIL_BOUNDARY] end
  else
    list = redis.call('ZRANGEBYSCORE', S.p, '-inf', ARGV[1])
  end
  if #list == 0 then return false end
  local times = sendSliced('ZMSCORE', S.z, list)
  local order = {}
  for i, m in ipairs(list) do order[i] = { m, tonumber(times[i]) or 0 } end
  table.sort(order, function(x, y) return earlier(x[2], x[1], y[2], y[1]) end)
  for i, o in ipairs(order) do list[i] = o[1] end
  local n = #list
  if closing then list[n + 1] = '#facts' end
  local payloads = sendSliced('HMGET', S.h, list)
  list[n + 1] = nil
  for i, o in ipairs(order) do
    local m, t = o[1], o[2]
    local duration, views, engaged
    if kindOf(m) == E then
      duration, views = endFigures(S, t, m)
    else
      local _
      _, duration, engaged = viewFigures(S, t, m, true)
      views = 0
      if engaged ~= nil then M[ENGAGED] = (M[ENGAGED] or 0) + engaged end
    end
    rows[#rows + 1] = row(duration, views, engaged, payloads[i] or '{}')
    if not M[EMITTED_UP_TO] or t > M[EMITTED_UP_TO] then M[EMITTED_UP_TO] = t end
    if m == M[TAIL_BOUNDARY] then M[TAIL_HELD] = false end
  end
  sendSliced('ZREM', S.p, list)
  sendSliced('HDEL', S.h, list)
  emitted = emitted + n
  return true, payloads[n + 1]
end

for i = 1, sessions do
  local z, p, h = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  local member = ARGV[6 + i]
  local S = loadSession(z, p, h)
  local M = S.M
  if not M[LAST_ARRIVAL] then
    -- finalised already, or expired by the safety TTL: nothing is held
    if S.converted then saveSession(S, {}) end
    done[#done + 1] = member
  else
    local closing = now >= closeAt(M)
    local changed, facts = emitDue(S, closing)
    changed = changed or S.converted
    if closing then
      finalised = finalised + 1
      local srow = sessionRow(S, now, facts or redis.call('HGET', h, '#facts'))
      if srow then sessionRows[#sessionRows + 1] = srow end
      -- only the order set and state stay (what a late event or a retried
      -- job needs); the next arrival reopens the session and sets the long
      -- TTL again
      M[LAST_ARRIVAL], M[END_ARRIVAL], M[END_MEMBER], M[TTL_SET_AT] = false, false, false, false
      done[#done + 1] = member
      if C.dedupWindow > 0 then
        saveSession(S, {})
        -- (p is empty: every held row was emitted)
        setTtl(S, C.dedupWindow, true)
      else
        redis.call('DEL', h, z, p)
      end
    else
      local ttl = ttlDue(S, now)
      if changed or ttl then saveSession(S, {}) end
      if ttl then setTtl(S, C.bufferTtl) end
      dueEntries[#dueEntries + 1] = int(dueAt(S))
      dueEntries[#dueEntries + 1] = member
    end
  end
end

sendSliced('RPUSH', ready, rows)
sendSliced('RPUSH', sessionsReady, sessionRows)
sendSliced('ZREM', due, done)
sendSliced('ZADD', due, dueEntries)
if emitted > 0 then
  redis.call('HINCRBY', stats, 'emitted', int(emitted))
  redis.call('HINCRBY', stats, 'held', int(-emitted))
end
if finalised > 0 then redis.call('HINCRBY', stats, 'finalised', int(finalised)) end
return { emitted, finalised }
