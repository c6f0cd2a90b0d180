-- A history page's lookup in the room's offset index (stream/scrollback/lookup.py), in one call
-- with the client's share. chat_common/offsets.lua comes before it (entries_below).
--
-- KEYS[1]: the room's offset index, KEYS[2]: chat:state, KEYS[3]: the room's deleted ids,
-- KEYS[4]: the client's count of records read.
-- ARGV[1]: below, ARGV[2]: count, ARGV[3]: partition, ARGV[4]: the log's first offset,
-- ARGV[5]: ahead, ARGV[6]: the client's share, ARGV[7]: the most entries to look at.
--
-- Returns {'limited', the counter's TTL} once the client read its share. Else {entries, indexed,
-- oldest, exhausted, removed, ahead, used}: entries, the (up to) count newest offsets below
-- ARGV[1] and at or above ARGV[4] whose message was not deleted (increasing, packed);
-- indexed:<partition> ('' if none); oldest, the oldest offset looked at ('' if none: the next
-- lookup goes on below it); exhausted, 1 if the index holds nothing below oldest (from the log's
-- first offset on); removed, 1 if the room's first entry is below the log's first offset
-- (retention removed messages of the room); ahead, the ARGV[5] entries below oldest (increasing,
-- packed: what the page after this one wants, deleted or not); used, the client's count.
local used = tonumber(redis.call('GET', KEYS[4]) or '0')
if used >= tonumber(ARGV[6]) then return {'limited', redis.call('TTL', KEYS[4])} end
local indexed = redis.call('HGET', KEYS[2], 'indexed:' .. ARGV[3]) or ''
local beginning, count, most = tonumber(ARGV[4]), tonumber(ARGV[2]), tonumber(ARGV[7])
local lo = entries_below(KEYS[1], tonumber(ARGV[1]))
local kept, n, examined, oldest, exhausted = {}, 0, 0, '', 0
while n < count and examined < most do
  if lo == 0 then exhausted = 1 break end
  local take = math.min(lo, count - n)
  local block = redis.call('GETRANGE', KEYS[1], (lo - take) * 8, lo * 8 - 1)
  for i = take, 1, -1 do
    local entry = string.sub(block, i * 8 - 7, i * 8)
    local offset = struct.unpack('>I8', entry)
    if offset < beginning then exhausted = 1 break end
    lo, examined, oldest = lo - 1, examined + 1, entry
    if redis.call('SISMEMBER', KEYS[3], string.format('%.0f', offset)) == 0 then
      n = n + 1
      kept[n] = entry
    end
  end
  if exhausted == 1 then break end
end
if exhausted == 0 then
  if lo == 0 or struct.unpack('>I8', redis.call('GETRANGE', KEYS[1], (lo - 1) * 8, lo * 8 - 1)) < beginning then
    exhausted = 1
  end
end
local entries = {}
for i = n, 1, -1 do entries[#entries + 1] = kept[i] end
local ahead = ''
local start = math.max(0, lo - tonumber(ARGV[5]))
if lo > start then ahead = redis.call('GETRANGE', KEYS[1], start * 8, lo * 8 - 1) end
local removed = 0
if redis.call('STRLEN', KEYS[1]) > 0 and struct.unpack('>I8', redis.call('GETRANGE', KEYS[1], 0, 7)) < beginning then
  removed = 1
end
return {table.concat(entries), indexed, oldest, exhausted, removed, ahead, used}
