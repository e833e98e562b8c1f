--[[
  Helpers shared by the session-buffer scripts (ingest-4.lua, sweep-4.lua),
  included by the loader. They read no ARGV: each script passes the timing
  values to configure() first.

  A session is one HASH, h (under the shard's hash tag, passed in KEYS):
    '#index'   the index: every known event of the session, held or emitted, in
           (createdAt, id) order, as entries ";<id>,<kind><createdAt ms>";
           kind 'v' screen_view, 'e' session_end, 'o' other. Ids contain
           none of ',', ';', '\t' (the worker validates them), so an id is
           known when ";<id>," occurs in the index.
    '#state'   the session's state and held rows (STATE, HELD below).
    '#facts'   the session fields of its earliest event (a JSON object).
    <id>   the payload of a held row (a screen_view or session_end not yet
           emitted): a JSON array written by the worker, or an object when
           held by a release before 0.5 (row() handles both).
  A member is "<id>\t<kind>"; members sort as ids do ('\t' sorts below every
  character an id may hold), so (createdAt, member) order is (createdAt, id).
  A session costs two hash reads and writes per script call (HMGET, HSET),
  whatever its number of events; the index is parsed only when an event lands
  among known ones, or when rows are emitted.

  Releases before 0.5 kept a session in three keys: z (ZSET member ->
  createdAt), h (id -> state and payload, '#m' the packed metadata, or each
  value in a field '#' .. name in 0.1) and p (ZSET held member -> emit time).
  loadSession converts such a session on its first touch, in the same call,
  and deletes z and p; the scripts still receive all three keys for that.
]]
local C = { grace = 0, timeout = 0, dedupWindow = 0, bufferTtl = 0 }

-- The timing values every helper uses (ms): called once by each script.
local function configure(graceMs, sessionTimeoutMs, dedupWindowMs, bufferTtlMs)
  C.grace, C.timeout, C.dedupWindow, C.bufferTtl = graceMs, sessionTimeoutMs, dedupWindowMs, bufferTtlMs
end

local INF = math.huge

--[[
  STATE: the session's fields, read once per session and script call into a
  table and written back once, as one MessagePack array in this order (false
  for none). The TypeScript mirror is SESSION_STATE in
  src/buffer/session-buffer.ts.
    lastArrival          buffer ms of the last arrival; none once finalised
    lastT, lastMember    the last event (createdAt order)
    tailBoundary, tailBoundaryT  the nearest boundary (screen_view or
                         session_end) at or before the last event with no
                         idle gap between: the boundary an appended event settles
    endMember, endArrival  the latest session_end (createdAt order) and its arrival
    emittedUpTo          largest createdAt of an emitted boundary row
    factsT, factsMember  the earliest event (createdAt, member); its session
                         fields (a JSON object, for the sessions row) are in
                         the hash field '#facts', written only when they
                         change (the position 'facts' stays false)
    entryT, entryMember, entryPath / exitT, exitMember, exitPath  the first /
                         last screen_view and its path (a JSON string)
    ttlSetAt             buffer ms the key's safety TTL was last set
  HELD, after them: the held rows, flat (member, createdAt, emit at), emit at
  -1 while the row's duration is not settled.
  EVENT_COUNT, last: the number of events in the index (bounded by ingest's
  maxSessionEvents).
]]
local LAST_ARRIVAL, LAST_T, LAST_MEMBER, TAIL_BOUNDARY, TAIL_BOUNDARY_T, END_MEMBER, END_ARRIVAL, EMITTED_UP_TO = 1, 2, 3, 4, 5, 6, 7, 8
local FACTS_T, FACTS_MEMBER, FACTS, ENTRY_T, ENTRY_MEMBER, ENTRY_PATH, EXIT_T, EXIT_MEMBER, EXIT_PATH = 9, 10, 11, 12, 13, 14, 15, 16, 17
local TTL_SET_AT, HELD, EVENT_COUNT = 18, 19, 20

local function kindOf(member)
  return string.sub(member, -1)
end

local function idOf(member)
  return string.sub(member, 1, -3)
end

local function isBoundary(k)
  return k == 'v' or k == 'e'
end

-- (t1, m1) comes before (t2, m2) in session order.
local function earlier(t1, m1, t2, m2)
  return t1 < t2 or (t1 == t2 and m1 < m2)
end

local function int(n)
  return string.format('%d', n)
end

-- The state is a MessagePack array (Redis's cmsgpack, in C: parsing and
-- formatting it in Lua cost more than all the session's commands): the
-- STATE fields (false for none), then the held list.
local function decodeState(S, packed)
  local M = cmsgpack.unpack(packed)
  local held = M[HELD]
  for i = 1, #held, 3 do
    local m, at = held[i], held[i + 2]
    S.heldT[m] = held[i + 1]
    if at < 0 then S.held[m] = INF else S.held[m] = at end
  end
  if M[EVENT_COUNT] == nil then
    local _, count = string.gsub(S.index, ';', ';')
    M[EVENT_COUNT] = count
  end
  S.M = M
end

local function encodeState(S)
  local held = {}
  for m, at in pairs(S.held) do
    held[#held + 1] = m
    held[#held + 1] = S.heldT[m]
    if at == INF then held[#held + 1] = -1 else held[#held + 1] = at end
  end
  S.M[HELD] = held
  return cmsgpack.pack(S.M)
end

-- The index as arrays ts (createdAt) and ms (members), parsed on first need.
local function parseIndex(S)
  if S.ts then return end
  local ts, ms = {}, {}
  for id, k, t in string.gmatch(S.index, ';([^,;]+),(%a)(%d+)') do
    ms[#ms + 1] = id .. '\t' .. k
    ts[#ts + 1] = tonumber(t)
  end
  for i, m in ipairs(S.tailM) do
    ms[#ms + 1] = m
    ts[#ts + 1] = S.tailT[i]
  end
  S.ts, S.ms = ts, ms
end

-- The first position after every entry at or before (t, m) (after = true),
-- or the first position at or after (t, m) (after = false).
local function position(S, t, m, after)
  parseIndex(S)
  local ts, ms = S.ts, S.ms
  local lo, hi = 1, #ts + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local mt, mm = ts[mid], ms[mid]
    local before
    if after then before = mt < t or (mt == t and mm <= m) else before = mt < t or (mt == t and mm < m) end
    if before then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- Records a new event (t, m) with id in the index: appended when it comes
-- after every known event (entry: its index entry, ";<id>,<kind><t>"),
-- otherwise inserted in its place.
local function addEvent(S, t, m, id, entry, append)
  if append then
    local n = #S.tail + 1
    S.tail[n], S.tailT[n], S.tailM[n] = entry, t, m
    if S.ts then
      S.ts[#S.ts + 1] = t
      S.ms[#S.ms + 1] = m
    end
  else
    local i = position(S, t, m, true)
    table.insert(S.ts, i, t)
    table.insert(S.ms, i, m)
    S.rebuild = true
  end
  S.added[id] = true
end

-- The id is already known in the session (O3).
local function known(S, id)
  return S.added[id] or string.find(S.index, ';' .. id .. ',', 1, true) ~= nil
end

local function encodeIndex(S)
  if S.rebuild then
    local out = {}
    for i, m in ipairs(S.ms) do out[i] = ';' .. idOf(m) .. ',' .. kindOf(m) .. int(S.ts[i]) end
    return table.concat(out)
  end
  if #S.tail == 0 then return S.index end
  return S.index .. table.concat(S.tail)
end

-- Calls fn(member, createdAt) for each event strictly after (t, m0), in
-- order, until fn returns true.
local function eachAfter(S, t, m0, fn)
  local i = position(S, t, m0, true)
  local ts, ms = S.ts, S.ms
  while i <= #ts do
    if fn(ms[i], ts[i]) then return end
    i = i + 1
  end
end

-- Calls fn(member, createdAt) for each event strictly before (t, m0),
-- newest first, until fn returns true.
local function eachBefore(S, t, m0, fn)
  local i = position(S, t, m0, false) - 1
  local ts, ms = S.ts, S.ms
  while i >= 1 do
    if fn(ms[i], ts[i]) then return end
    i = i - 1
  end
end

-- The packed metadata of releases before 0.5 ('#m', values joined by '\31';
-- 0.1 kept each value but the last two in a field '#' .. name): its first 18
-- values are the STATE fields in the same order, as text.
local OLD_META = { 'la', 'lt', 'lm', 'lb', 'lbt', 'ee', 'ea', 'em', 'st', 'sm', 's', 'ept', 'epm', 'ep', 'xpt', 'xpm', 'xp', 'tt', 'pk' }
local TEXT = { [LAST_MEMBER] = true, [TAIL_BOUNDARY] = true, [END_MEMBER] = true, [FACTS_MEMBER] = true, [FACTS] = true, [ENTRY_MEMBER] = true, [ENTRY_PATH] = true, [EXIT_MEMBER] = true, [EXIT_PATH] = true }

-- Converts a session kept by a release before 0.5 (z, h, p) into this layout.
local function convertOld(S, z, h, p, packed)
  local oldFields = {}
  for i = 1, #OLD_META - 2 do oldFields[i] = '#' .. OLD_META[i] end
  local values
  if packed then
    values = {}
    local i, from = 1, 1
    while true do
      local to = string.find(packed, '\31', from, true)
      values[i] = string.sub(packed, from, (to or 0) - 1)
      if not to then break end
      i, from = i + 1, to + 1
    end
  else
    values = redis.call('HMGET', h, unpack(oldFields))
  end
  if values[FACTS] and values[FACTS] ~= '' then redis.call('HSET', h, '#facts', values[FACTS]) end
  values[FACTS] = false
  for i = 1, TTL_SET_AT do
    local v = values[i]
    if v == nil or v == false or v == '' then
      S.M[i] = false
    elseif TEXT[i] then
      S.M[i] = v
    else
      S.M[i] = tonumber(v)
    end
  end
  local entries, times = {}, {}
  local zr = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
  local ids = {}
  for i = 1, #zr, 2 do
    local m, t = zr[i], tonumber(zr[i + 1])
    entries[#entries + 1] = ';' .. idOf(m) .. ',' .. kindOf(m) .. int(t)
    times[m] = t
    ids[#ids + 1] = idOf(m)
  end
  S.index = table.concat(entries)
  S.M[EVENT_COUNT] = #entries
  local emitAt = {}
  local pr = redis.call('ZRANGE', p, 0, -1, 'WITHSCORES')
  for i = 1, #pr, 2 do emitAt[pr[i]] = tonumber(pr[i + 1]) end
  local drop, keep = {}, {}
  for i = 1, #zr, 2 do
    local m = zr[i]
    local id = idOf(m)
    local value = redis.call('HGET', h, id)
    local state = value and string.sub(value, 1, 1)
    if state == 'V' or state == 'E' then
      local payload = string.sub(value, 2)
      if payload == '' then
        payload = redis.call('HGET', h, '>' .. id) or ''
        drop[#drop + 1] = '>' .. id
      end
      keep[#keep + 1] = id
      keep[#keep + 1] = payload
      S.heldT[m] = times[m]
      S.held[m] = emitAt[m] or INF
    elseif value then
      drop[#drop + 1] = id
    end
  end
  drop[#drop + 1] = '#m'
  for _, f in ipairs(oldFields) do drop[#drop + 1] = f end
  for from = 1, #drop, 1000 do redis.call('HDEL', h, unpack(drop, from, math.min(from + 999, #drop))) end
  for from = 1, #keep, 1000 do redis.call('HSET', h, unpack(keep, from, math.min(from + 999, #keep))) end
  redis.call('DEL', z, p)
  -- the hash may have been emptied and recreated without its TTL: set it again
  S.M[TTL_SET_AT] = false
  S.converted = true
end

-- The session in h (converting one kept by a release before 0.5).
local function loadSession(z, h, p)
  local got = redis.call('HMGET', h, '#state', '#index', '#m', '#lt')
  local S = { h = h, M = nil, held = {}, heldT = {}, index = got[2] or '', tail = {}, tailT = {}, tailM = {}, added = {}, ts = nil, ms = nil, rebuild = false }
  if got[1] then
    decodeState(S, got[1])
  else
    S.M = { false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, {}, 0 }
    if got[3] or got[4] then convertOld(S, z, h, p, got[3] or nil) end
  end
  return S
end

-- Writes the session's state and index back, with the given extra fields
-- (payloads of newly held rows) in the same HSET.
local function saveSession(S, fields)
  fields[#fields + 1] = '#state'
  fields[#fields + 1] = encodeState(S)
  if S.rebuild or #S.tail > 0 or S.converted then
    fields[#fields + 1] = '#index'
    fields[#fields + 1] = encodeIndex(S)
  end
  for from = 1, #fields, 1000 do redis.call('HSET', S.h, unpack(fields, from, math.min(from + 999, #fields))) end
end

-- Sets the safety TTL of an open session's hash when it was never set, or
-- a quarter of bufferTtlMs ago on the buffer clock (after saveSession: the
-- hash may be new).
local function keepTtl(S, now)
  local M = S.M
  if not M[TTL_SET_AT] or now - M[TTL_SET_AT] >= C.bufferTtl / 4 then
    M[TTL_SET_AT] = now
    return true
  end
  return false
end

-- D1-D3 for the screen_view (t, m): returns settled, duration (nil = NULL).
-- Settled when a later boundary or an idle gap ends its scan; otherwise the
-- duration runs to the last event after it and may still grow.
local function viewFigures(S, t, m)
  local prev, last, settled, duration = t, nil, false, nil
  eachAfter(S, t, m, function(next, s)
    if s - prev > C.timeout then
      settled = true
      return true
    end
    if isBoundary(kindOf(next)) then
      settled, duration = true, s - t
      return true
    end
    last, prev = s, s
    return false
  end)
  if duration == nil and last ~= nil then duration = last - t end
  return settled, duration
end

-- D4 for the session_end (t, m): duration from the first event of its visit
-- (after the previous session_end, within the idle-gap chain) and the number
-- of screen_views in that visit.
local function endFigures(S, t, m)
  local first, views = t, 0
  eachBefore(S, t, m, function(prev, s)
    if first - s > C.timeout then return true end
    local k = kindOf(prev)
    if k == 'e' then return true end
    if k == 'v' then views = views + 1 end
    first = s
    return false
  end)
  return t - first, views
end

-- The ClickHouse row: the opaque payload written by the worker, a JSON array
-- of the columns after duration and screenViews (src/event/columns.ts), with
-- those two spliced in front. Never decoded. A payload held by a release
-- before 0.5 is a JSON object: it gets the two as keys, and the flusher
-- inserts such rows too (src/flush/insert.ts).
local function row(duration, views, payload)
  local d = 'null'
  if duration ~= nil then d = int(duration) end
  if string.byte(payload, 1) == 91 then -- '['
    return '[' .. d .. ',' .. views .. ',' .. string.sub(payload, 2)
  end
  return '{"duration":' .. d .. ',"screenViews":' .. views .. ',' .. string.sub(payload, 2)
end

-- (Re)computes whether the held screen_view m is settled: emitted graceMs
-- from now when settled, held without an emit time otherwise.
local function schedule(S, m, t, now)
  if viewFigures(S, t, m) then S.held[m] = now + C.grace else S.held[m] = INF end
end

-- When the session is finalised: graceMs after its session_end arrived,
-- while that session_end is the last event known (events after it start a
-- new visit), or after it went idle for sessionTimeoutMs; going idle settles
-- the D2 durations, and a settled row waits graceMs like any other (O1).
local function closeAt(M)
  local at = M[LAST_ARRIVAL] + C.timeout + C.grace
  if M[END_MEMBER] and M[END_MEMBER] == M[LAST_MEMBER] and M[END_ARRIVAL] + C.grace < at then at = M[END_ARRIVAL] + C.grace end
  return at
end

-- The createdAt of a known member (a linear scan: only when a session_end lands among known events).
local function timeOf(S, m)
  parseIndex(S)
  for i, x in ipairs(S.ms) do
    if x == m then return S.ts[i] end
  end
  return nil
end

-- Records the session_end (t, m) when it is the latest one in createdAt order.
local function noteSessionEnd(S, t, m, now)
  local M = S.M
  if M[END_MEMBER] then
    local te = timeOf(S, M[END_MEMBER])
    if te and (te > t or (te == t and M[END_MEMBER] > m)) then return end
  end
  M[END_MEMBER], M[END_ARRIVAL] = m, now
end

-- When the sweeper should next look at the session: its earliest emit time,
-- or its finalisation deadline.
local function dueAt(S)
  local at = closeAt(S.M)
  for _, e in pairs(S.held) do
    if e < at then at = e end
  end
  return at
end

-- Keeps `value` as the path of the entry (first = true) or exit (first =
-- false) screen_view when (t, m) is earlier / later than the one M holds:
-- f is ENTRY_T or EXIT_T, followed by its member and path.
local function keepExtreme(M, f, t, m, value, first)
  local ct, cm = M[f], M[f + 1]
  if ct then
    if first and not earlier(t, m, ct, cm) then return end
    if not first and not earlier(ct, cm, t, m) then return end
  end
  M[f], M[f + 1], M[f + 2] = t, m, value
end

-- The sessions row of a finalised session: the earliest event's session
-- fields (written by the worker as a JSON object) plus figures from every
-- event known, `version` = the buffer time of this finalisation (a session
-- finalised again after late events replaces its earlier row).
local function sessionRow(S, now)
  local M = S.M
  local facts = redis.call('HGET', S.h, '#facts')
  if not facts then return nil end
  parseIndex(S)
  local ts, ms = S.ts, S.ms
  local start, finish = ts[1], ts[#ts]
  local views = 0
  for _, m in ipairs(ms) do
    if kindOf(m) == 'v' then views = views + 1 end
  end
  local bounce = 0
  if views <= 1 then bounce = 1 end
  return string.sub(facts, 1, -2)
    .. ',"start":' .. int(start)
    .. ',"end":' .. int(finish)
    .. ',"duration":' .. int(finish - start)
    .. ',"screenViews":' .. views
    .. ',"eventCount":' .. #ms
    .. ',"entryPath":' .. (M[ENTRY_PATH] or '""')
    .. ',"exitPath":' .. (M[EXIT_PATH] or '""')
    .. ',"isBounce":' .. bounce
    .. ',"version":' .. int(now) .. '}'
end

-- ZADDs or ZREMs gathered over a call, sent in slices (unpack() of
-- thousands of values would overflow Lua's C stack).
local function sendSliced(command, key, list)
  for from = 1, #list, 1000 do
    redis.call(command, key, unpack(list, from, math.min(from + 999, #list)))
  end
end
