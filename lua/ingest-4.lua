--[[
  ingest: adds one job's events of one shard to the session buffer, in one call.

  Held events (screen_view, session_end with a session) stay in the session's
  keys until the sweeper emits them; every other event is written to `ready`
  at once with duration NULL. An event that comes after every known event of
  its session (the common case) takes a fast path that needs no scans: the
  session's last event and the last boundary of its last visit are kept in
  its metadata. Any other event takes the scanning path, after which that
  metadata is recomputed. An id already known in the session (or, for
  events without a session, seen in the shard within the dedup window) is
  dropped and counted. An event whose neighbours were already emitted (the
  nearest earlier boundary of its visit, or any later boundary) is accepted
  and counted as late (O2): it gets its own duration, the emitted rows stay.

  KEYS[1]  due    ZSET  session member -> buffer time (ms) to sweep it next
  KEYS[2]  ready  LIST  finished rows (JSON objects) awaiting insert
  KEYS[3]  stats  HASH  shard counters (accepted, duplicate, late, held)
  KEYS[4]  seen   ZSET  "<len>:<projectId><id>" of events without a session -> arrival (ms)
  KEYS[5+3(i-1)], KEYS[6+3(i-1)], KEYS[7+3(i-1)]  z, h, p of session i (see includes/session.lua)
  Event ids must not contain '\t', '#' or '>' (the worker validates them).

  ARGV[1]  now               buffer clock, epoch ms
  ARGV[2]  graceMs           ms a settled row is held before emission
  ARGV[3]  sessionTimeoutMs  idle gap (ms) that ends a session
  ARGV[4]  dedupWindowMs     ms ids of sessionless events are remembered
  ARGV[5]  bufferTtlMs       safety TTL (ms) of a held session's keys
  ARGV[6]  S                 number of sessions
  ARGV[7]  L                 number of events without a session
  then for each session: member, N, the session facts of its earliest event in this call
  (createdAt ms, member, JSON object), and N times (id, createdAt ms, kind 'v'|'e'|'o',
  data, path as a JSON string or '' when not a screen_view)
  then L times (seen member, row)
  where data is, for a screen_view or session_end, its held value (the state
  'V' or 'E' followed by the payload), and for any other event its finished
  row (duration NULL, screenViews 0): built by the worker, so that no event's
  payload is copied or concatenated in Lua (~1 µs per copy of a 700-byte string)

  Returns: { accepted, duplicates, late }
           -1 ARGS_MISMATCH  the KEYS / ARGV counts do not match S, N and L
]]
--- @include "session"

local now = tonumber(ARGV[1])
local sessions = tonumber(ARGV[6])
local sessionless = tonumber(ARGV[7])
if #KEYS ~= 4 + 3 * sessions then return -1 end

local due, ready, stats, seen = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local accepted, duplicates, late, held = 0, 0, 0, 0
local a = 8

