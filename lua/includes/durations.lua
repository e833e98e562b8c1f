--[[
  durations: DESIGN §2's rules on a session's order set, as the scripts
  apply them incrementally (src/buffer/durations.ts is the reference model
  the tests compare them with), and the times that follow from them: when a
  held row is settled, when the session is finalised, when it is next due.
]]
--- @include "state"
--- @include "order"
--- @include "held"

-- E1: the engaged time of a view from t to `finish`, given the visibility
-- events inside (flat: member, createdAt, ...): its duration minus the time
-- hidden, or the sum of the client-measured slices when there are any
-- (capped at the duration). Visible from the view on, unless the first
-- visibility event is a page_visible (opened hidden); a hide lasts until a
-- page_visible or the end. src/buffer/durations.ts (engagedTime) is the reference.
local function engagedTime(t, finish, visibility)
  local duration = finish - t
  local sliced, slices = false, 0
  for i = 1, #visibility, 2 do
    local slice = sliceOf(visibility[i])
    if slice then sliced, slices = true, slices + slice end
  end
  if sliced then return math.min(duration, slices) end
  local hidden, since, hiddenMs = visibility[1] ~= nil and kindOf(visibility[1]) == SHOW, t, 0
  for i = 1, #visibility, 2 do
    local k, s = kindOf(visibility[i]), visibility[i + 1]
    if k == HIDE and not hidden then
      hidden, since = true, s
    elseif k == SHOW and hidden then
      hidden, hiddenMs = false, hiddenMs + s - since
    end
  end
  if hidden then hiddenMs = hiddenMs + finish - since end
  return duration - hiddenMs
end

-- D1-D3 for the screen_view (t, m): returns settled, duration (nil = NULL)
-- and, when asked (withEngaged), its engaged time (E1; nil when the duration
-- is). Settled when a later boundary or an idle gap ends its scan;
-- otherwise the duration runs to the last event after it and may still grow.
local function viewFigures(S, t, m, withEngaged)
  local prev, last, settled, duration = t, nil, false, nil
  local visibility = {}
  eachAfter(S, t, m, function(next, s)
    if s - prev > C.timeout then
      settled = true
      return true
    end
    local k = kindOf(next)
    if isBoundary(k) then
      settled, duration = true, s - t
      return true
    end
    if withEngaged and isVisibility(k) then
      visibility[#visibility + 1] = next
      visibility[#visibility + 1] = s
    end
    last, prev = s, s
    return false
  end)
  if duration == nil and last ~= nil then duration = last - t end
  local engaged
  if withEngaged and duration ~= nil then engaged = engagedTime(t, t + duration, visibility) end
  return settled, duration, engaged
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

-- (Re)computes whether the screen_view m, held with emit time `current` (INF
-- while not settled, as a new one), is settled: emitted graceMs from now when
-- settled (re-settling restarts the grace), held without an emit time otherwise.
local function schedule(S, m, t, now, current)
  if viewFigures(S, t, m) then
    setEmit(S, m, now + C.grace)
  elseif current ~= INF then
    setEmit(S, m, INF)
  end
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
  local first = tonumber(redis.call('ZRANGE', S.p, '0', '0', 'WITHSCORES')[2])
  if first and first < at then at = first end
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
