-- Reservation GCRA (burst 1) for one (API key, endpoint class) bucket, on Redis server time,
-- with the fleet's safety margin kept next to it.
--
-- KEYS[1]  tat       theoretical arrival time of the next free slot, in microseconds
-- KEYS[2]  cooldown  fleet-wide "no request before" time set after an upstream 429, in microseconds
-- KEYS[3]  margin    hash: m (margin in ppm), t (last change), w (last 429 widening), f/ft (the
--                    lowest margin allowed after a 429, and when it was set)
-- KEYS[4]  jitter    hash: reporter id -> "lo_us:hi_us:n:reported_at_us" (adaptive margin only)
--
-- ARGV[1]  mode          "acquire", "penalize" or "report"
-- ARGV[2]  base_us       slot spacing at zero margin (1 / rate), may be fractional
-- ARGV[3]  max_ahead_us  booking horizon
-- ARGV[4]  margin_ppm    the fixed margin; with an adaptive margin, the one used until the first report
-- ARGV[5]  adaptive      1: the margin lives in KEYS[3]; 0: ARGV[4] always
-- ARGV[6]  floor_ppm, ARGV[7] ceiling_ppm   bounds of the adaptive margin
-- ARGV[8]  acquire:  known_cooldown_us, the latest cool-down the caller has seen (0: none), so one
--                    that Redis lost with a flush is still honoured by the processes that saw it
--          penalize: pause_us (Retry-After plus jitter, already chosen and capped by the caller)
--          report:   "lo_us:hi_us:n", this reporter's p0.1 and p99.9 of slot-to-response times
--                    and how many samples they come from
-- ARGV[9]  acquire: how many slots to book at once (callers of one process, batched)
-- ARGV[10] acquire: warmup_ahead_us, the booking horizon while an adaptive margin is unmeasured
-- ARGV[9..15] report: reporter id, narrow_ppm_per_s, stale_us, hold_us, min_samples, the
--                    fewest samples the quantile resolves (below it the bounds are the range), and
--                    range_miss_ppm (how often the scaled-up range may under-state the spread)
--
-- Every mode returns {booked (1|0), wait_us, slot_us, cooldown_us, now_us, margin_ppm}: cooldown_us
-- and now_us let the caller skip a second round trip (a reply this recent that shows no cool-down
-- over its slot proves no 429 was recorded before now_us; see limiter.py).
--
-- acquire:  books up to n slots first = max(now, tat, cooldown), first + interval, ... (interval =
--           base / (1 - margin)) as long as they lie within max_ahead_us (warmup_ahead_us while
--           an adaptive margin has not been measured: slots booked then keep the ceiling's
--           spacing); returns booked = how many, wait_us/slot_us of the first, the interval as a
--           7th element and the horizon used as an 8th.
-- penalize: pushes both cooldown and tat to now + pause_us (never backwards); an adaptive margin
--           doubles (at least +0.5 %, at most the ceiling) unless it already widened this second.
-- report:   records the reporter's bounds and sets the margin from the fleet's spread D (highest
--           hi minus lowest lo of the fresh reports), m = D / (1 + D): widened at once, narrowed by
--           at most narrow_ppm_per_s; while the fresh reports hold fewer than min_samples in all,
--           the margin holds (the start margin, until the first is measured). Its reply's 7th
--           element is 1 once the fleet's margin is measured.
--
-- A missing TAT means the bucket's state was lost (FLUSHDB, a restart without persistence, a
-- failover to an empty replica) or it was idle for longer than IDLE_KEEP_MS. Slots booked before
-- the loss may still be pending up to max_ahead_us ahead, so a fresh bucket starts one interval
-- after the horizon: old and new slots never share a second, whatever was lost. The TAT key is
-- kept for an hour after it stops mattering so that an ordinary idle gap does not pay this.
--
-- Numbers stay below 2^53, so Lua doubles hold them exactly; '%.0f' keeps them integral as strings.

local IDLE_KEEP_MS = 3600000
local PPM = 1000000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local raw_tat = redis.call('GET', KEYS[1])
local cooldown = tonumber(redis.call('GET', KEYS[2]) or '0')
local mode = ARGV[1]
local base = tonumber(ARGV[2])
local max_ahead = tonumber(ARGV[3])
local adaptive = ARGV[5] == '1'
local floor_ppm = tonumber(ARGV[6])
local ceiling_ppm = tonumber(ARGV[7])

local function fmt(value)
  return string.format('%.0f', value)
end

local function store(key, value, keep_ms)
  -- Expire a while after the value stops mattering, so idle buckets leave nothing behind.
  local ttl_ms = math.max(0, math.floor((value - now) / 1000)) + keep_ms
  redis.call('SET', key, fmt(value), 'PX', ttl_ms)
end

local function margin_field(name)
  return tonumber(redis.call('HGET', KEYS[3], name) or '')
end

local margin = tonumber(ARGV[4])
-- An adaptive margin is measured once the fleet's first report (or a 429) has stored one.
local stored_margin = nil
if adaptive then
  stored_margin = margin_field('m')
end
local measured = stored_margin ~= nil
if measured then
  margin = stored_margin
end

