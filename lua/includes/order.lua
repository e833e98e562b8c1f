--[[
  order: a session's known events in its sorted set z (score createdAt,
  member "<id>\t<kind>", see includes/base.lua), read with ranged reads
  around one member, never whole: ZRANK finds a member's place in O(log n)
  and ZRANGE reads its neighbours in growing chunks, so a read costs
  O(log n + k) for the k neighbours it needs (the events of one page).

  Events a call adds are gathered in S.adds and written with one ZADD before
  the next read (flushAdds), so a call of in-order events costs one ZADD per
  session.
]]
--- @include "base"

-- Gathers the event (t as its ARGV text, member m) for the session's next ZADD.
local function addEvent(S, t, m)
  local adds = S.adds
  adds[#adds + 1] = t
  adds[#adds + 1] = m
  S.added[m] = true
end

local function flushAdds(S)
  if #S.adds > 0 then
    sendSliced('ZADD', S.z, S.adds)
    S.adds = {}
    S.win = nil
  end
end

-- For each of the members `ms`, its score when the session already knows
-- it (O3), else false: one ZMSCORE for all of a call's events. A retried
-- event has its id and name again, so its member; an id sent again under
-- another kind of name is another event.
local function knownMembers(S, ms)
  return sendSliced('ZMSCORE', S.z, ms)
end

-- A read around one member asks for `firstChunk` events first, doubling up to
-- MAX_CHUNK: few for ingest, whose reads are scattered (a late event's next
-- boundary is usually a few events away, and every score read is formatted
-- and parsed again), more for a sweep, whose window walks whole sessions
-- (sweep-4.lua calls readAhead). Callgrind, one-event calls on a 1 000-event
-- session: 493 000 instructions per call with 16, 380 000 with 4; the sweep's
-- stream costs 2.9 % more with 4 than with 16.
local MAX_CHUNK = 512
local firstChunk = 4
local function readAhead(n)
  firstChunk = n
end

-- Calls fn(member, createdAt) for each event after the known member m
-- (createdAt t), in order, until fn returns true. What it reads stays in
-- S.win (the events from m's rank on, and each one's place) until z
-- changes, so scans of consecutive rows (a sweep emitting a session's rows
-- in order) read each event once: a scan starting inside the window needs
-- no ZRANK and reads only past the window's end; eachBefore uses it too.
local function eachAfter(S, t, m, fn)
  flushAdds(S)
  local w = S.win
  local i = w and w.at[m]
  if not i then
    local rank = redis.call('ZRANK', S.z, m)
    if not rank then return end
    w = { from = rank, list = { m, t }, at = { [m] = 1 }, ended = false }
    S.win, i = w, 1
  end
  local list, size = w.list, firstChunk
  while true do
    for j = i + 2, #list, 2 do
      if fn(list[j], list[j + 1]) then return end
    end
    if w.ended then return end
    local n = #list
    local from = w.from + n / 2
    local got = redis.call('ZRANGE', S.z, int(from), int(from + size - 1), 'WITHSCORES')
    for k = 1, #got, 2 do
      list[n + k], list[n + k + 1] = got[k], tonumber(got[k + 1])
      w.at[got[k]] = n + k
    end
    -- fewer than asked: the window reaches the end of z
    if #got < 2 * size then w.ended = true end
    i = n - 1
    if size < MAX_CHUNK then size = size * 2 end
  end
end

-- Calls fn(member, createdAt) for each event before the known member m,
-- newest first, until fn returns true.
local function eachBefore(S, m, fn)
  flushAdds(S)
  local w, to = S.win, nil
  local i = w and w.at[m]
  if i then
    -- the window's part first, then what lies before it
    local list = w.list
    for j = i - 2, 1, -2 do
      if fn(list[j], list[j + 1]) then return end
    end
    to = w.from - 1
  else
    local rank = redis.call('ZRANK', S.z, m)
    if not rank then return end
    to = rank - 1
  end
  local size = firstChunk
  while to >= 0 do
    local from = math.max(0, to - size + 1)
    local got = redis.call('ZRANGE', S.z, int(from), int(to), 'WITHSCORES')
    for i = #got - 1, 1, -2 do
      if fn(got[i], tonumber(got[i + 1])) then return end
    end
    to = from - 1
    if size < MAX_CHUNK then size = size * 2 end
  end
end

-- The createdAt of a known member, or nil.
local function timeOf(S, m)
  flushAdds(S)
  local score = redis.call('ZSCORE', S.z, m)
  return score and tonumber(score)
end

-- The createdAt of the session's first event and the number of its events.
local function extent(S)
  flushAdds(S)
  local first = redis.call('ZRANGE', S.z, '0', '0', 'WITHSCORES')
  return tonumber(first[2]), redis.call('ZCARD', S.z)
end
