-- Delete an ended workflow's own keys at once, leaving a tombstone.
--
-- KEYS[1] = the workflow hash, KEYS[2..] = every other key of its slot
-- ARGV[1] = the tombstone's lifetime (seconds), ARGV[2] = when (ISO time),
-- ARGV[3..] = the terminal statuses
-- Returns {1, status} when deleted; {0, ""} when there is no such workflow (or
-- only its tombstone); {-1, status}, deleting nothing, while it runs.
-- The tombstone (the hash with "purged_at" alone) reads as absent, and the
-- create rule refuses a workflow that has one, so nothing brings it back.
local status = redis.call("HGET", KEYS[1], "status")
if not status then
  return {0, ""}
end
local ended = false
for i = 3, #ARGV do
  if ARGV[i] == status then ended = true break end
end
if not ended then
  return {-1, status}
end
redis.call("DEL", unpack(KEYS))
redis.call("HSET", KEYS[1], "purged_at", ARGV[2])
redis.call("EXPIRE", KEYS[1], tonumber(ARGV[1]))
return {1, status}
