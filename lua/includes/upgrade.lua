--[[
  upgrade: converts a session kept by layout 0.5 (release 0.1.0's last
  buffer change) on its first touch, inside the call that touches it.

  Layout 0.5 kept the whole session in its hash: its order as the string
  '#index' of entries ";<id>,<kind><createdAt>", its state as a MessagePack
  array in another order (the held rows inside it, at 19, as member,
  createdAt, emit at or -1), and a held row's payload under its id. The
  index becomes the order set z, the held rows the sorted set p (both with
  the hash's TTL, plus a second), payloads move to their members' fields,
  the state is rewritten by the caller's saveSession, and '#index' is
  deleted. Earlier layouts (0.1, 0.4) were converted by 0.5 and are not read
  here.
]]
--- @include "base"
--- @include "state"
--- @include "held"

-- 0.5's state position -> this layout's (0.5's facts slot, held list and count are not copied).
local FROM_05 = { [1] = LAST_ARRIVAL, [2] = LAST_T, [3] = LAST_MEMBER, [4] = TAIL_BOUNDARY, [5] = TAIL_BOUNDARY_T,
  [6] = END_MEMBER, [7] = END_ARRIVAL, [8] = EMITTED_UP_TO, [9] = FACTS_T, [10] = FACTS_MEMBER, [12] = ENTRY_T,
  [13] = ENTRY_MEMBER, [14] = ENTRY_PATH, [15] = EXIT_T, [16] = EXIT_MEMBER, [17] = EXIT_PATH, [18] = TTL_SET_AT }
local HELD_05 = 19

upgrade = function(S, packed, index)
  local M = emptyState()
  S.M = M
  redis.call('DEL', S.z, S.p)
  local old = packed and cmsgpack.unpack(packed) or {}
  for from, to in pairs(FROM_05) do
    if old[from] ~= nil then M[to] = old[from] end
  end
  -- the held rows: emit times into p, payloads from their ids' fields to their members'
  local held, schedule, ids, moved = old[HELD_05] or {}, {}, {}, {}
  for i = 1, #held, 3 do
    local m, at = held[i], held[i + 2]
    if m == M[TAIL_BOUNDARY] then M[TAIL_HELD] = true end
    -- settled rows go to p; the unsettled one is the tail boundary (held.lua),
    -- and one that is not (never written by 0.5) is emitted at the next sweep
    if at >= 0 or m ~= M[TAIL_BOUNDARY] then
      schedule[#schedule + 1] = int(math.max(at, 0))
      schedule[#schedule + 1] = m
    end
    ids[#ids + 1] = idOf(m)
  end
  sendSliced('ZADD', S.p, schedule)
  local payloads = sendSliced('HMGET', S.h, ids)
  for i, id in ipairs(ids) do
    if payloads[i] then
      moved[#moved + 1] = held[3 * i - 2]
      moved[#moved + 1] = payloads[i]
    end
  end
  sendSliced('HSET', S.h, moved)
  sendSliced('HDEL', S.h, ids)
  -- the index becomes the order set
  local adds, views = {}, 0
  for id, k, t in string.gmatch(index, ';([^,;]+),(%a)(%d+)') do
    adds[#adds + 1] = t
    adds[#adds + 1] = id .. '\t' .. k
    if k == 'v' then views = views + 1 end
  end
  M[VIEWS] = views
  sendSliced('ZADD', S.z, adds)
  redis.call('HDEL', S.h, '#index')
  local ttl = redis.call('PTTL', S.h)
  if ttl > 0 then
    redis.call('PEXPIRE', S.z, ttl + 1000)
    redis.call('PEXPIRE', S.p, ttl + 1000)
  end
  S.converted = true
end