local function set_margin(fields)
  redis.call('HSET', KEYS[3], unpack(fields))
  redis.call('PEXPIRE', KEYS[3], IDLE_KEEP_MS)
end

local function interval_of(m)
  return base / (1 - m / PPM)
end

local fresh = raw_tat == false
local tat
if fresh then
  tat = now + max_ahead + interval_of(margin)
else
  tat = tonumber(raw_tat)
end

local function reply(booked, wait, slot)
  return {booked, fmt(wait), fmt(slot), fmt(cooldown), fmt(now), fmt(margin)}
end

if mode == 'acquire' then
  cooldown = math.max(cooldown, tonumber(ARGV[8]))
  local wanted = tonumber(ARGV[9] or '1')
  local first = math.max(now, tat, cooldown)
  local interval = interval_of(margin)
  local horizon = max_ahead
  if adaptive and not measured then
    horizon = math.min(max_ahead, tonumber(ARGV[10] or max_ahead))
  end
  local booked = 0
  while booked < wanted do
    local wait = first + booked * interval - now
    -- A fresh bucket's first slot lies one interval past the horizon on purpose (see above).
    if wait > horizon and not (booked == 0 and fresh and first == tat) then
      break
    end
    booked = booked + 1
  end
  if booked > 0 then
    store(KEYS[1], math.floor(first + booked * interval + 0.5), IDLE_KEEP_MS)
  end
  local out = reply(booked, first - now, first)
  out[7] = string.format('%.3f', interval)
  out[8] = fmt(horizon)
  return out
elseif mode == 'penalize' then
  local resume = now + tonumber(ARGV[8])
  if resume > cooldown then
    store(KEYS[2], resume, 60000)
    cooldown = resume
  end
  if fresh or resume > tat then
    store(KEYS[1], math.max(resume, tat), IDLE_KEEP_MS)
  end
  -- The 429s of one incident (requests already in flight) widen the margin once, not each.
  if adaptive and now - (margin_field('w') or 0) >= 1000000 then
    local before = margin
    margin = math.min(ceiling_ppm, math.max(2 * before, before + 5000))
    local hold = math.min(ceiling_ppm, math.floor(1.25 * before))
    set_margin({'m', fmt(margin), 't', fmt(now), 'w', fmt(now), 'f', fmt(hold), 'ft', fmt(now)})
  end
  return reply(1, 0, cooldown)
elseif mode == 'report' then
  local narrow_ppm_per_s, stale, hold_us = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
  local min_samples, resolvable = tonumber(ARGV[13]), tonumber(ARGV[14])
  local range_miss = tonumber(ARGV[15]) / PPM
  redis.call('HSET', KEYS[4], ARGV[9], ARGV[8] .. ':' .. fmt(now))
  redis.call('PEXPIRE', KEYS[4], IDLE_KEEP_MS)
  -- Pool the fleet's fresh reports: the lowest p0.1 and the highest p99.9 of all of them.
  local lo, hi, total = nil, 0, 0
  local entries = redis.call('HGETALL', KEYS[4])
  for i = 1, #entries, 2 do
    local l, h, n, at = string.match(entries[i + 1], '^(%d+):(%d+):(%d+):(%d+)$')
    if l == nil or now - tonumber(at) > stale then
      redis.call('HDEL', KEYS[4], entries[i])
    else
      lo = math.min(lo or tonumber(l), tonumber(l))
      hi = math.max(hi, tonumber(h))
      total = total + tonumber(n)
    end
  end
  local current, changed_at = stored_margin, margin_field('t')
  if total < min_samples then
    -- Warm-up: the start margin holds until the fleet has measured enough. Later (a fleet back
    -- from idle, its reports gone stale) the margin holds too: a handful of samples says little.
    local out = reply(1, 0, 0)
    out[7] = current == nil and '0' or '1'
    return out
  end
  local spread = math.max(0, hi - (lo or hi))
  if total >= 2 and total < resolvable then
    -- The range of a few samples under-states the spread they come from: scale it to the bound
    -- that n uniform draws fall short of with probability range_miss only (limiter_margin.range_scale).
    local lo_x, hi_x = 0.0, 1.0
    for _ = 1, 40 do
      local x = (lo_x + hi_x) / 2
      if total * x ^ (total - 1) - (total - 1) * x ^ total < range_miss then
        lo_x = x
      else
        hi_x = x
      end
    end
    spread = spread * 2 / (lo_x + hi_x)
  end
  local target = math.min(ceiling_ppm, math.max(floor_ppm, math.ceil(spread * PPM / (PPM + spread))))
  local new = target
  if current ~= nil and target < current then
    -- Narrow slowly, by fleet time (not per report), and not below what a recent 429 proved too little.
    local lowest = current - narrow_ppm_per_s * (now - (changed_at or now)) / 1000000
    local held, held_at = margin_field('f'), margin_field('ft')
    if held ~= nil and now - (held_at or 0) < hold_us then
      lowest = math.max(lowest, held)
    end
    new = math.min(current, math.max(target, math.floor(lowest)))
  end
  margin = new
  set_margin({'m', fmt(margin), 't', fmt(now)})
  local out = reply(1, 0, 0)
  out[7] = '1'
  return out
end
return redis.error_reply('gcra.lua: unknown mode ' .. tostring(mode))
