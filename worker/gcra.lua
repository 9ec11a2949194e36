-- Reservation GCRA (burst 1) for one (API key, endpoint class) bucket, on Redis server time.
--
-- KEYS[1]  tat       theoretical arrival time of the next free slot, in microseconds
-- KEYS[2]  cooldown  fleet-wide "no request before" time set after an upstream 429, in microseconds
-- ARGV[1]  mode      "acquire" or "penalize"
--
-- acquire:  ARGV[2] interval_us, ARGV[3] max_ahead_us
--           books slot = max(now, tat, cooldown) unless it lies more than max_ahead_us away.
--           returns {booked (1|0), wait_us, slot_us}
-- penalize: ARGV[2] pause_us (Retry-After plus jitter, already chosen by the caller)
--           pushes both cooldown and tat to now + pause_us (never backwards).
--           returns {1, pause_us, resume_us}
--
-- Numbers stay below 2^53, so Lua doubles hold them exactly; '%.0f' keeps them integral as strings.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local cooldown = tonumber(redis.call('GET', KEYS[2]) or '0')
local mode = ARGV[1]

local function store(key, value)
  -- Expire a little after the value stops mattering, so idle buckets leave nothing behind.
  local ttl_ms = math.floor((value - now) / 1000) + 60000
  redis.call('SET', key, string.format('%.0f', value), 'PX', ttl_ms)
end

if mode == 'acquire' then
  local interval = tonumber(ARGV[2])
  local max_ahead = tonumber(ARGV[3])
  local slot = math.max(now, tat, cooldown)
  local wait = slot - now
  if wait > max_ahead then
    return {0, string.format('%.0f', wait), string.format('%.0f', slot)}
  end
  store(KEYS[1], slot + interval)
  return {1, string.format('%.0f', wait), string.format('%.0f', slot)}
elseif mode == 'penalize' then
  local resume = now + tonumber(ARGV[2])
  if resume > cooldown then
    store(KEYS[2], resume)
  end
  if resume > tat then
    store(KEYS[1], resume)
  end
  return {1, ARGV[2], string.format('%.0f', math.max(resume, cooldown))}
end
return redis.error_reply('gcra.lua: unknown mode ' .. tostring(mode))
