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

-- The events row: the payload written by the worker, a JSON array of the
-- columns after the figures (src/event/columns.ts), with the figures
-- (duration, screenViews, engagedMs) spliced in front. A payload held since
-- a release before 0.5 is a JSON object: it gets them as keys (the flusher
-- inserts such rows too).
local function row(duration, views, engaged, payload)
  local d, e = intOrNull(duration), intOrNull(engaged)
  if string.byte(payload, 1) == 91 then -- '['
    return '[' .. d .. ',' .. views .. ',' .. e .. ',' .. string.sub(payload, 2)
  end
  return '{"duration":' .. d .. ',"screenViews":' .. views .. ',"engagedMs":' .. e .. ',' .. string.sub(payload, 2)
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
    .. ',"engagedMs":' .. intOrNull(M[ENGAGED] or nil)
    .. ',"eventCount":' .. count
    .. ',"entryPath":' .. (M[ENTRY_PATH] or '""')
    .. ',"exitPath":' .. (M[EXIT_PATH] or '""')
    .. ',"isBounce":' .. bounce
    .. ',"version":' .. int(now) .. '}'
end
