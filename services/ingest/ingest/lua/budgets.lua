-- One client address's fixed-window budgets, in a call of their own (ingest/admission.py, in
-- cluster mode: the address's counters carry its own hash tag, so one limit holds across the
-- rooms of every partition rather than per partition). As admit.lua's: every counter is added
-- to, refused ones included, and the first one over its limit refuses.
--
-- KEYS: the counters (one address's: one slot)
-- ARGV: three per counter: amount (a number), limit, window in seconds
-- Returns {3, i, seconds left} (the i-th counter is over its limit) | {0}

local over, wait = 0, 0
for i = 1, #KEYS do
  local amount = tonumber(ARGV[3 * i - 2])
  if amount > 0 then
    local total = redis.call('INCRBY', KEYS[i], amount)
    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3 * i]), 'NX')
    if over == 0 and total > tonumber(ARGV[3 * i - 1]) then
      over = i
      wait = redis.call('TTL', KEYS[i])
    end
  end
end
if over > 0 then return {3, over, wait} end
return {0}
