-- Append notices (events that change no state) to an active workflow's log, in order.
--
-- KEYS[1] = the workflow hash, KEYS[2] = its log stream
-- ARGV[1] = how many events (n); then each event's type, id and JSON (3 * n values);
-- ARGV[3n+2..] = the active statuses
-- Returns 1 when every event was appended; 0, writing nothing, when the workflow
-- is absent or has ended (its keys are expiring: an XADD now would make a log
-- that never does).
local status = redis.call("HGET", KEYS[1], "status")
if not status then
  return 0
end
local count = tonumber(ARGV[1])
local statuses = 3 * count + 2
for i = statuses, #ARGV do
  if ARGV[i] == status then
    for e = 0, count - 1 do
      local at = 2 + 3 * e
      redis.call("XADD", KEYS[2], "*", "type", ARGV[at], "event_id", ARGV[at + 1], "event", ARGV[at + 2])
    end
    return 1
  end
end
return 0
