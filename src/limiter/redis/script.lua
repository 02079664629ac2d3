-- backchat's shared limiter: one key's quota, per model class, shared by many processes.
--
-- Every dimension (1 = requests, 2 = input tokens, 3 = output tokens) is a GCRA token bucket
-- stored as one theoretical arrival time, TAT, in milliseconds of Redis's own clock (`TIME`,
-- so client clock skew does not matter). With per-minute limit L, the emission interval is
-- T = M / L ms per unit, M being the server's minute in milliseconds (60000, or less against
-- a time-scaled mock: every process of a scope must pass the same M), and the capacity C
-- units (L, or smaller when learned from the headers). The level at `now` is
-- C - (TAT - now) / T; a TAT at or before `now` is a full bucket; a TAT beyond now + C·T is a
-- negative level (reservations queued ahead). docs/retries.md, docs/shared-limiter.md.
--
-- KEYS: 1-3 `tat:<dim>`, 4-6 `limit:<dim>` (hash: limit, capacity), 7 `blocked` (hash:
-- until, bucket), 8 `probe`.
-- ARGV[1] is the operation, ARGV[2] the minute M in milliseconds; the rest depend on the
-- operation (see each branch, which numbers them from 3).
-- Every reply is {status, wait in microseconds, bucket, flag, Redis's now in microseconds,
-- stored}; `stored` is empty except for a reservation, which reads back per dimension the
-- stored limit and capacity, as strings ('' when unknown): the client learns capacities from
-- them (see 'observe').
--
-- Only the bucket arithmetic that must be atomic lives here. Learning a capacity smaller
-- than the limit is done in Rust (quota::learn_capacity, its one copy); this script stores
-- the result.

local op = ARGV[1]
local MINUTE_MS = tonumber(ARGV[2]) or 60000
if MINUTE_MS <= 0 then
  MINUTE_MS = 60000
end
-- Redis before 5.0 refuses writes after a non-deterministic command (TIME) unless the script
-- replicates its effects; later versions always do, and keep this call as a no-op.
if redis.replicate_commands then
  redis.replicate_commands()
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local now_us = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

-- Idle state must disappear by itself, but never while a reservation is still ahead.
local MIN_TTL_MS = 1000

local function num(v)
  if v then
    return tonumber(v)
  end
  return nil
end

-- A known bucket, or nil while its limit has not been learned.
local function load(d)
  local h = redis.call('HMGET', KEYS[3 + d], 'limit', 'capacity')
  local limit = num(h[1])
  if not limit or limit <= 0 then
    return nil
  end
  local cap = num(h[2]) or limit
  local tat = num(redis.call('GET', KEYS[d])) or now
  if tat < now then
    tat = now
  end
  return {
    limit = limit,
    cap = cap,
    T = MINUTE_MS / limit,
    tat = tat,
    -- As stored, for the read-back (a number through tostring would lose digits).
    stored = { h[1], h[2] or h[1] },
  }
end

-- Per dimension, the stored limit and capacity of the buckets in `bs` ('' when unknown).
local function stored(bs)
  local out = {}
  for d = 1, 3 do
    local b = bs[d]
    if b then
      out[2 * d - 1] = b.stored[1]
      out[2 * d] = b.stored[2]
    else
      out[2 * d - 1] = ''
      out[2 * d] = ''
    end
  end
  return out
end

local NOTHING = {}

local function save(d, b)
  redis.call('SET', KEYS[d], string.format('%.3f', b.tat))
end

-- About twice the full-refill time, counted from the last reservation ahead.
local function refresh_ttl(bs)
  local ttl = MIN_TTL_MS
  for d = 1, 3 do
    local b = bs[d]
    if b then
      local x = (b.tat - now) + 2 * b.cap * b.T
      if x > ttl then
        ttl = x
      end
    end
  end
  ttl = math.ceil(ttl)
  for d = 1, 3 do
    if bs[d] then
      redis.call('PEXPIRE', KEYS[d], ttl)
      redis.call('PEXPIRE', KEYS[3 + d], ttl)
    end
  end
end

