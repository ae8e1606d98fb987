-- Atomic compare-and-write over a workflow's keys.
--
-- ARGV[1] is a JSON program: {"expect": [...], "ops": [...]}.
--   expect: {"k": <KEYS index>, "f": <hash field>, "in": [allowed values; "" = absent]}
--           {"k": i, "f": field, "ge": other_field}: both numbers, f >= other > 0
--           {"k": i, "f": field, "le": number}: f (absent = 0) <= number
--   ops:    {"op": "hset", "k": i, "m": {field: value}}
--           {"op": "hincrby", "k": i, "f": field, "by": n}
--           {"op": "xadd", "k": i, "m": {field: value}}
--           {"op": "expire", "k": i, "s": seconds}
--           {"op": "hmget", "k": i, "fs": [fields]}   (reads, after the writes)
--           {"op": "hset_if", "k": i, "f": field, "eq": value, "m": {field: value}}
--                 (the hset, only when the field then holds the value)
-- Every expectation is checked before anything is written, so a refused
-- program changes nothing. Returns JSON: {"ok": true, "r": [per-op results]}
-- or {"ok": false, "k": i, "f": field, "actual": value}.
local program = cjson.decode(ARGV[1])
for _, e in ipairs(program.expect or {}) do
  local actual = redis.call("HGET", KEYS[e.k], e.f)
  if not actual then actual = "" end
  local allowed = false
  if e.ge then
    local other = tonumber(redis.call("HGET", KEYS[e.k], e.ge) or "0")
    allowed = other > 0 and (tonumber(actual) or 0) >= other
  elseif e.le then
    allowed = (tonumber(actual) or 0) <= e.le
  else
    for _, v in ipairs(e["in"]) do
      if v == actual then allowed = true break end
    end
  end
  if not allowed then
    return cjson.encode({ok = false, k = e.k, f = e.f, actual = actual})
  end
end
local results = {}
for i, o in ipairs(program.ops or {}) do
  local key = KEYS[o.k]
  local r = 0
  if o.op == "hset" then
    local args = {}
    for f, v in pairs(o.m) do table.insert(args, f) table.insert(args, v) end
    r = redis.call("HSET", key, unpack(args))
  elseif o.op == "hincrby" then
    r = redis.call("HINCRBY", key, o.f, o.by)
  elseif o.op == "xadd" then
    local args = {key, "*"}
    for f, v in pairs(o.m) do table.insert(args, f) table.insert(args, v) end
    r = redis.call("XADD", unpack(args))
  elseif o.op == "expire" then
    r = redis.call("EXPIRE", key, o.s)
  elseif o.op == "hset_if" then
    if (redis.call("HGET", key, o.f) or "") == o.eq then
      local args = {}
      for f, v in pairs(o.m) do table.insert(args, f) table.insert(args, v) end
      r = redis.call("HSET", key, unpack(args))
    end
  elseif o.op == "hmget" then
    r = redis.call("HMGET", key, unpack(o.fs))
  else
    return redis.error_reply("unknown op " .. tostring(o.op))
  end
  results[i] = r
end
return cjson.encode({ok = true, r = results})
