--[[
  ingest: adds one job's events of one shard to the session buffer, in one call.

  Held events (screen_view, session_end with a session) stay in the session's
  hash until the sweeper emits them; every other event is written to `ready`
  at once with duration NULL. An event that comes after every known event of
  its session (the common case) takes a fast path that parses nothing: the
  session's last event and the last boundary of its last visit are kept in
  its state, and its index entry is appended. Any other event takes the
  scanning path, which parses the index and recomputes that state. An id
  already known in the session (or, for events without a session, seen in
  the shard within the dedup window) is dropped and counted. An event whose
  neighbours were already emitted (the nearest earlier boundary of its
  visit, or any later boundary) is accepted and counted as late (O2): it
  gets its own duration, the emitted rows stay.

  Per session this costs one HMGET and one HSET (and a PEXPIRE when the
  safety TTL is due), whatever its number of events; due times, ready rows
  and counters are written once per call.

  KEYS[1]  due    ZSET  session member -> buffer time (ms) to sweep it next
  KEYS[2]  ready  LIST  finished rows awaiting insert
  KEYS[3]  stats  HASH  shard counters (accepted, duplicate, late, held, overflow)
  KEYS[4]  seen   ZSET  "<len>:<projectId><id>" of events without a session, and
                        "<session member>\t<id>" of events past maxSessionEvents -> arrival (ms)
  KEYS[5+3(i-1)], KEYS[6+3(i-1)], KEYS[7+3(i-1)]  z, h, p of session i: h is
           the session (see includes/session.lua); z and p are read only for
           a session kept by a release before 0.5, which is converted
  Event ids must not contain ',', ';', '\t', '#' or '>' (the worker validates them).

  ARGV[1]  now               buffer clock, epoch ms
  ARGV[2]  graceMs           ms a settled row is held before emission
  ARGV[3]  sessionTimeoutMs  idle gap (ms) that ends a session
  ARGV[4]  dedupWindowMs     ms ids of sessionless events are remembered
  ARGV[5]  bufferTtlMs       safety TTL (ms) of a held session's hash
  ARGV[6]  S                 number of sessions
  ARGV[7]  L                 number of events without a session
  ARGV[8]  maxSessionEvents  most events a session keeps in its index; later
                             ones are written to `ready` at once (duration
                             NULL), deduplicated in `seen` like events
                             without a session, and counted as overflow
  ARGV[9..]  for each session: member, N, then the session facts of its
             earliest event in this call (createdAt ms, member, JSON
             object), then N times (id, createdAt ms, kind 'v'|'e'|'o',
             data, path as a JSON string or '' when not a screen_view);
             then L times (seen member, row).
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
--- @include "session"

configure(tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
local now = tonumber(ARGV[1])
local sessions = tonumber(ARGV[6])
local sessionless = tonumber(ARGV[7])
local maxSessionEvents = tonumber(ARGV[8])
if #KEYS ~= 4 + 3 * sessions or not maxSessionEvents then return -1 end

local due, ready, stats, seen = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local accepted, duplicates, late, held, overflow = 0, 0, 0, 0, 0
local a = 9
local readyRows, dueEntries, statuses = {}, {}, {}

-- The nearest boundary at or before the last event (t, m), with no idle gap
-- in between: the boundary an appended event settles.
local function tailBoundary(S, t, m)
  if isBoundary(kindOf(m)) then return m, t end
  local prev, bm, bt = t, nil, nil
  eachBefore(S, t, m, function(b, s)
    if prev - s > C.timeout then return true end
    prev = s
    if isBoundary(kindOf(b)) then
      bm, bt = b, s
      return true
    end
    return false
  end)
  return bm, bt
end

-- An event after every known event of its session: no scan.
local function appendEvent(S, t, m, kind, path)
  local M = S.M
  local gap = M[LAST_T] and t - M[LAST_T] > C.timeout
  local lb = M[TAIL_BOUNDARY]
  if lb and kindOf(lb) == 'v' then
    if not gap then
      -- the visit's last boundary is a screen_view: this event ends (or extends) it
      -- (a later 'o' only extends its D2 duration: it stays unsettled)
      if S.held[lb] then
        if isBoundary(kind) then S.held[lb] = now + C.grace end
      else
        late = late + 1
      end
    elseif S.held[lb] then
      -- an idle gap settles the previous visit's last screen_view (D3)
      S.held[lb] = now + C.grace
    end
  end
  if kind == 'v' then
    S.held[m] = INF
    if not M[ENTRY_T] then M[ENTRY_PATH], M[ENTRY_T], M[ENTRY_MEMBER] = path, t, m end
    M[EXIT_PATH], M[EXIT_T], M[EXIT_MEMBER] = path, t, m
  elseif kind == 'e' then
    S.held[m] = now + C.grace
    M[END_MEMBER], M[END_ARRIVAL] = m, now
  end
  if gap then M[TAIL_BOUNDARY], M[TAIL_BOUNDARY_T] = false, false end
  if isBoundary(kind) then M[TAIL_BOUNDARY], M[TAIL_BOUNDARY_T] = m, t end
  M[LAST_T], M[LAST_MEMBER] = t, m
end

-- An event that lands among known ones (reordering, late arrival).
local function insertEvent(S, t, m, kind, path)
  local M = S.M
  local isLate = M[EMITTED_UP_TO] and t < M[EMITTED_UP_TO]
  if kind == 'e' then
    -- its figures depend only on earlier events: settled on arrival
    S.held[m] = now + C.grace
    noteSessionEnd(S, t, m, now)
  elseif kind == 'v' then
    schedule(S, m, t, now)
    keepExtreme(M, ENTRY_T, t, m, path, true)
    keepExtreme(M, EXIT_T, t, m, path, false)
  end
  -- the nearest earlier boundary, if it is a held screen_view, may now end
  -- differently: settle it again (re-settling restarts its grace); if it
  -- was already emitted (in the same visit), this event is late
  local prev = t
  eachBefore(S, t, m, function(b, s)
    if prev - s > C.timeout then return true end
    prev = s
    local k = kindOf(b)
    if k == 'v' then
      if S.held[b] then schedule(S, b, s, now) else isLate = true end
    end
    return isBoundary(k)
  end)
  if isLate then late = late + 1 end
  local bm, bt = tailBoundary(S, M[LAST_T], M[LAST_MEMBER])
  M[TAIL_BOUNDARY], M[TAIL_BOUNDARY_T] = bm or false, bt or false
end

for i = 1, sessions do
  local z, h, p = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  local member = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  local factsT, factsM, facts = tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4]
  a = a + 5
  if n == nil or factsT == nil or a + 5 * n - 1 > #ARGV then return -1 end
  local S = loadSession(z, h, p)
  local M = S.M
  local payloads = {}
  if not M[FACTS_T] or earlier(factsT, factsM, M[FACTS_T], M[FACTS_MEMBER]) then
    M[FACTS_T], M[FACTS_MEMBER] = factsT, factsM
    payloads[1], payloads[2] = '#facts', facts
  end
  for _ = 1, n do
    local id, t, kind, data, path = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
    a = a + 5
    if known(S, id) then
      duplicates = duplicates + 1
      statuses[#statuses + 1] = 'd'
    elseif M[EVENT_COUNT] >= maxSessionEvents then
      -- past the bound: written at once, deduplicated within the dedup window
      local sm = member .. '\t' .. id
      if redis.call('ZSCORE', seen, sm) then
        duplicates = duplicates + 1
        statuses[#statuses + 1] = 'd'
      else
        redis.call('ZADD', seen, now, sm)
        accepted, overflow = accepted + 1, overflow + 1
        statuses[#statuses + 1] = 'a'
        if kind == 'o' then readyRows[#readyRows + 1] = data else readyRows[#readyRows + 1] = row(nil, 0, data) end
      end
    else
      M[EVENT_COUNT] = M[EVENT_COUNT] + 1
      local lateBefore = late
      accepted = accepted + 1
      local m = id .. '\t' .. kind
      if kind == 'o' then
        readyRows[#readyRows + 1] = data
      else
        held = held + 1
        S.heldT[m] = t
        payloads[#payloads + 1] = id
        payloads[#payloads + 1] = data
      end
      if not M[LAST_T] or earlier(M[LAST_T], M[LAST_MEMBER], t, m) then
        addEvent(S, t, m, id, ';' .. id .. ',' .. kind .. ARGV[a - 4], true)
        appendEvent(S, t, m, kind, path)
      else
        addEvent(S, t, m, id, nil, false)
        insertEvent(S, t, m, kind, path)
      end
      if late > lateBefore then statuses[#statuses + 1] = 'l' else statuses[#statuses + 1] = 'a' end
    end
  end
  M[LAST_ARRIVAL] = now
  local setTtl = keepTtl(S, now)
  saveSession(S, payloads)
  if setTtl then redis.call('PEXPIRE', h, C.bufferTtl) end
  dueEntries[#dueEntries + 1] = dueAt(S)
  dueEntries[#dueEntries + 1] = member
end
sendSliced('ZADD', due, dueEntries)

if sessionless > 0 or overflow > 0 then
  redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. (now - C.dedupWindow))
  redis.call('PEXPIRE', seen, C.dedupWindow + 1000)
end
if sessionless > 0 then
  if a + 2 * sessionless - 1 ~= #ARGV then return -1 end
  for _ = 1, sessionless do
    local m, finished = ARGV[a], ARGV[a + 1]
    a = a + 2
    if redis.call('ZSCORE', seen, m) then
      duplicates = duplicates + 1
      statuses[#statuses + 1] = 'd'
    else
      accepted = accepted + 1
      statuses[#statuses + 1] = 'a'
      redis.call('ZADD', seen, now, m)
      readyRows[#readyRows + 1] = finished
    end
  end
elseif a - 1 ~= #ARGV then
  return -1
end

sendSliced('RPUSH', ready, readyRows)
if accepted > 0 then redis.call('HINCRBY', stats, 'accepted', accepted) end
if duplicates > 0 then redis.call('HINCRBY', stats, 'duplicate', duplicates) end
if late > 0 then redis.call('HINCRBY', stats, 'late', late) end
if held > 0 then redis.call('HINCRBY', stats, 'held', held) end
if overflow > 0 then redis.call('HINCRBY', stats, 'overflow', overflow) end
return { accepted, duplicates, late, table.concat(statuses) }
