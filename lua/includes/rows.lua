--[[
  rows: the finished rows the sweep emits, built around opaque payloads
  (never decoded: cjson damages arrays and large numbers).
]]
--- @include "state"
--- @include "order"

-- The events row: the payload written by the worker, a JSON array of the
-- columns after duration and screenViews (src/event/columns.ts), with those
-- two spliced in front. A payload held since a release before 0.5 is a JSON
-- object: it gets the two as keys (the flusher inserts such rows too).
local function row(duration, views, payload)
  local d = 'null'
  if duration ~= nil then d = int(duration) end
  if string.byte(payload, 1) == 91 then -- '['
    return '[' .. d .. ',' .. views .. ',' .. string.sub(payload, 2)
  end
  return '{"duration":' .. d .. ',"screenViews":' .. views .. ',' .. string.sub(payload, 2)
end

-- The sessions row of a finalised session: the earliest event's session
-- fields (a JSON object written by the worker) plus figures from every event
-- known, `version` = the buffer time of this finalisation (a session
-- finalised again after late events replaces its earlier row). nil when the
-- session has no facts (its state expired).
local function sessionRow(S, now)
  local M = S.M
  local facts = redis.call('HGET', S.h, '#facts')
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
    .. ',"screenViews":' .. M[VIEWS]
    .. ',"eventCount":' .. count
    .. ',"entryPath":' .. (M[ENTRY_PATH] or '""')
    .. ',"exitPath":' .. (M[EXIT_PATH] or '""')
    .. ',"isBounce":' .. bounce
    .. ',"version":' .. int(now) .. '}'
end
