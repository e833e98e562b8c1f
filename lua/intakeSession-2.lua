--[[
  intakeSession: decides a visitor's session for the ingestion server, so that
  replicas receiving the same visitor's requests at the same moment agree.
  A device's record is "<sessionId>\t<lastEventMs>". The device id is a daily
  salted hash (src/intake/ids.ts), so a visitor has today's id and yesterday's:
  a live session under yesterday's id is kept (with yesterday's device id)
  across midnight; otherwise today's id is used.

  KEYS[1]  today      STRING  record of the device under today's id
  KEYS[2]  yesterday  STRING  record under yesterday's id (KEYS[1] again when
                              the client gave its own device id)

  ARGV[1]  nowMs       event time, epoch ms (the event's createdAt)
  ARGV[2]  timeoutMs   SESSION_TIMEOUT_MS: a gap of at least this starts a new session
  ARGV[3]  newSession  the session id to use if a new session starts
  ARGV[4]  ttlMs       TTL of the record (>= timeoutMs); refreshed on every call

  Returns: { 1 | 2, sessionId }: 1 when today's device id holds the session,
           2 when yesterday's does (the caller answers with that device id).
           -1 ARGS_MISMATCH when a time argument is not a number (or NaN).
]]
local now = tonumber(ARGV[1])
local timeout = tonumber(ARGV[2])
local ttl = tonumber(ARGV[4])
-- (x ~= x is NaN, which tonumber accepts)
if not now or not timeout or not ttl or now ~= now or timeout ~= timeout or ttl ~= ttl then return -1 end

-- a record's session when it is live at `now`, and its last event time
local function live(key)
  local record = redis.call('GET', key)
  if not record then return nil end
  local tab = string.find(record, '\t', 1, true)
  local session = string.sub(record, 1, tab - 1)
  local last = tonumber(string.sub(record, tab + 1))
  -- an earlier event (a queued __timestamp) belongs to the session it falls in
  if now - last < timeout then return session, last end
  return nil
end

local function keep(key, session, last)
  -- the record only moves forward: an older event does not shorten the session
  local latest = now
  if last and last > now then latest = last end
  redis.call('SET', key, session .. '\t' .. string.format('%.0f', latest), 'PX', ttl)
end

local session, last = live(KEYS[1])
if session then
  keep(KEYS[1], session, last)
  return { 1, session }
end
if KEYS[2] ~= KEYS[1] then
  session, last = live(KEYS[2])
  if session then
    keep(KEYS[2], session, last)
    return { 2, session }
  end
end
keep(KEYS[1], ARGV[3], nil)
return { 1, ARGV[3] }
