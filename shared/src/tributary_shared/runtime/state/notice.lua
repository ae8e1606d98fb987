-- Append a notice (an event that changes no state) to an active workflow's log.
--
-- KEYS[1] = the workflow hash, KEYS[2] = its log stream
-- ARGV[1] = event type, ARGV[2] = event id, ARGV[3] = event JSON,
-- ARGV[4..] = the active statuses
-- Returns 1 when appended; 0, writing nothing, when the workflow is absent or
-- has ended (its keys are expiring: an XADD now would make a log that never does).
local status = redis.call("HGET", KEYS[1], "status")
if not status then
  return 0
end
for i = 4, #ARGV do
  if ARGV[i] == status then
    redis.call("XADD", KEYS[2], "*", "type", ARGV[1], "event_id", ARGV[2], "event", ARGV[3])
    return 1
  end
end
return 0