if op == 'reserve' then
  -- ARGV 3-9: demand (requests, input, output), max_ahead_ms, may_await_probe (0/1), probe_ms,
  -- expires_us (0 = never).
  -- All or nothing: either every known dimension's TAT advances by its demand (the caller
  -- gets a start time that satisfies all of them, and the blocked-until), or, when that start
  -- is more than max_ahead_ms away, nothing changes ('too_far').
  -- A reservation run after `expires_us` (Redis's clock) changes nothing ('expired'): its
  -- caller stopped waiting and paces locally, and a frozen server that wakes up and runs the
  -- queued call would otherwise hand a slot to nobody.
  local expires = tonumber(ARGV[9]) or 0
  if expires > 0 and now_us > expires then
    return { 'expired', 0, 0, 0, now_us, {} }
  end
  local n = { tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]) }
  local max_ahead = tonumber(ARGV[6])
  local may_probe = ARGV[7] == '1'
  local probe_ms = tonumber(ARGV[8])
  local start = now
  local binding = 0
  local blocked = redis.call('HMGET', KEYS[7], 'until', 'bucket')
  local until_ = num(blocked[1])
  if until_ and until_ > start then
    start = until_
    binding = num(blocked[2]) or 0
  end
  local bs = {}
  local known = false
  for d = 1, 3 do
    local b = load(d)
    if b then
      known = true
      bs[d] = b
      -- A demand bigger than the bucket can never fit: pace it as a full bucket.
      local fit = math.min(n[d], b.cap)
      local s = b.tat + (fit - b.cap) * b.T
      if s > start then
        start = s
        binding = d
      end
    end
  end
  if not known then
    -- Nothing learned yet: one request (from any process) goes first, the others may wait
    -- for its headers.
    if may_probe and redis.call('EXISTS', KEYS[8]) == 1 then
      return { 'probe', math.max(redis.call('PTTL', KEYS[8]), 0) * 1000, 0, 0, now_us, stored(bs) }
    end
  end
  local wait = start - now
  if wait > max_ahead then
    return { 'too_far', math.floor(wait * 1000), binding, 0, now_us, stored(bs) }
  end
  if not known then
    redis.call('SET', KEYS[8], '1', 'PX', probe_ms, 'NX')
  end
  for d = 1, 3 do
    local b = bs[d]
    if b then
      b.tat = b.tat + n[d] * b.T
      save(d, b)
    end
  end
  refresh_ttl(bs)
  local flag = 0
  if known then
    flag = 1
  end
  return { 'granted', math.floor(wait * 1000), binding, flag, now_us, stored(bs) }
elseif op == 'adjust' then
  -- ARGV 3-6: units per dimension (positive: give back, negative: charge), release (0/1).
  -- Giving back moves the TAT back by n·T but never before now (the level never exceeds
  -- the capacity); reservations already handed out keep their start times, so freed units
  -- go to whoever reserves next.
  local delta = { tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]) }
  local release = ARGV[6] == '1'
  local bs = {}
  local known = false
  for d = 1, 3 do
    local b = load(d)
    if b then
      known = true
      bs[d] = b
      if delta[d] > 0 then
        b.tat = math.max(b.tat - delta[d] * b.T, now)
      elseif delta[d] < 0 then
        b.tat = b.tat - delta[d] * b.T
      end
      save(d, b)
    end
  end
  if release and not known then
    -- The probe failed without headers: let the next request try.
    redis.call('DEL', KEYS[8])
  end
  refresh_ttl(bs)
  return { 'ok', 0, 0, 0, now_us, NOTHING }
