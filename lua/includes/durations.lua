--[[
  durations: DESIGN §2's rules on a session's order set, as the scripts
  apply them incrementally (src/buffer/durations.ts is the reference model
  the tests compare them with), and the times that follow from them: when a
  held row is settled, when the session is finalised, when it is next due.
]]
--- @include "state"
--- @include "order"
--- @include "held"

-- D1-D3 for the screen_view (t, m): returns settled, duration (nil = NULL).
-- Settled when a later boundary or an idle gap ends its scan; otherwise the
-- duration runs to the last event after it and may still grow.
local function viewFigures(S, t, m)
  local prev, last, settled, duration = t, nil, false, nil
  eachAfter(S, m, function(next, s)
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
  eachBefore(S, m, function(prev, s)
    if first - s > C.timeout then return true end
    local k = kindOf(prev)
    if k == E then return true end
    if k == V then views = views + 1 end
    first = s
    return false
  end)
  return t - first, views
end

-- (Re)computes whether the held screen_view m is settled: emitted graceMs
-- from now when settled, held without an emit time otherwise.
local function schedule(S, m, t, now)
  if viewFigures(S, t, m) then setEmit(S, m, now + C.grace) else setEmit(S, m, INF) end
end

-- The nearest boundary at or before the event (t, m), with no idle gap in
-- between: the boundary an event appended after (t, m) settles.
local function tailBoundary(S, t, m)
  if isBoundary(kindOf(m)) then return m, t end
  local prev, bm, bt = t, nil, nil
  eachBefore(S, m, function(b, s)
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

-- When the session is finalised: graceMs after its session_end arrived,
-- while that session_end is the last event known (events after it start a
-- new visit), or after it went idle for sessionTimeoutMs; going idle settles
-- the D2 durations, and a settled row waits graceMs like any other (O1).
local function closeAt(M)
  local at = M[LAST_ARRIVAL] + C.timeout + C.grace
  if M[END_MEMBER] and M[END_MEMBER] == M[LAST_MEMBER] and M[END_ARRIVAL] + C.grace < at then at = M[END_ARRIVAL] + C.grace end
  return at
end

-- When the sweeper should next look at the session: its earliest emit time,
-- or its finalisation deadline (reads the first row of p).
local function dueAt(S)
  local at = closeAt(S.M)
  local first = redis.call('ZRANGE', S.p, 0, 0, 'WITHSCORES')
  if first[2] then
    local e = emitTime(first[2])
    if e < at then at = e end
  end
  return at
end

-- Records the session_end (t, m) when it is the latest one in session order.
local function noteSessionEnd(S, t, m, now)
  local M = S.M
  if M[END_MEMBER] then
    local te = timeOf(S, M[END_MEMBER])
    if te and earlier(t, m, te, M[END_MEMBER]) then return end
  end
  M[END_MEMBER], M[END_ARRIVAL] = m, now
end

-- Keeps `path` as the path of the entry (first = true) or exit (first =
-- false) screen_view when (t, m) is earlier / later than the one M holds:
-- f is ENTRY_T or EXIT_T, followed by its member and path.
local function keepExtreme(M, f, t, m, path, first)
  local ct, cm = M[f], M[f + 1]
  if ct then
    if first and not earlier(t, m, ct, cm) then return end
    if not first and not earlier(ct, cm, t, m) then return end
  end
  M[f], M[f + 1], M[f + 2] = t, m, path
end
