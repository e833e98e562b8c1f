--[[
  Helpers shared by the session-buffer scripts (included by the loader).

  Per-session keys (all under the shard's hash tag, passed in KEYS):
    z  ZSET  member "<id>\t<kind>" -> createdAt (ms), kind 'v' screen_view,
             'e' session_end, 'o' other. Every known event, held or emitted.
             Equal scores sort by member; '\t' sorts below every character an
             id may hold, so members sort exactly as ids: (createdAt, id)
             order. The kind in the member lets scans skip hash lookups.
    h  HASH  id -> 'V' / 'E' held screen_view / session_end followed by the
             row's payload; 'v' / 'e' / 'o' emitted (or never held): the
             state is the value's first character. '#m' -> the session's
             metadata, one value (see META below). (Earlier releases kept a
             held payload apart, under '>' .. id, and each metadata value in
             a field of its own, '#' .. name; both are still read.)
             ('#' and '>' never occur in an id.)
    p  ZSET  member of a held row -> buffer time (ms) at which it may be
             emitted; +inf while its duration is not settled.
]]
local GRACE = tonumber(ARGV[2])
local TIMEOUT = tonumber(ARGV[3])
local DEDUP_WINDOW = tonumber(ARGV[4])
local BUFFER_TTL = tonumber(ARGV[5])
local FIRST_PAGE, PAGE = 4, 64

--[[
  Session metadata, read once per session and script call into a table and
  written back once: one hash field '#m', the values in META order joined by
  '\31' ('' for none; '\31' never occurs in an id, a number or JSON text).
    la  last arrival (buffer ms); none once the session is finalised
    lt, lm  the last event (createdAt order): createdAt, member
    lb, lbt  the nearest boundary at or before it with no idle gap between
    ee, ea  the latest session_end (createdAt order): member, arrival
    em  largest createdAt of an emitted boundary row
    st, sm, s  session facts for the sessions row: the earliest event's
            createdAt and member, and its session fields (a JSON object)
    ept, epm, ep / xpt, xpm, xp  entry / exit path: createdAt, member and
            path (a JSON string) of the first / last screen_view
    tt  buffer time the keys' safety TTLs were last set
    pk  1 while p is known to exist with its TTL
]]
local META = { 'la', 'lt', 'lm', 'lb', 'lbt', 'ee', 'ea', 'em', 'st', 'sm', 's', 'ept', 'epm', 'ep', 'xpt', 'xpm', 'xp', 'tt', 'pk' }
local TEXT = { lm = true, lb = true, ee = true, sm = true, s = true, epm = true, ep = true, xpm = true, xp = true }
-- earlier releases kept each value but tt and pk (the last two) in a field '#' .. name
local OLD_COUNT = #META - 2
local function oldFields()
  local fields = {}
  for i = 1, OLD_COUNT do fields[i] = '#' .. META[i] end
  return fields
end

local function metaValue(name, v)
  if v == nil or v == false or v == '' then return nil end
  if TEXT[name] then return v end
  return tonumber(v)
end

local function readMeta(h)
  local M = {}
  local text = redis.call('HGET', h, '#m')
  if text then
    local i, from = 1, 1
    while true do
      local to = string.find(text, '\31', from, true)
      local name = META[i]
      if name then M[name] = metaValue(name, string.sub(text, from, (to or 0) - 1)) end
      if not to then break end
      i, from = i + 1, to + 1
    end
    return M
  end
  local old = redis.call('HMGET', h, unpack(oldFields()))
  for i = 1, OLD_COUNT do
    local name = META[i]
    M[name] = metaValue(name, old[i])
    if M[name] ~= nil then M.oldLayout = true end
  end
  return M
end

local function writeMeta(h, M)
  local out = {}
  for i, name in ipairs(META) do
    local v = M[name]
    if v == nil then
      out[i] = ''
    elseif type(v) == 'number' then
      out[i] = string.format('%d', v)
    else
      out[i] = v
    end
  end
  redis.call('HSET', h, '#m', table.concat(out, '\31'))
  if M.oldLayout then
    redis.call('HDEL', h, unpack(oldFields()))
    M.oldLayout = nil
  end
end

local function kindOf(member)
  return string.sub(member, -1)
end

local function idOf(member)
  return string.sub(member, 1, -3)
end

-- The state of event `id` in h (its value's first character), or nil.
local function stateOf(h, id)
  local value = redis.call('HGET', h, id)
  if not value then return nil end
  return string.sub(value, 1, 1)
end

local function isBoundary(k)
  return k == 'v' or k == 'e'
end

-- Calls fn(member, createdAt) for each event strictly after (t, m0), in
-- order, until fn returns true. The first page is small: most scans stop
-- at the first or second event.
local function eachAfter(z, t, m0, fn)
  local offset, size = 0, FIRST_PAGE
  while true do
    local page = redis.call('ZRANGEBYSCORE', z, t, '+inf', 'WITHSCORES', 'LIMIT', offset, size)
    for i = 1, #page, 2 do
      local m, s = page[i], tonumber(page[i + 1])
      if s > t or m > m0 then
        if fn(m, s) then return end
      end
    end
    if #page < 2 * size then return end
    offset, size = offset + size, PAGE
  end
end

-- Calls fn(member, createdAt) for each event strictly before (t, m0),
-- newest first, until fn returns true.
local function eachBefore(z, t, m0, fn)
  local offset, size = 0, FIRST_PAGE
  while true do
    local page = redis.call('ZREVRANGEBYSCORE', z, t, '-inf', 'WITHSCORES', 'LIMIT', offset, size)
    for i = 1, #page, 2 do
      local m, s = page[i], tonumber(page[i + 1])
      if s < t or m < m0 then
        if fn(m, s) then return end
      end
    end
    if #page < 2 * size then return end
    offset, size = offset + size, PAGE
  end
end

-- D1-D3 for the screen_view (t, m): returns settled, duration (nil = NULL).
-- Settled when a later boundary or an idle gap ends its scan; otherwise the
-- duration runs to the last event after it and may still grow.
local function viewFigures(z, t, m)
  local prev, last, settled, duration = t, nil, false, nil
  eachAfter(z, t, m, function(next, s)
    if s - prev > TIMEOUT then
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
local function endFigures(z, t, m)
  local first, views = t, 0
  eachBefore(z, t, m, function(prev, s)
    if first - s > TIMEOUT then return true end
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
-- inserts such rows as JSONEachRow.
local function row(duration, views, payload)
  local d = 'null'
  if duration ~= nil then d = string.format('%d', duration) end
  if string.byte(payload, 1) == 91 then -- '['
    return '[' .. d .. ',' .. views .. ',' .. string.sub(payload, 2)
  end
  return '{"duration":' .. d .. ',"screenViews":' .. views .. ',' .. string.sub(payload, 2)
end

-- (Re)computes whether the held screen_view m is settled and schedules it:
-- now + grace when settled, +inf otherwise.
local function schedule(z, p, m, t, now)
  if viewFigures(z, t, m) then
    redis.call('ZADD', p, now + GRACE, m)
  else
    redis.call('ZADD', p, '+inf', m)
  end
end

-- When the session is finalised: graceMs after its session_end arrived,
-- while that session_end is the last event known (events after it start a
-- new visit), or after it went idle for sessionTimeoutMs; going idle settles
-- the D2 durations, and a settled row waits graceMs like any other (O1).
-- (lm, the last event, is kept by every ingest call.)
local function closeAt(M)
  local at = M.la + TIMEOUT + GRACE
  if M.ee and M.ee == M.lm and M.ea + GRACE < at then at = M.ea + GRACE end
  return at
end

-- Records the session_end (t, m) when it is the latest one in createdAt order.
local function noteSessionEnd(z, M, t, m, now)
  if M.ee then
    local te = tonumber(redis.call('ZSCORE', z, M.ee))
    if te > t or (te == t and M.ee > m) then return end
  end
  M.ee, M.ea = m, now
end

-- When the sweeper should next look at the session: its earliest finite
-- emit time, or its finalisation deadline.
-- (An empty p no longer exists, so its TTL must be set again when it returns: pk.)
local function dueAt(M, p)
  local at = closeAt(M)
  local first = redis.call('ZRANGE', p, 0, 0, 'WITHSCORES')
  local s = tonumber(first[2])
  if s == nil then M.pk = nil end
  if s and s < at then at = s end
  return at
end

-- Emits the held row m: computes its figures, appends it to ready, keeps
-- only its kind. Returns its createdAt.
local function emit(z, h, p, ready, m)
  local id, kind = idOf(m), kindOf(m)
  local payload = string.sub(redis.call('HGET', h, id), 2)
  if payload == '' then
    -- held by a version that kept the payload apart
    payload = redis.call('HGET', h, '>' .. id)
    redis.call('HDEL', h, '>' .. id)
  end
  local t = tonumber(redis.call('ZSCORE', z, m))
  local duration, views
  if kind == 'e' then
    duration, views = endFigures(z, t, m)
  else
    local _
    _, duration = viewFigures(z, t, m)
    views = 0
  end
  redis.call('RPUSH', ready, row(duration, views, payload))
  redis.call('HSET', h, id, kind)
  redis.call('ZREM', p, m)
  return t
end

-- (t1, m1) comes before (t2, m2) in session order.
local function earlier(t1, m1, t2, m2)
  return t1 < t2 or (t1 == t2 and m1 < m2)
end

-- Keeps `value` as M[f] when (t, m) is earlier (first = true) or later
-- (first = false) than what M[f] holds; M[f .. 't'] / M[f .. 'm'] hold its order.
local function keepExtreme(M, f, t, m, value, first)
  local ct, cm = M[f .. 't'], M[f .. 'm']
  if ct ~= nil then
    if first and not earlier(t, m, ct, cm) then return end
    if not first and not earlier(ct, cm, t, m) then return end
  end
  M[f], M[f .. 't'], M[f .. 'm'] = value, t, m
end

-- The sessions row of a finalised session: the earliest event's session
-- fields (written by the worker as a JSON object) plus figures from every
-- event known, `version` = the buffer time of this finalisation (a session
-- finalised again after late events replaces its earlier row).
local function sessionRow(z, M, now)
  local facts = M.s
  if not facts then return nil end
  local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  local last = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
  local start, finish = tonumber(first[2]), tonumber(last[2])
  local members = redis.call('ZRANGE', z, 0, -1)
  local views = 0
  for _, m in ipairs(members) do
    if kindOf(m) == 'v' then views = views + 1 end
  end
  local entry = M.ep or '""'
  local exit = M.xp or '""'
  local bounce = 0
  if views <= 1 then bounce = 1 end
  return string.sub(facts, 1, -2)
    .. ',"start":' .. string.format('%d', start)
    .. ',"end":' .. string.format('%d', finish)
    .. ',"duration":' .. string.format('%d', finish - start)
    .. ',"screenViews":' .. views
    .. ',"eventCount":' .. #members
    .. ',"entryPath":' .. entry
    .. ',"exitPath":' .. exit
    .. ',"isBounce":' .. bounce
    .. ',"version":' .. string.format('%d', now) .. '}'
end
