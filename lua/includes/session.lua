--[[
  Helpers shared by the session-buffer scripts (included by the loader).

  Per-session keys (all under the shard's hash tag, passed in KEYS):
    z  ZSET  event id -> createdAt (ms). Every known event, held or emitted;
             equal scores sort by id, which gives the (createdAt, id) order.
    h  HASH  event id -> state. "V\t<payload>" / "E\t<payload>": a held
             screen_view / session_end; "v" / "e" / "o": emitted (kind only).
             Meta fields start with '#' (never valid in an id):
             #la last arrival (buffer ms), #ee id of the latest session_end
             (createdAt order), #ea arrival of that session_end (buffer ms),
             #em largest createdAt of an emitted boundary row.
    p  ZSET  held row id -> buffer time (ms) at which it may be emitted;
             +inf while its duration is not settled.
]]
local GRACE = tonumber(ARGV[2])
local TIMEOUT = tonumber(ARGV[3])
local DEDUP_WINDOW = tonumber(ARGV[4])
local BUFFER_TTL = tonumber(ARGV[5])
local PAGE = 64

local function kindOf(h, id)
  local v = redis.call('HGET', h, id)
  if v then return string.sub(v, 1, 1) end
  return nil
end

local function isBoundary(k)
  return k == 'v' or k == 'V' or k == 'e' or k == 'E'
end

-- Calls fn(id, createdAt) for each event strictly after (t, id0), in order,
-- until fn returns true.
local function eachAfter(z, t, id0, fn)
  local offset = 0
  while true do
    local page = redis.call('ZRANGEBYSCORE', z, t, '+inf', 'WITHSCORES', 'LIMIT', offset, PAGE)
    for i = 1, #page, 2 do
      local m, s = page[i], tonumber(page[i + 1])
      if s > t or m > id0 then
        if fn(m, s) then return end
      end
    end
    if #page < 2 * PAGE then return end
    offset = offset + PAGE
  end
end

-- Calls fn(id, createdAt) for each event strictly before (t, id0), newest
-- first, until fn returns true.
local function eachBefore(z, t, id0, fn)
  local offset = 0
  while true do
    local page = redis.call('ZREVRANGEBYSCORE', z, t, '-inf', 'WITHSCORES', 'LIMIT', offset, PAGE)
    for i = 1, #page, 2 do
      local m, s = page[i], tonumber(page[i + 1])
      if s < t or m < id0 then
        if fn(m, s) then return end
      end
    end
    if #page < 2 * PAGE then return end
    offset = offset + PAGE
  end
end

-- D1-D3 for the screen_view (t, id): returns settled, duration (nil = NULL).
-- Settled when a later boundary or an idle gap ends its scan; otherwise the
-- duration runs to the last event after it and may still grow.
local function viewFigures(z, h, t, id)
  local prev, last, settled, duration = t, nil, false, nil
  eachAfter(z, t, id, function(m, s)
    if s - prev > TIMEOUT then
      settled = true
      return true
    end
    if isBoundary(kindOf(h, m)) then
      settled, duration = true, s - t
      return true
    end
    last, prev = s, s
    return false
  end)
  if duration == nil and last ~= nil then duration = last - t end
  return settled, duration
end

-- D4 for the session_end (t, id): duration from the first event of its visit
-- (after the previous session_end, within the idle-gap chain) and the number
-- of screen_views in that visit.
local function endFigures(z, h, t, id)
  local first, views = t, 0
  eachBefore(z, t, id, function(m, s)
    if first - s > TIMEOUT then return true end
    local k = kindOf(h, m)
    if k == 'e' or k == 'E' then return true end
    if k == 'v' or k == 'V' then views = views + 1 end
    first = s
    return false
  end)
  return t - first, views
end

-- The ClickHouse row: the opaque payload (a JSON object written by the
-- worker) with duration and screenViews spliced in front. Never decoded.
local function row(duration, views, payload)
  local d = 'null'
  if duration ~= nil then d = string.format('%d', duration) end
  return '{"duration":' .. d .. ',"screenViews":' .. views .. ',' .. string.sub(payload, 2)
end

-- (Re)computes whether the held screen_view id is settled and schedules it:
-- now + grace when settled, +inf otherwise.
local function schedule(z, h, p, id, t, now)
  local settled = viewFigures(z, h, t, id)
  if settled then
    redis.call('ZADD', p, now + GRACE, id)
  else
    redis.call('ZADD', p, '+inf', id)
  end
end

-- When the session is finalised: graceMs after its session_end arrived,
-- while that session_end is the last event known (events after it start a
-- new visit), or after it went idle for sessionTimeoutMs; going idle settles
-- the D2 durations, and a settled row waits graceMs like any other (O1).
local function closeAt(z, h)
  local at = tonumber(redis.call('HGET', h, '#la')) + TIMEOUT + GRACE
  local ee = redis.call('HGET', h, '#ee')
  if ee then
    local ea = tonumber(redis.call('HGET', h, '#ea'))
    if ea + GRACE < at and redis.call('ZRANK', z, ee) == redis.call('ZCARD', z) - 1 then at = ea + GRACE end
  end
  return at
end

-- Records the session_end (t, id) when it is the latest one in createdAt order.
local function noteSessionEnd(z, h, t, id, now)
  local ee = redis.call('HGET', h, '#ee')
  if ee then
    local te = tonumber(redis.call('ZSCORE', z, ee))
    if te > t or (te == t and ee > id) then return end
  end
  redis.call('HSET', h, '#ee', id, '#ea', now)
end

-- When the sweeper should next look at the session: its earliest finite
-- emit time, or its finalisation deadline.
local function dueAt(z, h, p)
  local at = closeAt(z, h)
  local first = redis.call('ZRANGE', p, 0, 0, 'WITHSCORES')
  local s = tonumber(first[2])
  if s and s < at then at = s end
  return at
end

-- Emits the held row id: computes its figures, appends it to ready, keeps
-- only its kind. Returns 1.
local function emit(z, h, p, ready, id)
  local state = redis.call('HGET', h, id)
  local t = tonumber(redis.call('ZSCORE', z, id))
  local kind = string.sub(state, 1, 1)
  local payload = string.sub(state, 3)
  local duration, views
  if kind == 'E' then
    duration, views = endFigures(z, h, t, id)
  else
    local _
    _, duration = viewFigures(z, h, t, id)
    views = 0
  end
  redis.call('RPUSH', ready, row(duration, views, payload))
  redis.call('HSET', h, id, string.lower(kind))
  redis.call('ZREM', p, id)
  local em = tonumber(redis.call('HGET', h, '#em'))
  if em == nil or t > em then redis.call('HSET', h, '#em', t) end
  return 1
end
