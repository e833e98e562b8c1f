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
  payload, path as a JSON string or '' when not a screen_view)
  then L times (seen member, payload)

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

-- Session metadata read once per session (and again after a slow-path event):
-- the last event (#lt, #lm), the nearest boundary of the last visit (#lb,
-- #lbt), the latest session_end (#ee, #ea), the entry-path order (#ept), the
-- session facts order (#st, #sm) and the largest emitted createdAt (#em).
local META = { '#lt', '#lm', '#lb', '#lbt', '#ee', '#ea', '#ept', '#st', '#sm', '#em' }
local function loadMeta(h)
  local v = redis.call('HMGET', h, unpack(META))
  return {
    lt = tonumber(v[1]), lm = v[2] or nil, lb = v[3] or nil, lbt = tonumber(v[4]),
    ee = v[5] or nil, ea = tonumber(v[6]), ept = v[7] or nil, st = tonumber(v[8]), sm = v[9] or nil,
    em = tonumber(v[10]),
  }
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
  local meta = loadMeta(h)
  if meta.st == nil or earlier(factsT, factsM, meta.st, meta.sm) then
    redis.call('HSET', h, '#s', facts, '#st', factsT, '#sm', factsM)
  end
  for _ = 1, n do
    local id, t, kind, payload, path = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
    a = a + 5
    local m = id .. '\t' .. kind
    local state = 'o'
    if kind == 'v' then state = 'V' elseif kind == 'e' then state = 'E' end
    if redis.call('HSETNX', h, id, state) == 0 then
      duplicates = duplicates + 1
    else
      accepted = accepted + 1
      redis.call('ZADD', z, t, m)
      if kind == 'o' then
        redis.call('RPUSH', ready, row(nil, 0, payload))
      else
        redis.call('HSET', h, '>' .. id, payload)
        held = held + 1
      end
      if meta.lt == nil or earlier(meta.lt, meta.lm, t, m) then
        -- fast path: the event comes after every known event of its session
        local gap = meta.lt ~= nil and t - meta.lt > TIMEOUT
        if meta.lb ~= nil and not gap and kindOf(meta.lb) == 'v' then
          -- the visit's last boundary is a screen_view: this event ends (or extends) it
          -- (a later 'o' only extends its D2 duration: it stays unsettled, no write)
          if redis.call('HGET', h, idOf(meta.lb)) == 'V' then
            if isBoundary(kind) then redis.call('ZADD', p, now + GRACE, meta.lb) end
          else
            late = late + 1
          end
        elseif meta.lb ~= nil and gap and kindOf(meta.lb) == 'v' and redis.call('HGET', h, idOf(meta.lb)) == 'V' then
          -- an idle gap settles the previous visit's last screen_view (D3)
          redis.call('ZADD', p, now + GRACE, meta.lb)
        end
        if kind == 'v' then
          redis.call('ZADD', p, '+inf', m)
          if meta.ept == nil then
            redis.call('HSET', h, '#ep', path, '#ept', t, '#epm', m)
            meta.ept = t
          end
          redis.call('HSET', h, '#xp', path, '#xpt', t, '#xpm', m)
        elseif kind == 'e' then
          redis.call('ZADD', p, now + GRACE, m)
          redis.call('HSET', h, '#ee', m, '#ea', now)
          meta.ee, meta.ea = m, now
        end
        if gap then meta.lb, meta.lbt = nil, nil end
        if isBoundary(kind) then meta.lb, meta.lbt = m, t end
        meta.lt, meta.lm = t, m
      else
        -- slow path: the event lands among known ones (reordering, late arrival)
        local isLate = meta.em ~= nil and t < meta.em
        if kind == 'e' then
          -- its figures depend only on earlier events: settled on arrival
          redis.call('ZADD', p, now + GRACE, m)
          noteSessionEnd(z, h, t, m, now)
        elseif kind == 'v' then
          schedule(z, p, m, t, now)
          keepExtreme(h, '#ep', t, m, path, true)
          keepExtreme(h, '#xp', t, m, path, false)
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
            if redis.call('HGET', h, idOf(b)) == 'V' then schedule(z, p, b, s, now) else isLate = true end
          end
          return isBoundary(k)
        end)
        if isLate then late = late + 1 end
        redis.call('HSET', h, '#lt', meta.lt, '#lm', meta.lm)
        local bm, bt = tailBoundary(z, meta.lt, meta.lm)
        if bm then redis.call('HSET', h, '#lb', bm, '#lbt', bt) else redis.call('HDEL', h, '#lb', '#lbt') end
        meta = loadMeta(h)
      end
    end
  end
  if meta.lb then
    redis.call('HSET', h, '#la', now, '#lt', meta.lt, '#lm', meta.lm, '#lb', meta.lb, '#lbt', meta.lbt)
  else
    redis.call('HSET', h, '#la', now, '#lt', meta.lt, '#lm', meta.lm)
    redis.call('HDEL', h, '#lb', '#lbt')
  end
  -- due: the earliest finite emit time, or the finalisation deadline (see closeAt)
  local at = now + TIMEOUT + GRACE
  if meta.ee ~= nil and meta.ee == meta.lm and meta.ea + GRACE < at then at = meta.ea + GRACE end
  local first = redis.call('ZRANGE', p, 0, 0, 'WITHSCORES')
  local fs = tonumber(first[2])
  if fs and fs < at then at = fs end
  redis.call('ZADD', due, at, member)
  redis.call('PEXPIRE', z, BUFFER_TTL)
  redis.call('PEXPIRE', h, BUFFER_TTL)
  redis.call('PEXPIRE', p, BUFFER_TTL)
end

if sessionless > 0 then
  if a + 2 * sessionless - 1 ~= #ARGV then return -1 end
  redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. (now - DEDUP_WINDOW))
  for _ = 1, sessionless do
    local m, payload = ARGV[a], ARGV[a + 1]
    a = a + 2
    if redis.call('ZSCORE', seen, m) then
      duplicates = duplicates + 1
    else
      accepted = accepted + 1
      redis.call('ZADD', seen, now, m)
      redis.call('RPUSH', ready, row(nil, 0, payload))
    end
  end
  redis.call('PEXPIRE', seen, DEDUP_WINDOW + 1000)
elseif a - 1 ~= #ARGV then
  return -1
end

if accepted > 0 then redis.call('HINCRBY', stats, 'accepted', accepted) end
if duplicates > 0 then redis.call('HINCRBY', stats, 'duplicate', duplicates) end
if late > 0 then redis.call('HINCRBY', stats, 'late', late) end
if held > 0 then redis.call('HINCRBY', stats, 'held', held) end
return { accepted, duplicates, late }
