--[[
  held: a session's held rows (screen_views and session_ends not yet
  emitted). A held row is settled (its figures are final; it is emitted
  graceMs after it settled) or not; only the session's tail boundary can be
  unsettled: a screen_view is settled by the next boundary of its visit or
  by an idle gap after it, and the tail boundary is the one boundary with
  neither after it (includes/state.lua). So:
    - the settled rows are in the sorted set p, member -> buffer ms to emit it;
    - the unsettled one, if any, is the tail boundary, a screen_view, with
      TAIL_HELD set in the state; it is in no set.
  No call reads all of p: a call adds the rows it settles with one ZADD, and
  asks p about one row only on the paths that need it (ZSCORE).

  Emit times a call sets are gathered in S.emit (member -> ms, INF when a
  row is no longer settled) and written by flushEmits; heldAt reads them first.
]]
--- @include "base"
--- @include "state"

-- Sets the held row m to be emitted at `at`; INF: m is not settled (any more).
local function setEmit(S, m, at)
  if S.emit[m] == nil then S.emitList[#S.emitList + 1] = m end
  S.emit[m] = at
end

-- The emit time of m if it is held (INF while not settled), else nil.
local function heldAt(S, m)
  local at = S.emit[m]
  if at ~= nil then return at end
  -- a boundary added in this call without an emit time is a new unsettled screen_view
  if S.added[m] and isBoundary(kindOf(m)) then return INF end
  local M = S.M
  if m == M[TAIL_BOUNDARY] and M[TAIL_HELD] and kindOf(m) == V then return INF end
  local score = redis.call('ZSCORE', S.p, m)
  if score then return tonumber(score) end
  return nil
end

-- Writes the call's emit times: one ZADD of the settled rows, and a ZREM of
-- rows settled before that are not any more (an idle gap filled by a late
-- event); returns the earliest emit time (INF when none), for the due time.
local function flushEmits(S)
  local list, earliest = S.emitList, INF
  if #list == 0 then return earliest end
  local add, remove = {}, {}
  for _, m in ipairs(list) do
    local at = S.emit[m]
    if at ~= INF then
      if at < earliest then earliest = at end
      add[#add + 1] = int(at)
      add[#add + 1] = m
    elseif not S.added[m] then
      remove[#remove + 1] = m
    end
  end
  sendSliced('ZADD', S.p, add)
  sendSliced('ZREM', S.p, remove)
  S.emit, S.emitList = {}, {}
  return earliest
end
