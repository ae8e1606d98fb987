-- The admission gate of one LLM deployment; the rules are those of core/admission
-- (gate.py, breaker.py, pacing.py, fairness.py), which the in-memory twin runs as
-- written and the contract tests hold this script to, operation for operation.
--
-- KEYS = gate hash, tickets hash, tenants zset, since hash, clocks hash, replicas zset
--        (see core/keys.py); per tenant, workflow and replica keys are built from
--        ARGV[2], the deployment's prefix, so they share its hash tag.
-- ARGV[1] = "enqueue" | "pump" | "report" | "leave" | "state"
-- ARGV[2] = key prefix  ARGV[3] = now, epoch seconds ("" = Redis's clock)
-- ARGV[4] = policy JSON {rpm, tpm (0 = none), burst_s, failures_to_open, cooldown_s,
--           probe_lease_s, replica_ttl_s, max_grants, stride, default_pause_s,
--           learned_ttl_s}
-- ARGV[5] = the calling replica  ARGV[6] = the operation's payload  ARGV[7] = key TTL
--   enqueue: the ticket JSON {id, tenant, workflow, replica, tokens, stride}
--   report:  {ticket, outcome, rpm, tpm, remaining_requests, remaining_tokens,
--             retry_after_s} (0 = no limit announced, -1 = not sent)
--   leave:   the ticket id
-- Returns JSON {granted = [[ticket, replica, probe 0|1]...], retry_in, state}; floats
-- travel as "%.17g" strings (cjson and Lua's tostring keep only 14 digits).
local gate_key, tickets_key, tenants_key = KEYS[1], KEYS[2], KEYS[3]
local since_key, clocks_key, replicas_key = KEYS[4], KEYS[5], KEYS[6]
local op, prefix, replica, payload = ARGV[1], ARGV[2], ARGV[5], ARGV[6]
local ttl = tonumber(ARGV[7])

local now
if ARGV[3] == "" then
  local time = redis.call("TIME")
  now = tonumber(time[1]) + tonumber(time[2]) / 1000000
else
  now = tonumber(ARGV[3])
end

local function fmt(x)
  return string.format("%.17g", x)
end

local function num(field)
  return tonumber(redis.call("HGET", gate_key, field) or "0")
end

local function set(field, value)
  redis.call("HSET", gate_key, field, value)
end

local function workflows_key(tenant)
  return prefix .. ":t:" .. tenant
end

local function calls_key(tenant, workflow)
  return prefix .. ":w:" .. tenant .. ":" .. workflow
end

local function replica_key(name)
  return prefix .. ":r:" .. name
end

local function grants_key(name)
  return prefix .. ":grants:" .. name
end

-- The fair queue ---------------------------------------------------------------
-- A tenant's member in the tenants zset, and a workflow's in its tenant's, is
-- "<since, 16 digits>:<name>": Redis orders equal virtual times by member, so the
-- one that began waiting first comes first. The since hash maps "t:<tenant>" and
-- "w:<tenant>:<workflow>" to those members.

local function name_of(member)
  return string.sub(member, 18)
end

local function joined(zset, field, name, virtual_time, seq)
  if redis.call("HEXISTS", since_key, field) == 1 then
    return
  end
  local member = string.format("%016d:", seq) .. name
  redis.call("ZADD", zset, fmt(virtual_time), member)
  redis.call("HSET", since_key, field, member)
end

local function enqueue_ticket(raw)
  local ticket = cjson.decode(raw)
  if redis.call("HEXISTS", tickets_key, ticket.id) == 1 then
    return
  end
  local seq = redis.call("HINCRBY", gate_key, "seq", 1)
  joined(tenants_key, "t:" .. ticket.tenant, ticket.tenant, num("clock"), seq)
  local workflows = workflows_key(ticket.tenant)
  local tenant_clock = tonumber(redis.call("HGET", clocks_key, ticket.tenant) or "0")
  joined(workflows, "w:" .. ticket.tenant .. ":" .. ticket.workflow, ticket.workflow,
    tenant_clock, seq)
  redis.call("EXPIRE", workflows, ttl)
  local calls = calls_key(ticket.tenant, ticket.workflow)
  redis.call("ZADD", calls, seq, ticket.id)
  redis.call("EXPIRE", calls, ttl)
  redis.call("HSET", tickets_key, ticket.id, raw)
  redis.call("SADD", replica_key(ticket.replica), ticket.id)
  redis.call("EXPIRE", replica_key(ticket.replica), ttl)
end

local function head()
  local tenant_member = redis.call("ZRANGE", tenants_key, 0, 0)[1]
  if tenant_member == nil then
    return nil
  end
  local tenant = name_of(tenant_member)
  local workflow = name_of(redis.call("ZRANGE", workflows_key(tenant), 0, 0)[1])
  local id = redis.call("ZRANGE", calls_key(tenant, workflow), 0, 0)[1]
  return cjson.decode(redis.call("HGET", tickets_key, id))
end

local function left(zset, field)
  redis.call("ZREM", zset, redis.call("HGET", since_key, field))
  redis.call("HDEL", since_key, field)
end

local function remove_ticket(ticket)
  redis.call("HDEL", tickets_key, ticket.id)
  redis.call("SREM", replica_key(ticket.replica), ticket.id)
  local calls = calls_key(ticket.tenant, ticket.workflow)
  redis.call("ZREM", calls, ticket.id)
  if redis.call("ZCARD", calls) > 0 then
    return
  end
  local workflows = workflows_key(ticket.tenant)
  left(workflows, "w:" .. ticket.tenant .. ":" .. ticket.workflow)
  if redis.call("ZCARD", workflows) > 0 then
    return
  end
  left(tenants_key, "t:" .. ticket.tenant)
  redis.call("HDEL", clocks_key, ticket.tenant)
  if redis.call("ZCARD", tenants_key) == 0 then
    set("clock", 0)
  end
end

-- Moves the member on by ``stride``; returns its virtual time before.
local function moved_on(zset, field, stride)
  local member = redis.call("HGET", since_key, field)
  local virtual_time = tonumber(redis.call("ZSCORE", zset, member))
  redis.call("ZADD", zset, fmt(virtual_time + stride), member)
  return virtual_time
end

local function serve(ticket, stride)
  set("clock", fmt(moved_on(tenants_key, "t:" .. ticket.tenant, ticket.stride)))
  local workflow_time = moved_on(workflows_key(ticket.tenant),
    "w:" .. ticket.tenant .. ":" .. ticket.workflow, stride)
  redis.call("HSET", clocks_key, ticket.tenant, fmt(workflow_time))
  remove_ticket(ticket)
end

-- The breaker --------------------------------------------------------------------

local function breaker_state()
  return redis.call("HGET", gate_key, "b_state") or "closed"
end

local function set_breaker(state, failures, reopen_at, probe, probe_until)
  redis.call("HSET", gate_key, "b_state", state, "b_failures", failures,
    "b_reopen_at", fmt(reopen_at), "b_probe", probe, "b_probe_until", fmt(probe_until))
end

local function passage()
  local state = breaker_state()
  if state == "closed" then
    return "all", now
  end
  local until_ = num(state == "open" and "b_reopen_at" or "b_probe_until")
  if now >= until_ then
    return "probe", now
  end
  return "none", until_
end

local function breaker_after(ticket_id, outcome, policy)
  local state = breaker_state()
  local up = outcome == "ok" or outcome == "answered" or outcome == "rate_limited"
  if state == "closed" then
    if outcome == "outage" then
      local failures = num("b_failures") + 1
      if policy.failures_to_open > 0 and failures >= policy.failures_to_open then
        set_breaker("open", 0, now + policy.cooldown_s, "", 0)
      else
        set("b_failures", failures)
      end
    elseif up then
      set("b_failures", 0)
    end
    return
  end
  if state ~= "half_open" or ticket_id ~= redis.call("HGET", gate_key, "b_probe") then
    return
  end
  if outcome == "outage" then
    set_breaker("open", 0, now + policy.cooldown_s, "", 0)
  elseif up then
    set_breaker("closed", 0, 0, "", 0)
  else
    set_breaker("open", 0, now, "", 0)
  end
end

-- The rate limiter -------------------------------------------------------------

local function limits()
  local rpm, tpm = num("conf_rpm"), num("conf_tpm")
  if now < num("learned_until") then
    local learned_rpm, learned_tpm = num("learned_rpm"), num("learned_tpm")
    if learned_rpm > 0 and (rpm == 0 or learned_rpm < rpm) then
      rpm = learned_rpm
    end
    if learned_tpm > 0 and (tpm == 0 or learned_tpm < tpm) then
      tpm = learned_tpm
    end
  end
  return rpm, tpm
end

local function gcra(tat, cost, per_minute, burst_s)
  local interval = 60.0 / per_minute * cost
  local allowance = math.max(burst_s, interval)
  local new_tat = math.max(tat, now) + interval
  local wait = new_tat - allowance - now
  if wait <= 0 then
    return new_tat, 0
  end
  return tat, wait
end

-- Admits a call of ``tokens`` when it fits both limits; else the wait until it would.
local function pace(tokens, burst_s)
  local rpm, tpm = limits()
  local tat_r, tat_t = num("tat_r"), num("tat_t")
  local new_r, new_t, wait, waits = tat_r, tat_t, 0, 0
  if rpm > 0 then
    new_r, waits = gcra(tat_r, 1, rpm, burst_s)
    wait = math.max(wait, waits)
  end
  if tpm > 0 then
    new_t, waits = gcra(tat_t, tokens, tpm, burst_s)
    wait = math.max(wait, waits)
  end
  if wait > 0 then
    return false, wait
  end
  set("tat_r", fmt(new_r))
  set("tat_t", fmt(new_t))
  return true, 0
end

local function synced(field, per_minute, burst_s, remaining)
  set(field, fmt(math.max(num(field), now + burst_s - remaining * (60.0 / per_minute))))
end

local function learn(report, policy)
  if report.rpm > 0 or report.tpm > 0 then
    local learned_rpm, learned_tpm = 0, 0
    if now < num("learned_until") then
      learned_rpm, learned_tpm = num("learned_rpm"), num("learned_tpm")
    end
    set("learned_rpm", report.rpm > 0 and report.rpm or learned_rpm)
    set("learned_tpm", report.tpm > 0 and report.tpm or learned_tpm)
    set("learned_until", fmt(now + policy.learned_ttl_s))
  end
  local rpm, tpm = limits()
  if rpm > 0 and report.remaining_requests >= 0 then
    synced("tat_r", rpm, policy.burst_s, report.remaining_requests)
  end
  if tpm > 0 and report.remaining_tokens >= 0 then
    synced("tat_t", tpm, policy.burst_s, report.remaining_tokens)
  end
end

-- The operations -----------------------------------------------------------------

local function state()
  local rpm, tpm = limits()
  local learned_rpm, learned_tpm = 0, 0
  if now < num("learned_until") then
    learned_rpm, learned_tpm = num("learned_rpm"), num("learned_tpm")
  end
  return {
    breaker = breaker_state(),
    failures = num("b_failures"),
    reopen_at = fmt(num("b_reopen_at")),
    paused_until = fmt(num("paused_until")),
    waiting = redis.call("HLEN", tickets_key),
    rpm = rpm,
    tpm = tpm,
    learned_rpm = learned_rpm,
    learned_tpm = learned_tpm,
  }
end

local function pump(policy)
  set("conf_rpm", policy.rpm)
  set("conf_tpm", policy.tpm)
  redis.call("ZADD", replicas_key, fmt(now + policy.replica_ttl_s), replica)
  for _, dead in ipairs(redis.call("ZRANGEBYSCORE", replicas_key, "-inf", "(" .. fmt(now))) do
    for _, id in ipairs(redis.call("SMEMBERS", replica_key(dead))) do
      local raw = redis.call("HGET", tickets_key, id)
      if raw then
        remove_ticket(cjson.decode(raw))
      end
    end
    redis.call("DEL", replica_key(dead), grants_key(dead))
    redis.call("ZREM", replicas_key, dead)
  end
  local granted, retry_in = {}, nil
  while true do
    local ticket = head()
    if ticket == nil then
      break
    end
    if #granted >= policy.max_grants then
      retry_in = 0
      break
    end
    local pass, until_ = passage()
    if pass == "none" then
      retry_in = until_ - now
      break
    end
    if pass == "probe" then
      serve(ticket, policy.stride)
      redis.call("HSET", gate_key, "b_state", "half_open", "b_probe", ticket.id,
        "b_probe_until", fmt(now + policy.probe_lease_s))
      table.insert(granted, {ticket.id, ticket.replica, 1})
      retry_in = policy.probe_lease_s
      break
    end
    local paused_until = num("paused_until")
    if paused_until > now then
      retry_in = paused_until - now
      break
    end
    local fits, wait = pace(ticket.tokens, policy.burst_s)
    if not fits then
      retry_in = wait
      break
    end
    serve(ticket, policy.stride)
    table.insert(granted, {ticket.id, ticket.replica, 0})
  end
  for _, grant in ipairs(granted) do
    if grant[2] ~= replica then
      local inbox = grants_key(grant[2])
      redis.call("RPUSH", inbox, cjson.encode({grant[1], grant[3]}))
      redis.call("EXPIRE", inbox, 60)
    end
  end
  local result = {granted = granted, state = state()}
  if retry_in ~= nil then
    result.retry_in = fmt(retry_in)
  end
  return result
end

local function expire_all()
  for _, key in ipairs(KEYS) do
    redis.call("EXPIRE", key, ttl)
  end
end

if op == "state" then
  return cjson.encode({granted = {}, state = state()})
elseif op == "leave" then
  local raw = redis.call("HGET", tickets_key, payload)
  if raw then
    remove_ticket(cjson.decode(raw))
  end
  return cjson.encode({granted = {}, state = state()})
end

local policy = cjson.decode(ARGV[4])
local result
if op == "enqueue" then
  enqueue_ticket(payload)
  result = pump(policy)
elseif op == "pump" then
  result = pump(policy)
elseif op == "report" then
  local report = cjson.decode(payload)
  set("conf_rpm", policy.rpm)
  set("conf_tpm", policy.tpm)
  learn(report, policy)
  if report.outcome == "rate_limited" then
    local pause = report.retry_after_s >= 0 and report.retry_after_s or policy.default_pause_s
    set("paused_until", fmt(math.max(num("paused_until"), now + pause)))
  end
  breaker_after(report.ticket, report.outcome, policy)
  result = pump(policy)
else
  return redis.error_reply("unknown gate operation " .. op)
end
expire_all()
return cjson.encode(result)
