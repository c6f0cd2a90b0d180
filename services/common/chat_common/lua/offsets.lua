-- A library for the scripts that read a room's offset index (chat:room:<room>:offsets): its
-- text is put before theirs (chat_common.lua.lua_source), so they can call these functions.

-- How many of the index's entries are below `value`: a binary search, as the entries increase.
-- Each entry is an offset of 8 bytes, unsigned and big-endian (messages.OFFSET_BYTES).
local function entries_below(key, value)
  local lo, hi = 0, math.floor(redis.call('STRLEN', key) / 8)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if struct.unpack('>I8', redis.call('GETRANGE', key, mid * 8, mid * 8 + 7)) < value then
      lo = mid + 1
    else
      hi = mid
    end
  end
  return lo
end
