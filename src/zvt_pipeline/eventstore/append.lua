-- Atomic compare-and-append of a batch of events (the Redis event store).
-- KEYS: 1 stream (Redis stream, entry id = <version>-1), 2 global log (entry id = <position>-1),
--       3 event id index (hash event_id -> "position:version"), 4 global position counter
-- ARGV: 1 expected version (-1 = any), 2 stream id, then pairs of (event id, encoded event)
-- Returns {"ok", v1, p1, v2, p2, ...} | {"dup", v1, p1, ...} | {"conflict", current} | {"dupid", event_id}
local n = (#ARGV - 2) / 2
local first = redis.call('HGET', KEYS[3], ARGV[3])
if first then
  local out = {'dup'}
  for i = 1, n do
    local rec = redis.call('HGET', KEYS[3], ARGV[1 + 2 * i])
    if not rec then return {'partial', ARGV[1 + 2 * i]} end
    local sep = string.find(rec, ':', 1, true)
    table.insert(out, tonumber(string.sub(rec, sep + 1)))
    table.insert(out, tonumber(string.sub(rec, 1, sep - 1)))
  end
  return out
end
local current = redis.call('XLEN', KEYS[1])
local expected = tonumber(ARGV[1])
if expected >= 0 and current ~= expected then return {'conflict', current} end
for i = 2, n do
  if redis.call('HEXISTS', KEYS[3], ARGV[1 + 2 * i]) == 1 then return {'dupid', ARGV[1 + 2 * i]} end
end
local last = redis.call('INCRBY', KEYS[4], n)
local out = {'ok'}
for i = 1, n do
  local version = current + i
  local position = last - n + i
  local id = ARGV[1 + 2 * i]
  local data = ARGV[2 + 2 * i]
  redis.call('XADD', KEYS[1], version .. '-1', 'd', data, 'p', position)
  redis.call('XADD', KEYS[2], position .. '-1', 'd', data, 's', ARGV[2], 'v', version)
  redis.call('HSET', KEYS[3], id, position .. ':' .. version)
  table.insert(out, version)
  table.insert(out, position)
end
return out
