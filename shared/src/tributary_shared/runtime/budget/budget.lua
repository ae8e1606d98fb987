-- Budget ledger for one workflow (KEYS[1] = budget hash, KEYS[2] = event log).
--
-- ARGV[1] = operation:
--   "open", limit_tokens, limit_micro_usd, policy, ttl
--       set the limits once (later calls keep the first ones).
--   "reserve", tokens, micro_usd, ttl, exhausted_event_json, event_id
--       reserve before a call; refused when used + reserved + this would pass a
--       limit (0 = no limit). The first refusal marks the budget exhausted,
--       fills the limits and amounts into exhausted_event_json, appends it to
--       the log and returns it. Returns {1}, {0, 0} or {0, 1, event_json}.
--   "settle", -reserved_tokens, used_tokens, -reserved_micro, used_micro
--       replace a reservation by the real usage.
local key, log = KEYS[1], KEYS[2]
local op = ARGV[1]

local function num(field)
  return tonumber(redis.call("HGET", key, field) or "0")
end

if op == "open" then
  redis.call("HSETNX", key, "limit_tokens", ARGV[2])
  redis.call("HSETNX", key, "limit_micro_usd", ARGV[3])
  redis.call("HSETNX", key, "policy", ARGV[4])
  redis.call("EXPIRE", key, ARGV[5])
  return 1
elseif op == "reserve" then
  local tokens, micro = tonumber(ARGV[2]), tonumber(ARGV[3])
  local limit_t, limit_c = num("limit_tokens"), num("limit_micro_usd")
  local over_t = limit_t > 0 and num("used_tokens") + num("reserved_tokens") + tokens > limit_t
  local over_c = limit_c > 0 and num("used_micro_usd") + num("reserved_micro_usd") + micro > limit_c
  if over_t or over_c then
    local first = redis.call("HSETNX", key, "exhausted", "1")
    if first == 0 then
      return {0, 0}
    end
    local event = cjson.decode(ARGV[5])
    event.limit_tokens = limit_t > 0 and limit_t or cjson.null
    event.used_tokens = num("used_tokens")
    event.limit_cost_usd = limit_c > 0 and limit_c / 1000000 or cjson.null
    event.used_cost_usd = num("used_micro_usd") / 1000000
    event.policy = redis.call("HGET", key, "policy") or "partial"
    local encoded = cjson.encode(event)
    redis.call("XADD", log, "*", "type", "budget.exhausted", "event_id", ARGV[6], "event", encoded)
    return {0, 1, encoded}
  end
  redis.call("HINCRBY", key, "reserved_tokens", tokens)
  redis.call("HINCRBY", key, "reserved_micro_usd", micro)
  redis.call("EXPIRE", key, ARGV[4])
  return {1}
elseif op == "settle" then
  -- Amounts arrive as integer strings, the released ones already negated
  -- (Lua would render a negated zero as "-0", which HINCRBY refuses).
  redis.call("HINCRBY", key, "reserved_tokens", ARGV[2])
  redis.call("HINCRBY", key, "used_tokens", ARGV[3])
  redis.call("HINCRBY", key, "reserved_micro_usd", ARGV[4])
  redis.call("HINCRBY", key, "used_micro_usd", ARGV[5])
  return 1
end
return redis.error_reply("unknown budget operation " .. tostring(op))
