-- The indexer's step (index.py): a chunk of older offsets put before the rooms' indexes.
-- KEYS[1]: state; KEYS[2..]: rooms' offset indexes.
-- ARGV[1]: partition, ARGV[2]: indexed:<partition> as read (the chunk ends there), ARGV[3]: the
-- chunk's first offset, ARGV[2 + i]: the entries of KEYS[i] in the chunk (increasing).
-- Nothing is written if indexed:<partition> moved meanwhile (Redis restarted, another bridge).
local field = 'indexed:' .. ARGV[1]
if redis.call('HGET', KEYS[1], field) ~= ARGV[2] then return 0 end
for i = 2, #KEYS do
  local older = ARGV[i + 2]
  local first = redis.call('GETRANGE', KEYS[i], 0, 7)
  if first ~= '' then
    -- the live path indexes only from indexed:<partition> on, so this keeps nothing out; a guard
    local head = struct.unpack('>I8', first)
    local n = #older / 8
    while n > 0 and struct.unpack('>I8', string.sub(older, n * 8 - 7, n * 8)) >= head do n = n - 1 end
    older = string.sub(older, 1, n * 8)
  end
  if #older > 0 then redis.call('SET', KEYS[i], older .. (redis.call('GET', KEYS[i]) or '')) end
end
redis.call('HSET', KEYS[1], field, ARGV[3])
return 1
