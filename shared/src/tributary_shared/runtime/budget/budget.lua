-- Budget ledger for one workflow; the rules are those of core/budget.py
-- (BudgetAccount), which the in-memory twin applies and the contract tests check.
--
-- KEYS[1] = budget hash (limits, used and reserved amounts, exhausted, policy)
-- KEYS[2] = holds hash (reservation id -> "<tokens> <micro_usd>" | "lapsed" | "settled")
-- KEYS[3] = expiries sorted set (held reservation ids by expiry, Redis's clock)
-- KEYS[4] = the workflow's event log
--
-- ARGV[1] = operation:
--   "open", limit_tokens, limit_micro_usd, policy, ttl
--       set the limits once (later calls keep the first ones). Returns 1.
--   "reserve", reservation_id, tokens, micro_usd, hold_s, ttl, exhausted_event_json, event_id
--       lapse every hold whose expiry has passed, then hold the reservation for
--       hold_s seconds if used + reserved + this stays within the limits (0 = no
--       limit). Returns {"admitted"}; {"not_opened"} when the budget was never
--       opened; {"in_flight"} when only other holds stand in the way (nothing is
--       marked); {"exhausted", event_json} when this cannot fit even alone or the
--       budget ran out before. The first "exhausted" marks the budget, fills the
--       limits and amounts into exhausted_event_json, appends it to the log and
--       keeps it; every later one returns the same event (so that a publish lost
--       to a crash is made by the next refusal).
--   "settle", reservation_id, used_tokens, used_micro_usd
--       replace the hold by the real usage ("settled"); a lapsed hold only adds
--       the usage ("late"); a settled or unknown id changes nothing ("unchanged").
local key, holds, expiries, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op = ARGV[1]

local function num(field)
  return tonumber(redis.call("HGET", key, field) or "0")
end

-- Subtract by adding 0 - n: a negated zero would be rendered "-0", which HINCRBY refuses.
local function release(tokens, micro)
  redis.call("HINCRBY", key, "reserved_tokens", 0 - tokens)
  redis.call("HINCRBY", key, "reserved_micro_usd", 0 - micro)
end

local function held_amounts(value)
  local tokens, micro = string.match(value or "", "^(%d+) (%d+)$")
  if tokens == nil then
    return nil
  end
  return tonumber(tokens), tonumber(micro)
end

if op == "open" then
  redis.call("HSETNX", key, "limit_tokens", ARGV[2])
  redis.call("HSETNX", key, "limit_micro_usd", ARGV[3])
  redis.call("HSETNX", key, "policy", ARGV[4])
  redis.call("EXPIRE", key, ARGV[5])
  return 1
elseif op == "reserve" then
  if redis.call("HEXISTS", key, "policy") == 0 then
    return {"not_opened"}
  end
  local id, tokens, micro = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
  local hold_s, ttl = tonumber(ARGV[5]), ARGV[6]
  local time = redis.call("TIME")
  local now = tonumber(time[1]) + tonumber(time[2]) / 1000000

  for _, lapsed in ipairs(redis.call("ZRANGEBYSCORE", expiries, "-inf", now)) do
    local t, c = held_amounts(redis.call("HGET", holds, lapsed))
    if t ~= nil then
      release(t, c)
      redis.call("HSET", holds, lapsed, "lapsed")
    end
  end
  redis.call("ZREMRANGEBYSCORE", expiries, "-inf", now)

  local limit_t, limit_c = num("limit_tokens"), num("limit_micro_usd")
  local used_t, used_c = num("used_tokens"), num("used_micro_usd")
  local function within(t, c)
    return not ((limit_t > 0 and used_t + t > limit_t) or (limit_c > 0 and used_c + c > limit_c))
  end

  if within(num("reserved_tokens") + tokens, num("reserved_micro_usd") + micro) then
    redis.call("HINCRBY", key, "reserved_tokens", tokens)
    redis.call("HINCRBY", key, "reserved_micro_usd", micro)
    redis.call("HSET", holds, id, ARGV[3] .. " " .. ARGV[4])
    redis.call("ZADD", expiries, now + hold_s, id)
    redis.call("EXPIRE", key, ttl)
    redis.call("EXPIRE", holds, ttl)
    redis.call("EXPIRE", expiries, ttl)
    return {"admitted"}
  end
  if redis.call("HEXISTS", key, "exhausted") == 0 and within(tokens, micro) then
    return {"in_flight"}
  end
  if redis.call("HSETNX", key, "exhausted", "1") == 0 then
    local announced = redis.call("HGET", key, "exhausted_event")
    if announced then
      return {"exhausted", announced}
    end
    return {"exhausted"}  -- exhausted before the event was kept here
  end
  local event = cjson.decode(ARGV[7])
  event.limit_tokens = limit_t > 0 and limit_t or cjson.null
  event.used_tokens = used_t
  event.limit_cost_usd = limit_c > 0 and limit_c / 1000000 or cjson.null
  event.used_cost_usd = used_c / 1000000
  event.policy = redis.call("HGET", key, "policy") or "partial"
  local encoded = cjson.encode(event)
  redis.call("HSET", key, "exhausted_event", encoded)
  redis.call("XADD", log, "*", "type", "budget.exhausted", "event_id", ARGV[8], "event", encoded)
  return {"exhausted", encoded}
elseif op == "settle" then
  local id = ARGV[2]
  local value = redis.call("HGET", holds, id)
  if value == false or value == "settled" then
    return "unchanged"
  end
  local t, c = held_amounts(value)
  if t ~= nil then
    release(t, c)
    redis.call("ZREM", expiries, id)
  end
  redis.call("HINCRBY", key, "used_tokens", ARGV[3])
  redis.call("HINCRBY", key, "used_micro_usd", ARGV[4])
  redis.call("HSET", holds, id, "settled")
  return value == "lapsed" and "late" or "settled"
end
return redis.error_reply("unknown budget operation " .. tostring(op))
