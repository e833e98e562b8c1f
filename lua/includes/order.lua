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
  end
end

-- For each of the members `ms`, its score when the session already knows
-- it (O3), else false: one ZMSCORE for all of a call's events. A retried
-- event has its id and name again, so its member; an id sent again under
-- another kind of name is another event.
local function knownMembers(S, ms)
  return sendSliced('ZMSCORE', S.z, ms)
end

local FIRST_CHUNK, MAX_CHUNK = 16, 512

-- Calls fn(member, createdAt) for each event after the known member m, in
-- order, until fn returns true.
local function eachAfter(S, m, fn)
  flushAdds(S)
  local rank = redis.call('ZRANK', S.z, m)
  if not rank then return end
  local from, size = rank + 1, FIRST_CHUNK
  while true do
    local got = redis.call('ZRANGE', S.z, from, from + size - 1, 'WITHSCORES')
    for i = 1, #got, 2 do
      if fn(got[i], tonumber(got[i + 1])) then return end
    end
    if #got < 2 * size then return end
    from = from + size
    if size < MAX_CHUNK then size = size * 2 end
  end
end

-- Calls fn(member, createdAt) for each event before the known member m,
-- newest first, until fn returns true.
local function eachBefore(S, m, fn)
  flushAdds(S)
  local rank = redis.call('ZRANK', S.z, m)
  if not rank then return end
  local to, size = rank - 1, FIRST_CHUNK
  while to >= 0 do
    local from = math.max(0, to - size + 1)
    local got = redis.call('ZRANGE', S.z, from, to, 'WITHSCORES')
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
  local first = redis.call('ZRANGE', S.z, 0, 0, 'WITHSCORES')
  return tonumber(first[2]), redis.call('ZCARD', S.z)
end
