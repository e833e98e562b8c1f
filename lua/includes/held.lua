--[[
  held: a session's held rows in its sorted set p (member -> buffer ms to
  emit it, UNSETTLED while not settled), so that no call reads all of them:
  a call changes the rows it settles with one ZADD, and asks p about one
  row only on the paths that need it (ZSCORE). UNSETTLED is 2^53 - 1, not
  +inf: Redis keeps an integer score in a small sorted set as an integer,
  while "inf" is parsed again (strtod) each time an insert walks past it.

  Emit times a call sets are gathered in S.emit (member -> ms) and written
  by flushEmits; heldAt reads them first.
]]
--- @include "base"

local UNSETTLED = 9007199254740991

-- An emit time read from p (INF while not settled).
local function emitTime(score)
  local at = tonumber(score)
  if at >= UNSETTLED then return INF end
  return at
end

-- Sets the held row m to be emitted at `at` (INF: not settled).
local function setEmit(S, m, at)
  if S.emit[m] == nil then S.emitList[#S.emitList + 1] = m end
  S.emit[m] = at
end

-- The emit time of m if it is held (INF while not settled), else nil.
local function heldAt(S, m)
  local at = S.emit[m]
  if at ~= nil then return at end
  local score = redis.call('ZSCORE', S.p, m)
  if score then return emitTime(score) end
  return nil
end

-- Writes the call's emit times with one ZADD; returns the earliest of them
-- (INF when none), for the session's due time.
local function flushEmits(S)
  local list, earliest = S.emitList, INF
  if #list == 0 then return earliest end
  local args = {}
  for i, m in ipairs(list) do
    local at = S.emit[m]
    if at < earliest then earliest = at end
    if at == INF then args[2 * i - 1] = int(UNSETTLED) else args[2 * i - 1] = int(at) end
    args[2 * i] = m
  end
  sendSliced('ZADD', S.p, args)
  S.emit, S.emitList = {}, {}
  return earliest
end
