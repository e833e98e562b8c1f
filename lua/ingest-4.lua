#!lua
--[[
  (A shebang without flags: Redis refuses the whole call with OOM before it runs when
  it is at maxmemory, so an ingest either happens or fails as a whole; without one,
  a first command that frees memory, such as DEL, would let the rest of the call write.)

  ingest: adds one job's events of one shard to the session buffer, in one call.

  Held events (screen_view, session_end with a session) stay in the session
  until the sweeper emits them; every other event is written to `ready` at
  once with duration NULL. Every event of a session joins its order set z
  (includes/order.lua). An event after every known event of its session (the
  common case) takes a path that reads nothing from z: the session's last
  event and the last boundary of its last visit are in its state. Any other
  event lands among known ones: its neighbours are read from z around it and
  the rows they change are settled again. An id the session already knows
  (its member, one ZMSCORE per session per call), or for events without a
  session one seen in the shard within the dedup window, is dropped and
  counted. An
  event whose neighbours were already emitted (the nearest earlier boundary
  of its visit, or any later boundary) is accepted and counted as late
  (O2): it gets its own duration, the emitted rows stay.

  Per session and call: HMGET and HSET of h, ZMSCORE and ZADD of z, a ZADD
  of p when rows are held or settled (and a PEXPIRE of each when the safety
  TTL is due); an event landing among known ones adds ranged reads of its
  neighbours, O(log n + k) for a session of n events and the k events of
  the pages around it. No cost or result depends on the session's length or
  on how many of its rows are held. Due times (ZADD LT: a session is never
  due later than it was, and the sweep sets its exact time), ready rows and
  counters are written once per call.

  KEYS[1]  due    ZSET  session member -> buffer time (ms) to sweep it next
  KEYS[2]  ready  LIST  finished rows awaiting insert
  KEYS[3]  stats  HASH  shard counters (accepted, duplicate, late, held)
  KEYS[4]  seen   ZSET  "<len>:<projectId><id>" of events without a session -> arrival (ms)
  KEYS[5+3(i-1)], KEYS[6+3(i-1)], KEYS[7+3(i-1)]  z, p, h of session i (see includes/state.lua)
  Event ids must not contain ',', ';', '\t', '#' or '>' (the worker validates them).

  ARGV[1]  now               buffer clock, epoch ms
  ARGV[2]  graceMs           ms a settled row is held before emission
  ARGV[3]  sessionTimeoutMs  idle gap (ms) that ends a session
  ARGV[4]  dedupWindowMs     ms ids of sessionless events are remembered
  ARGV[5]  bufferTtlMs       safety TTL (ms) of a held session's keys
  ARGV[6]  S                 number of sessions
  ARGV[7]  L                 number of events without a session
  ARGV[8..]  for each session: member, N, then the session facts of its
             earliest event in this call (createdAt ms, member, JSON
             object), then N times (event member "<id>\t<kind>", createdAt
             ms, data) and for a screen_view its path as a JSON string; then
             L times (seen member, row).
             data is, for a screen_view or session_end, its payload, and for
             any other event its finished row (duration NULL, screenViews
             0): built by the worker, so that no payload is copied or
             concatenated in Lua (~1 µs per copy of a 700-byte string)

  Returns: { accepted, duplicates, late, statuses }, statuses one character
           per event in ARGV order: 'a' accepted, 'l' accepted and late,
           'd' duplicate (so the worker can give each of the jobs it
           gathered into this call its own result)
           -1 ARGS_MISMATCH  the KEYS / ARGV counts do not match S, N and L
]]
--- @include "base"
--- @include "state"
--- @include "order"
--- @include "held"
--- @include "durations"
--- @include "upgrade"

