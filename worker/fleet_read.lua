-- The dashboard's fleet figures in one call (worker/fleet_view.py turns the reply into a view).
-- Which minute keys to read follows from the Redis clock, read here: the plan and the figures come
-- from one instant, whatever the reader's own clock says, and a pipeline of ~25 commands becomes one.
-- The minute keys are named here, not passed in KEYS (which minutes depends on TIME): right on one
-- Redis or behind Sentinel, as this project runs it; Redis Cluster would need them in one hash slot.
--
-- KEYS: the credits hash, the credit samples zset, the workers hash, then one cool-down key per class.
-- ARGV: window_s, settle_s, r429_minutes, burn_window_s, then per class the grants, 429 and waits
--       key prefixes (the minute is appended).
-- Reply: {TIME, per class {grants as a flat hash, 429 counts per minute, waits, cool-down},
--         credits as a flat hash, oldest sample in the burn window, newest sample, workers as a flat hash}.
local time = redis.call('TIME')
local now = tonumber(time[1])
local now_s = now + tonumber(time[2]) / 1000000
local window_s, settle_s = tonumber(ARGV[1]), tonumber(ARGV[2])
local r429_minutes, burn_window_s = tonumber(ARGV[3]), tonumber(ARGV[4])
local last = now - settle_s
local first = last - window_s + 1
local minute = math.floor(now / 60)

local function append_all(into, items)
  for i = 1, #items do into[#into + 1] = items[i] end
end

local reply = {time}
for class = 1, #KEYS - 3 do
  local base = 4 + 3 * (class - 1)
  local grants_prefix, r429_prefix, waits_prefix = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local grants = {}
  for m = math.floor(first / 60), math.floor(last / 60) do
    append_all(grants, redis.call('HGETALL', grants_prefix .. m))
  end
  local r429_keys = {}
  for m = minute - r429_minutes + 1, minute do r429_keys[#r429_keys + 1] = r429_prefix .. m end
  local waits = {}
  for m = minute - 1, minute do
    append_all(waits, redis.call('LRANGE', waits_prefix .. m, 0, -1))
  end
  reply[#reply + 1] = {grants, redis.call('MGET', unpack(r429_keys)), waits, redis.call('GET', KEYS[3 + class])}
end
local burn_from = now_s - burn_window_s
reply[#reply + 1] = redis.call('HGETALL', KEYS[1])
reply[#reply + 1] = redis.call('ZRANGEBYSCORE', KEYS[2], burn_from, '+inf', 'LIMIT', 0, 1)
reply[#reply + 1] = redis.call('ZREVRANGEBYSCORE', KEYS[2], '+inf', burn_from, 'LIMIT', 0, 1)
reply[#reply + 1] = redis.call('HGETALL', KEYS[3])
return reply