-- Writes are gathered and sent as one command where order allows (Redis
-- time per event is mostly the cost of each redis.call): rows for `ready`
-- per call; per session, the events' ZADDs to z and the emit times for p
-- (a member added twice keeps its last score, as with separate ZADDs), and
-- the metadata (readMeta / writeMeta in includes/session.lua). What is
-- pending in z and p is written before the slow path reads them.
local readyRows = {}
local function addPending(list, score, m)
  list[#list + 1] = score
  list[#list + 1] = m
end
local function writePending(key, list)
  -- in slices: unpack() of thousands of values would overflow Lua's C stack
  for from = 1, #list, 1000 do
    redis.call('ZADD', key, unpack(list, from, math.min(from + 999, #list)))
  end
end

-- The nearest boundary at or before the last event (t, m), with no idle gap
-- in between: the boundary an appended event settles.
local function tailBoundary(z, t, m)
  if isBoundary(kindOf(m)) then return m, t end
  local prev, bm, bt = t, nil, nil
  eachBefore(z, t, m, function(b, s)
    if prev - s > TIMEOUT then return true end
    prev = s
    if isBoundary(kindOf(b)) then
      bm, bt = b, s
      return true
    end
    return false
  end)
  return bm, bt
end

for i = 1, sessions do
  local z, h, p = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  local member = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  local factsT, factsM, facts = tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4]
  a = a + 5
  if n == nil or factsT == nil or a + 5 * n - 1 > #ARGV then return -1 end
  local meta = readMeta(h)
  local zPending, pPending = {}, {}
  local function flushSession()
    writePending(z, zPending)
    writePending(p, pPending)
    zPending, pPending = {}, {}
  end
  -- the state of the last boundary lb (read once, then known: nothing is
  -- emitted during an ingest call; lbs is not stored)
  local function lbState()
    if meta.lbs == nil then meta.lbs = stateOf(h, idOf(meta.lb)) end
    return meta.lbs
  end
  if meta.st == nil or earlier(factsT, factsM, meta.st, meta.sm) then
    meta.s, meta.st, meta.sm = facts, factsT, factsM
  end
  for _ = 1, n do
    local id, t, kind, data, path = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
    a = a + 5
    local m = id .. '\t' .. kind
    -- a held event's value is its state and payload (data); any other event keeps only 'o'
    local value = data
    if kind == 'o' then value = 'o' end
    if redis.call('HSETNX', h, id, value) == 0 then
      duplicates = duplicates + 1
    else
      accepted = accepted + 1
      addPending(zPending, t, m)
      if kind == 'o' then
        readyRows[#readyRows + 1] = data
      else
        held = held + 1
      end
      if meta.lt == nil or earlier(meta.lt, meta.lm, t, m) then
        -- fast path: the event comes after every known event of its session
        local gap = meta.lt ~= nil and t - meta.lt > TIMEOUT
        if meta.lb ~= nil and not gap and kindOf(meta.lb) == 'v' then
          -- the visit's last boundary is a screen_view: this event ends (or extends) it
          -- (a later 'o' only extends its D2 duration: it stays unsettled, no write)
          if lbState() == 'V' then
            if isBoundary(kind) then addPending(pPending, now + GRACE, meta.lb) end
          else
            late = late + 1
          end
        elseif meta.lb ~= nil and gap and kindOf(meta.lb) == 'v' and lbState() == 'V' then
          -- an idle gap settles the previous visit's last screen_view (D3)
          addPending(pPending, now + GRACE, meta.lb)
        end
        if kind == 'v' then
          addPending(pPending, '+inf', m)
          if meta.ept == nil then meta.ep, meta.ept, meta.epm = path, t, m end
          meta.xp, meta.xpt, meta.xpm = path, t, m
        elseif kind == 'e' then
          addPending(pPending, now + GRACE, m)
          meta.ee, meta.ea = m, now
        end
        if gap then meta.lb, meta.lbt, meta.lbs = nil, nil, nil end
        if isBoundary(kind) then meta.lb, meta.lbt, meta.lbs = m, t, string.sub(data, 1, 1) end
        meta.lt, meta.lm = t, m
      else
        -- slow path: the event lands among known ones (reordering, late arrival)
        flushSession()
        local isLate = meta.em ~= nil and t < meta.em
        if kind == 'e' then
          -- its figures depend only on earlier events: settled on arrival
          redis.call('ZADD', p, now + GRACE, m)
          noteSessionEnd(z, meta, t, m, now)
        elseif kind == 'v' then
          schedule(z, p, m, t, now)
          keepExtreme(meta, 'ep', t, m, path, true)
          keepExtreme(meta, 'xp', t, m, path, false)
        end
        -- the nearest earlier boundary, if it is a held screen_view, may now
        -- end differently: settle it again (re-settling restarts its grace);
        -- if it was already emitted (in the same visit), this event is late
        local prev = t
        eachBefore(z, t, m, function(b, s)
          if prev - s > TIMEOUT then return true end
          prev = s
          local k = kindOf(b)
          if k == 'v' then
            if stateOf(h, idOf(b)) == 'V' then schedule(z, p, b, s, now) else isLate = true end
          end
          return isBoundary(k)
        end)
        if isLate then late = late + 1 end
        meta.lb, meta.lbt = tailBoundary(z, meta.lt, meta.lm)
        meta.lbs = nil
      end
    end
  end
  flushSession()
  meta.la = now
  redis.call('ZADD', due, dueAt(meta, p), member)
  -- safety TTLs: set when the session (re)opens and again once a quarter of
  -- bufferTtlMs has passed on the buffer clock (the worker's is the wall
  -- clock); p's whenever it was (re)created, as it vanishes when emptied
  if meta.tt == nil or now - meta.tt >= BUFFER_TTL / 4 then
    redis.call('PEXPIRE', z, BUFFER_TTL)
    redis.call('PEXPIRE', h, BUFFER_TTL)
    meta.tt, meta.pk = now, nil
  end
  if meta.pk == nil and redis.call('PEXPIRE', p, BUFFER_TTL) == 1 then meta.pk = 1 end
  writeMeta(h, meta)
end

if sessionless > 0 then
  if a + 2 * sessionless - 1 ~= #ARGV then return -1 end
  redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. (now - DEDUP_WINDOW))
  for _ = 1, sessionless do
    local m, finished = ARGV[a], ARGV[a + 1]
    a = a + 2
    if redis.call('ZSCORE', seen, m) then
      duplicates = duplicates + 1
    else
      accepted = accepted + 1
      redis.call('ZADD', seen, now, m)
      readyRows[#readyRows + 1] = finished
    end
  end
  redis.call('PEXPIRE', seen, DEDUP_WINDOW + 1000)
elseif a - 1 ~= #ARGV then
  return -1
end

for from = 1, #readyRows, 1000 do
  redis.call('RPUSH', ready, unpack(readyRows, from, math.min(from + 999, #readyRows)))
end
if accepted > 0 then redis.call('HINCRBY', stats, 'accepted', accepted) end
if duplicates > 0 then redis.call('HINCRBY', stats, 'duplicate', duplicates) end
if late > 0 then redis.call('HINCRBY', stats, 'late', late) end
if held > 0 then redis.call('HINCRBY', stats, 'held', held) end
return { accepted, duplicates, late }
