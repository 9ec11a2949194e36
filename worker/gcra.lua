-- Reservation GCRA (burst 1) for one (API key, endpoint class) bucket, on Redis server time.
--
-- KEYS[1]  tat       theoretical arrival time of the next free slot, in microseconds
-- KEYS[2]  cooldown  fleet-wide "no request before" time set after an upstream 429, in microseconds
-- ARGV[1]  mode      "acquire" or "penalize"
-- ARGV[2]  interval_us   slot spacing
-- ARGV[3]  max_ahead_us  booking horizon
--
-- acquire:  ARGV[4] known_cooldown_us: the latest cool-down the caller has seen (0: none), so one
--           that Redis lost with a flush is still honoured by the processes that saw it.
--           books slot = max(now, tat, cooldown) unless it lies more than max_ahead_us away.
--           returns {booked (1|0), wait_us, slot_us, cooldown_us, now_us}
-- penalize: ARGV[4] pause_us (Retry-After plus jitter, already chosen by the caller)
--           pushes both cooldown and tat to now + pause_us (never backwards).
--           returns {1, pause_us, resume_us, cooldown_us, now_us}
--
-- cooldown_us and now_us let the caller skip a second round trip: a reply this recent that shows
-- no cool-down over its slot proves no 429 was recorded before `now_us` (see limiter.py).
--
-- A missing TAT means the bucket's state was lost (FLUSHDB, a restart without persistence, a
-- failover to an empty replica) or it was idle for longer than IDLE_KEEP_MS. Slots booked before
-- the loss may still be pending up to max_ahead_us ahead, so a fresh bucket starts one interval
-- after the horizon: old and new slots never share a second, whatever was lost. The TAT key is
-- kept for an hour after it stops mattering so that an ordinary idle gap does not pay this.
--
-- Numbers stay below 2^53, so Lua doubles hold them exactly; '%.0f' keeps them integral as strings.

local IDLE_KEEP_MS = 3600000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local raw_tat = redis.call('GET', KEYS[1])
local cooldown = tonumber(redis.call('GET', KEYS[2]) or '0')
local mode = ARGV[1]
local interval = tonumber(ARGV[2])
local max_ahead = tonumber(ARGV[3])

local fresh = raw_tat == false
local tat
if fresh then
  tat = now + max_ahead + interval
else
  tat = tonumber(raw_tat)
end

local function fmt(value)
  return string.format('%.0f', value)
end

local function store(key, value, keep_ms)
  -- Expire a while after the value stops mattering, so idle buckets leave nothing behind.
  local ttl_ms = math.max(0, math.floor((value - now) / 1000)) + keep_ms
  redis.call('SET', key, string.format('%.0f', value), 'PX', ttl_ms)
end

if mode == 'acquire' then
  cooldown = math.max(cooldown, tonumber(ARGV[4]))
  local slot = math.max(now, tat, cooldown)
  local wait = slot - now
  -- A fresh bucket's first slot lies one interval past the horizon on purpose (see above).
  if wait > max_ahead and not (fresh and slot == tat) then
    return {0, fmt(wait), fmt(slot), fmt(cooldown), fmt(now)}
  end
  store(KEYS[1], slot + interval, IDLE_KEEP_MS)
  return {1, fmt(wait), fmt(slot), fmt(cooldown), fmt(now)}
elseif mode == 'penalize' then
  local resume = now + tonumber(ARGV[4])
  if resume > cooldown then
    store(KEYS[2], resume, 60000)
  end
  if fresh or resume > tat then
    store(KEYS[1], math.max(resume, tat), IDLE_KEEP_MS)
  end
  local resume_at = math.max(resume, cooldown)
  return {1, ARGV[4], fmt(resume_at), fmt(resume_at), fmt(now)}
end
return redis.error_reply('gcra.lua: unknown mode ' .. tostring(mode))
