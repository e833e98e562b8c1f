--[[
  intakeSessions: decides the sessions of a batch of visitors for the
  ingestion server, in one call, so that replicas receiving the same
  visitor's requests at the same moment agree. A device's record is
  "<sessionId>\t<lastEventMs>". The device id is a daily salted hash
  (src/intake/ids.ts), so a visitor has today's id and yesterday's: a live
  session under yesterday's id is kept (with yesterday's device id) across
  midnight; otherwise today's id is used. Visitors are decided in ARGV
  order, so the same visitor twice in a batch gets one session.

  KEYS[2i-1]  today      STRING  record of visitor i's device under today's id
  KEYS[2i]    yesterday  STRING  record under yesterday's id (KEYS[2i-1] again
                                 when the client gave its own device id)

  ARGV[1]      timeoutMs   SESSION_TIMEOUT_MS: a gap of at least this starts a new session
  ARGV[2]      ttlMs       TTL of a record (>= timeoutMs); refreshed on every call
  ARGV[1+2i]   nowMs       visitor i's event time, epoch ms (the event's createdAt)
  ARGV[2+2i]   newSession  the session id to use if a new session starts for it

  (Under Redis Cluster a call holds visitors of one hash tag only; the caller
  groups them.)

  Returns: { holder, sessionId } per visitor, flat: holder 1 when today's
           device id holds the session, 2 when yesterday's does (the caller
           answers with that device id).
           -1 ARGS_MISMATCH when the KEYS / ARGV counts do not match or a
           time argument is not a number (or NaN).
]]
local timeout = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local n = #KEYS / 2
-- (x ~= x is NaN, which tonumber accepts)
if not timeout or not ttl or timeout ~= timeout or ttl ~= ttl or #KEYS % 2 ~= 0 or #ARGV ~= 2 + 2 * n then return -1 end
local format, find, sub = string.format, string.find, string.sub

-- a record's session when it is live at `now`, and its last event time
local function live(key, now)
  local record = redis.call('GET', key)
  if not record then return nil end
  local tab = find(record, '\t', 1, true)
  local last = tonumber(sub(record, tab + 1))
  -- an earlier event (a queued __timestamp) belongs to the session it falls in
  if now - last < timeout then return sub(record, 1, tab - 1), last end
  return nil
end

local function keep(key, session, last, now)
  -- the record only moves forward: an older event does not shorten the session
  local latest = now
  if last and last > now then latest = last end
  redis.call('SET', key, session .. '\t' .. format('%.0f', latest), 'PX', ARGV[2])
end

local out = {}
for i = 1, n do
  local today, yesterday = KEYS[2 * i - 1], KEYS[2 * i]
  local now = tonumber(ARGV[1 + 2 * i])
  if not now or now ~= now then return -1 end
  local holder, session, last = 1, live(today, now)
  if not session and yesterday ~= today then
    session, last = live(yesterday, now)
    if session then holder = 2 end
  end
  if session then
    if holder == 1 then keep(today, session, last, now) else keep(yesterday, session, last, now) end
  else
    session = ARGV[2 + 2 * i]
    keep(today, session, nil, now)
  end
  out[2 * i - 1], out[2 * i] = holder, session
end
return out
