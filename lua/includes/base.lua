--[[
  base: what every session-buffer script (ingest-4.lua, sweep-4.lua) shares:
  the timing values, event members and kinds, and sendSliced.

  Timing values (ms) come from the including script through configure(), so
  no include reads the script's arguments.

  An event of a session is named by its member "<id>\t<kind>", kind 'v'
  screen_view or 'e' session_end (the boundaries), 'h' page_hidden or 's'
  page_visible (engaged time, E1; not boundaries), 'o' any other event. A
  visibility event with a client-measured engaged slice is
  "<id>\t<slice ms><kind>". kindOf gives the kind (the member's last byte)
  as a number (V, E, HIDE, SHOW), which costs no string.
  '\t' sorts below every character an id may hold (the worker validates
  ids), so members of one createdAt sort as their ids do, and the sorted
  set's (score, member) order is DESIGN's (createdAt, id) order.
]]
local C = { grace = 0, timeout = 0, dedupWindow = 0, bufferTtl = 0 }

-- The timing values every helper uses (ms): called once by each script.
local function configure(graceMs, sessionTimeoutMs, dedupWindowMs, bufferTtlMs)
  C.grace, C.timeout, C.dedupWindow, C.bufferTtl = graceMs, sessionTimeoutMs, dedupWindowMs, bufferTtlMs
end

local INF = math.huge

-- (locals: a global's field costs two table lookups per call)
local byte, format = string.byte, string.format

local V, E, HIDE, SHOW = 118, 101, 104, 115 -- string.byte of 'v', 'e', 'h', 's'

local function kindOf(member)
  return byte(member, -1)
end

local function idOf(member)
  return string.sub(member, 1, -3)
end

local function isBoundary(k)
  return k == V or k == E
end

local function isVisibility(k)
  return k == HIDE or k == SHOW
end

-- The client-measured engaged slice (ms) of a visibility event's member, or nil.
local function sliceOf(member)
  return tonumber(string.match(member, '\t(%d+)%a$'))
end

-- (t1, m1) comes before (t2, m2) in session order.
local function earlier(t1, m1, t2, m2)
  return t1 < t2 or (t1 == t2 and m1 < m2)
end

local function int(n)
  return format('%d', n)
end

-- Runs `command key v1 v2 ...` over a list of values in slices of 1 000:
-- unpack() of many thousand values overflows Lua's C stack ("too many
-- results to unpack"). Slices stay even, so field/value and score/member
-- pairs are never split. Returns the reply of an array command (HMGET,
-- ZMSCORE) for the whole list, slices joined in order (a missing value is
-- false); nothing is sent for an empty list.
local function sendSliced(command, key, list)
  local n = #list
  if n <= 1000 then
    if n == 0 then return {} end
    return redis.call(command, key, unpack(list))
  end
  local out = {}
  for from = 1, n, 1000 do
    local reply = redis.call(command, key, unpack(list, from, math.min(from + 999, n)))
    if type(reply) == 'table' then
      for i = 1, #reply do out[#out + 1] = reply[i] end
    end
  end
  return out
end