configure(tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
local now = tonumber(ARGV[1])
local sessions = tonumber(ARGV[6])
local sessionless = tonumber(ARGV[7])
if not sessions or not sessionless or #KEYS ~= 4 + 3 * sessions then return -1 end

local due, ready, stats, seen = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local accepted, duplicates, late, held = 0, 0, 0, 0
local a = 8
-- (counters instead of #: the length of a growing table is a binary search)
local readyRows, dueEntries, statuses, nReady, nStatus = {}, {}, {}, 0, 0

-- An event after every known event of its session: nothing is read.
local function appendEvent(S, t, m, kind, path)
  local M = S.M
  local gap = M[LAST_T] and t - M[LAST_T] > C.timeout
  local lb = M[TAIL_BOUNDARY]
  local boundary = kind == V or kind == E
  if lb and byte(lb, -1) == V then
    -- (a held tail screen_view is never settled: whatever settles it becomes the tail)
    if not gap then
      -- the visit's last boundary is a screen_view: this event ends (or extends) it
      -- (a later 'o' only extends its D2 duration: it stays unsettled)
      if M[TAIL_HELD] then
        if boundary then setEmit(S, lb, now + C.grace) end
      else
        late = late + 1
      end
    elseif M[TAIL_HELD] then
      -- an idle gap settles the previous visit's last screen_view (D3)
      setEmit(S, lb, now + C.grace)
    end
  end
  if kind == V then
    -- the new tail boundary, not settled: held in no set (includes/held.lua)
    if not M[ENTRY_T] then M[ENTRY_PATH], M[ENTRY_T], M[ENTRY_MEMBER] = path, t, m end
    M[EXIT_PATH], M[EXIT_T], M[EXIT_MEMBER] = path, t, m
  elseif kind == E then
    setEmit(S, m, now + C.grace)
    M[END_MEMBER], M[END_ARRIVAL] = m, now
  end
  if gap then M[TAIL_BOUNDARY], M[TAIL_BOUNDARY_T], M[TAIL_HELD] = false, false, false end
  if boundary then M[TAIL_BOUNDARY], M[TAIL_BOUNDARY_T], M[TAIL_HELD] = m, t, true end
  M[LAST_T], M[LAST_MEMBER] = t, m
end

-- An event that lands among known ones (reordering, late arrival).
local function insertEvent(S, t, m, kind, path)
  local M = S.M
  local isLate = M[EMITTED_UP_TO] and t < M[EMITTED_UP_TO]
  if kind == E then
    -- its figures depend only on earlier events: settled on arrival
    setEmit(S, m, now + C.grace)
    noteSessionEnd(S, t, m, now)
  elseif kind == V then
    schedule(S, m, t, now, INF)
    keepExtreme(M, ENTRY_T, t, m, path, true)
    keepExtreme(M, EXIT_T, t, m, path, false)
  end
  -- the nearest earlier boundary, if it is a held screen_view, may now end
  -- differently: settle it again (re-settling restarts its grace); if it
  -- was already emitted (in the same visit), this event is late
  local prev = t
  eachBefore(S, m, function(b, s)
    if prev - s > C.timeout then return true end
    prev = s
    local k = kindOf(b)
    if k == V then
      local at = heldAt(S, b)
      if at then schedule(S, b, s, now, at) else isLate = true end
    end
    return isBoundary(k)
  end)
  if isLate then late = late + 1 end
  -- the tail boundary: no idle gap lies between it and the last event, so
  -- only a boundary landing after it replaces it; without one, an event
  -- filling an idle gap may bring an earlier boundary back, so look again
  if M[TAIL_BOUNDARY] then
    if isBoundary(kind) and earlier(M[TAIL_BOUNDARY_T], M[TAIL_BOUNDARY], t, m) then
      M[TAIL_BOUNDARY], M[TAIL_BOUNDARY_T], M[TAIL_HELD] = m, t, true
    end
  else
    local bm, bt = tailBoundary(S, M[LAST_T], M[LAST_MEMBER])
    M[TAIL_BOUNDARY], M[TAIL_BOUNDARY_T], M[TAIL_HELD] = bm or false, bt or false, (bm and heldAt(S, bm) ~= nil) or false
  end
end

for i = 1, sessions do
  local z, p, h = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  local member = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  local factsT, factsM, facts = tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4]
  a = a + 5
  if n == nil or factsT == nil then return -1 end
  -- the call's members and kinds (a screen_view carries one value more, its path)
  local ms, ks, j = {}, {}, a
  for q = 1, n do
    local m = ARGV[j]
    if not m then return -1 end
    local k = byte(m, -1)
    ms[q], ks[q] = m, k
    if k == V then j = j + 4 else j = j + 3 end
  end
  if j - 1 > #ARGV then return -1 end
  local S = loadSession(z, p, h)
  local M = S.M
  local fields, nf = {}, 0
  if not M[FACTS_T] or earlier(factsT, factsM, M[FACTS_T], M[FACTS_MEMBER]) then
    M[FACTS_T], M[FACTS_MEMBER] = factsT, factsM
    fields[1], fields[2], nf = '#facts', facts, 2
  end
  local known = false
  if M[LAST_T] then known = knownMembers(S, ms) end
  for q = 1, n do
    local m, ts, data = ms[q], ARGV[a + 1], ARGV[a + 2]
    local t, kind, path = tonumber(ts), ks[q], nil
    if kind == V then
      path = ARGV[a + 3]
      a = a + 4
    else
      a = a + 3
    end
    if (known and known[q]) or S.added[m] then
      duplicates = duplicates + 1
      nStatus = nStatus + 1
      statuses[nStatus] = 'd'
    else
      local lateBefore = late
      accepted = accepted + 1
      if kind == V or kind == E then
        held = held + 1
        fields[nf + 1], fields[nf + 2] = m, data
        nf = nf + 2
      else
        nReady = nReady + 1
        readyRows[nReady] = data
      end
      if kind == V then M[VIEWS] = M[VIEWS] + 1 end
      addEvent(S, ts, m)
      local lastT = M[LAST_T]
      if not lastT or lastT < t or (lastT == t and M[LAST_MEMBER] < m) then
        appendEvent(S, t, m, kind, path)
      else
        insertEvent(S, t, m, kind, path)
      end
      nStatus = nStatus + 1
      if late > lateBefore then statuses[nStatus] = 'l' else statuses[nStatus] = 'a' end
    end
  end
  flushAdds(S)
  M[LAST_ARRIVAL] = now
  local dueTime = math.min(flushEmits(S), closeAt(M))
  local ttl = ttlDue(S, now)
  saveSession(S, fields)
  if ttl then setTtl(S, C.bufferTtl) end
  dueEntries[#dueEntries + 1] = int(dueTime)
  dueEntries[#dueEntries + 1] = member
end
if #dueEntries > 0 then
  for from = 1, #dueEntries, 1000 do
    redis.call('ZADD', due, 'LT', unpack(dueEntries, from, math.min(from + 999, #dueEntries)))
  end
end

if sessionless > 0 then
  if a + 2 * sessionless - 1 ~= #ARGV then return -1 end
  redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. int(now - C.dedupWindow))
  redis.call('PEXPIRE', seen, int(C.dedupWindow + 1000))
  for _ = 1, sessionless do
    local m, finished = ARGV[a], ARGV[a + 1]
    a = a + 2
    if redis.call('ZSCORE', seen, m) then
      duplicates = duplicates + 1
      nStatus = nStatus + 1
      statuses[nStatus] = 'd'
    else
      accepted = accepted + 1
      nStatus = nStatus + 1
      statuses[nStatus] = 'a'
      redis.call('ZADD', seen, ARGV[1], m)
      nReady = nReady + 1
      readyRows[nReady] = finished
    end
  end
elseif a - 1 ~= #ARGV then
  return -1
end

sendSliced('RPUSH', ready, readyRows)
if accepted > 0 then redis.call('HINCRBY', stats, 'accepted', int(accepted)) end
if duplicates > 0 then redis.call('HINCRBY', stats, 'duplicate', int(duplicates)) end
if late > 0 then redis.call('HINCRBY', stats, 'late', int(late)) end
if held > 0 then redis.call('HINCRBY', stats, 'held', int(held)) end
return { accepted, duplicates, late, table.concat(statuses) }
