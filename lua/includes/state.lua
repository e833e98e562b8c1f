--[[
  state: a session's keys and its state, read once per script call and
  written back once.

  A session (under the shard's hash tag, every key passed in KEYS) is
    z  ZSET  every known event of the session, held or emitted: member
             "<id>\t<kind>", score createdAt (ms); see includes/order.lua
    p  ZSET  its settled held rows (screen_views and session_ends not yet
             emitted): member -> buffer ms to emit it; see includes/held.lua
    h  HASH  '#state'  the state below, one MessagePack array
             '#facts'  the session fields of its earliest event (a JSON
                       object, for the sessions row), written only when an
                       earlier event arrives
             <member>  the payload of a held row, written by the worker
  z and p outlive h by a second (setTtl), so a state never names events its
  sorted sets have lost; a session found without a state starts from empty
  sorted sets.

  STATE, positions of the MessagePack array (false for none); the TypeScript
  mirror is SESSION_STATE in src/buffer/inspect.ts:
    LAST_ARRIVAL         buffer ms of the last arrival; none once finalised
    LAST_T, LAST_MEMBER  the last event in session order
    TAIL_BOUNDARY(_T)    the nearest boundary at or before the last event with
                         no idle gap between: the boundary an appended event settles
    TAIL_HELD            whether that boundary is still held (not emitted); a
                         held tail screen_view is the one unsettled row
    END_MEMBER, END_ARRIVAL  the latest session_end and its arrival
    EMITTED_UP_TO        largest createdAt of an emitted boundary row
    FACTS_T, FACTS_MEMBER    the earliest event (whose fields are '#facts')
    ENTRY_T, ENTRY_MEMBER, ENTRY_PATH / EXIT_...  the first / last screen_view
                         and its path (a JSON string)
    TTL_SET_AT           buffer ms the keys' safety TTL was last set
    VIEWS                the number of screen_views known
    ENGAGED              the engaged time (E1) of the session's emitted
                         screen_views, summed (none while no view had one)
]]
--- @include "base"

local LAST_ARRIVAL, LAST_T, LAST_MEMBER, TAIL_BOUNDARY, TAIL_BOUNDARY_T, TAIL_HELD = 1, 2, 3, 4, 5, 6
local END_MEMBER, END_ARRIVAL, EMITTED_UP_TO, FACTS_T, FACTS_MEMBER = 7, 8, 9, 10, 11
local ENTRY_T, ENTRY_MEMBER, ENTRY_PATH, EXIT_T, EXIT_MEMBER, EXIT_PATH = 12, 13, 14, 15, 16, 17
local TTL_SET_AT, VIEWS, ENGAGED = 18, 19, 20
local STATE_SIZE = 20

local function emptyState()
  local M = {}
  for i = 1, STATE_SIZE do M[i] = false end
  M[VIEWS] = 0
  return M
end

-- Set by includes/upgrade.lua: converts a session kept by an earlier layout.
local upgrade

-- The session in z, p and h. S.adds gathers the call's new events for one
-- ZADD of z, S.added the members added in this call (includes/order.lua);
-- S.emit the call's new emit times, S.emitList their members, for one ZADD
-- of p (includes/held.lua).
local function loadSession(z, p, h)
  local got = redis.call('HMGET', h, '#state', '#index')
  local S = { z = z, p = p, h = h, M = nil, adds = {}, added = {}, emit = {}, emitList = {}, converted = false }
  if got[2] then
    upgrade(S, got[1], got[2])
  elseif got[1] then
    S.M = cmsgpack.unpack(got[1])
  else
    S.M = emptyState()
    redis.call('DEL', z, p)
  end
  return S
end

-- Writes the state back, with the given extra fields (payloads, facts) in
-- the same HSET.
local function saveSession(S, fields)
  fields[#fields + 1] = '#state'
  fields[#fields + 1] = cmsgpack.pack(S.M)
  sendSliced('HSET', S.h, fields)
end

-- The keys' TTL: the sorted sets outlive the hash by a second (pEmpty: p
-- holds nothing, so it has no key to expire).
local function setTtl(S, ms, pEmpty)
  local outlive = int(ms + 1000)
  redis.call('PEXPIRE', S.h, int(ms))
  redis.call('PEXPIRE', S.z, outlive)
  if not pEmpty then redis.call('PEXPIRE', S.p, outlive) end
end

-- Whether the safety TTL of an open session is due: never set, or set a
-- quarter of bufferTtlMs ago on the buffer clock. Marks it set; the caller
-- calls setTtl after saving (the keys may be new).
local function ttlDue(S, now)
  local M = S.M
  if not M[TTL_SET_AT] or now - M[TTL_SET_AT] >= C.bufferTtl / 4 then
    M[TTL_SET_AT] = now
    return true
  end
  return false
end