elseif op == 'observe' then
  -- ARGV 3-17: per dimension, five values: limit, remaining, a newly learned capacity to
  -- store (-1: keep the stored one), pending (units this process reserved that the server
  -- had not admitted when it answered, as far as this process knows), and the part of
  -- pending whose slot had started by then (the server may have counted it already);
  -- -1 = unknown.
  local bs = {}
  local any = false
  for d = 1, 3 do
    local base = 2 + (d - 1) * 5
    local limit = tonumber(ARGV[base + 1])
    local remaining = tonumber(ARGV[base + 2])
    local learned_now = tonumber(ARGV[base + 3])
    local pending = math.max(tonumber(ARGV[base + 4]), 0)
    local maybe_counted = math.min(math.max(tonumber(ARGV[base + 5]), 0), pending)
    if limit > 0 then
      any = true
      local h = redis.call('HMGET', KEYS[3 + d], 'limit', 'capacity')
      local old_limit = num(h[1])
      local old_cap = num(h[2])
      -- The capacity: what the client learned from this reading and the shared value it
      -- last read back (quota::learn_capacity), stored as it is. Without news, a stored
      -- (smaller) capacity holds while the limit stays the same.
      local learned = nil
      if old_limit == limit and old_cap and old_cap < limit then
        learned = old_cap
      end
      if learned_now > 0 then
        learned = learned_now
      end
      local cap = math.max(math.min(limit, learned or limit), 1)
      local T = MINUTE_MS / limit
      local tat_raw = num(redis.call('GET', KEYS[d]))
      local level
      if old_limit and old_limit > 0 and tat_raw then
        -- Keep the level across a change of limits, clamped to the new capacity.
        local oc = old_cap or old_limit
        level = oc - (math.max(tat_raw, now) - now) / (MINUTE_MS / old_limit)
        level = math.min(level, cap)
      else
        -- First sighting: a full bucket minus what is already on its way, unless the
        -- server says less. Its `remaining` is then all there is to go on: believe it, as
        -- the correction below does. (Within the tolerance below, a request count floored
        -- by the server, 1 for a true 1.0, left a model of 1.5 standing: a 429 for the
        -- request that took the half that was not there.)
        level = cap - pending
        if remaining >= 0 then
          level = math.min(level, remaining - pending)
        end
      end
      if remaining >= 0 then
        -- The server has seen more use than we account for (other users of the key).
        -- Token counts are rounded to the nearest 1,000. This process's requests whose
        -- slot had started may already be in `remaining`: they explain that much of a gap
        -- (counting them again lowered the shared level by a request each time, for every
        -- process, for good). The correction itself still assumes none was counted (it
        -- leans low), as the local limiter's does.
        local tolerance = 500
        if d == 1 then
          tolerance = 0.5
        end
        if remaining + tolerance < level + pending - maybe_counted then
          level = math.min(remaining - pending, cap)
        end
      end
      local b = { cap = cap, T = T, tat = now + (cap - level) * T }
      redis.call('HSET', KEYS[3 + d], 'limit', limit, 'capacity', cap)
      save(d, b)
      bs[d] = b
    end
  end
  if any then
    redis.call('DEL', KEYS[8])
  end
  refresh_ttl(bs)
  return { 'ok', 0, 0, 0, now_us, NOTHING }
elseif op == 'block' then
  -- ARGV 3-4: milliseconds from now, bucket code. blocked_until = max(blocked_until, until).
  local until_ = now + math.max(tonumber(ARGV[3]), 0)
  local current = num(redis.call('HGET', KEYS[7], 'until'))
  -- How much further this 429 blocks than the ones before it: several processes refused at
  -- about the same moment report one shortfall, not one each.
  local extra = until_ - math.max(current or now, now)
  if not current or until_ > current then
    redis.call('HSET', KEYS[7], 'until', string.format('%.3f', until_), 'bucket', ARGV[4])
    redis.call('PEXPIRE', KEYS[7], math.ceil(until_ - now) + MIN_TTL_MS)
  end
  -- A 429 also says that the server had less in this bucket than the model: the refused
  -- request (whose units its process has just given back) fits only `until` from now. Behind
  -- a queue of reservations that shortfall is invisible to 'observe' (the model's level counts
  -- every reservation ahead, the server's only those already sent), and it would meet the
  -- next reservation in line, round after round. So the bucket's TAT moves on by as much as
  -- the block was extended: every later reservation starts that much later, and the model is
  -- back at the server's level (a little below it: the wait is rounded up, and spread).
  local d = tonumber(ARGV[4])
  if extra > 0 and d and d >= 1 and d <= 3 then
    local b = load(d)
    if b then
      b.tat = b.tat + extra
      save(d, b)
      local bs = {}
      bs[d] = b
      refresh_ttl(bs)
    end
  end
  return { 'ok', 0, 0, 0, now_us, NOTHING }
elseif op == 'known' then
  -- Whether a request waiting for the probe may go: limits are known, or no probe is out.
  local flag = 0
  for d = 1, 3 do
    if redis.call('EXISTS', KEYS[3 + d]) == 1 then
      flag = 1
    end
  end
  if redis.call('EXISTS', KEYS[8]) == 0 then
    flag = 1
  end
  return { 'known', 0, 0, flag, now_us, NOTHING }
end
return redis.error_reply('backchat limiter: unknown operation ' .. tostring(op))
