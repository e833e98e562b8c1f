--[[
  rows: the finished rows the sweep emits, built around opaque payloads
  (never decoded: cjson damages arrays and large numbers).
]]
--- @include "state"
--- @include "order"

local function intOrNull(n)
  if n == nil then return 'null' end
  return int(n)
end

-- The events row: the figures (duration, screenViews, engagedMs) in front
-- of the payload written by the worker, the columns after the figures
-- (src/event/columns.ts). A payload held by 0.1.0 is the whole JSON array
-- (its '[' is cut), one held since a release before 0.5 a JSON object,
-- which gets the figures as keys (the flusher inserts such rows too).
local function row(duration, views, engaged, payload)
  local d, e, first = intOrNull(duration), intOrNull(engaged), string.byte(payload, 1)
  if first ~= 91 and first ~= 123 then
    -- this release's held payload: the array without its '[' (heldPayload in
    -- src/event/columns.ts), so it is not copied before the concatenation
    return '[' .. d .. ',' .. int(views) .. ',' .. e .. ',' .. payload
  end
  if first == 91 then -- '[', held by 0.1.0
    return '[' .. d .. ',' .. int(views) .. ',' .. e .. ',' .. string.sub(payload, 2)
  end
  return '{"duration":' .. d .. ',"screenViews":' .. int(views) .. ',"engagedMs":' .. e .. ',' .. string.sub(payload, 2)
end

-- The sessions row of a finalised session: the earliest event's session
-- fields (a JSON object written by the worker) plus figures from every event
-- known, `version` = the buffer time of this finalisation (a session
-- finalised again after late events replaces its earlier row). nil when the
-- session has no facts (its state expired).
local function sessionRow(S, now, facts)
  local M = S.M
  if not facts then return nil end
  local start, count = extent(S)
  if not start then return nil end
  local finish = M[LAST_T]
  local bounce = 0
  if M[VIEWS] <= 1 then bounce = 1 end
  return string.sub(facts, 1, -2)
    .. ',"start":' .. int(start)
    .. ',"end":' .. int(finish)
    .. ',"duration":' .. int(finish - start)
    .. ',"screenViews":' .. int(M[VIEWS])
    .. ',"engagedMs":' .. intOrNull(M[ENGAGED] or nil)
    .. ',"eventCount":' .. int(count)
    .. ',"entryPath":' .. (M[ENTRY_PATH] or '""')
    .. ',"exitPath":' .. (M[EXIT_PATH] or '""')
    .. ',"isBounce":' .. bounce
    .. ',"version":' .. int(now) .. '}'
end
