-- omni_limit.lua: all a gateway request needs from Redis in one
-- atomic call: jti revocation, API-key lookup and every GCRA limit
-- (all or nothing) on Redis' own clock. omni_gcra.c is its twin in C
-- and the two must agree. The module embeds this file as
-- OMNI_LIMIT_LUA (omni_limit_lua.h, made by gen_limit_lua.sh; make
-- unit fails when the two differ).
--
-- KEYS[1]   'omni:revoked:<jti>', or '' when the request has no jti
-- KEYS[2]   'omni:apikey:<sha256 hex of the key>', or '' (no API key)
-- KEYS[3..] one per limit, 'omni:rl:<zone>:<key>'; for a limit keyed
--           by the API key's user, 'omni:rl:<zone>:', completed with
--           the user_id KEYS[2] resolves to. Key bytes are only key
--           bytes: what a limit is keyed by is said in ARGV. Each
--           completed key at most once.
-- ARGV[1]   now, unix microseconds, for tests; '' = Redis TIME
-- ARGV[2..] four per limit, in KEYS order: T (emission interval, us,
--           >= 1), B (burst, >= 0), c (cost, 1..1000000), with
--           (B + 1) * T <= 2^50 (OMNI_GCRA_MAX_SPAN), and u: '1' when
--           the limit is keyed by the API key's user, else '0'
--
-- Replies, integers and strings only:
--   {2}  KEYS[1] exists: the token is revoked
--   {3}  KEYS[2] is no hash with key_id and user_id: unknown API key
--   {4}  its expires_at (unix s, '0' = never) is <= now: expired
--   {allowed, remaining, retry_after_ms, reset_ms, index,
--    key_id, user_id, username, role}
--     allowed         1 or 0
--     remaining       allow: requests of cost 1 left after this one;
--                     deny: 0
--     retry_after_ms  deny: wait this long and the same request
--                     passes, -1 = never (its cost exceeds B + 1);
--                     allow: 0
--     reset_ms        until the tightest limit's key is full again
--     index           the tightest limit, 1-based (KEYS[index + 2]),
--                     0 = no limits; allow: lowest remaining, deny:
--                     longest retry_after; ties: longer reset, then
--                     lower index
--     identity        the hash's fields, '' without an API key
-- Durations are rounded up to whole ms. Revoked, unknown, expired and
-- denied requests consume nothing; an allowed one stores each limit's
-- TAT (unix us) with PX = ceil(ttl / 1000), ttl = TAT - now. A TAT
-- further ahead than (B + 1) * T (a clock stepped back, a tightened
-- limit) counts as now + (B + 1) * T and is lowered to that even when
-- the request is denied; a value that is not a decimal integer counts
-- as no state. Lua numbers are doubles: every value stays below 2^53,
-- where they are exact (now <= 2^52).
-- Revocation is answered first, before anything that can fail: a
-- revoked jti gets {2} whatever else is wrong with the call. Then a
-- malformed call (counts, ranges, a repeated key, a user-keyed limit
-- without KEYS[2]) or a key of the wrong type gives an error reply;
-- the module then asks EXISTS KEYS[1] on its own.
--
-- The gateway sends its requests to omni_limit_batch.lua, this
-- script for many requests (as a function library by FCALL, else by
-- EVALSHA, and EVAL when Redis has lost it: see there). User-keyed
-- limit keys are completed here, not declared in KEYS: standalone
-- Redis only, not Cluster.

local MAX_SPAN = 1125899906842624  -- 2^50
local MAX_COST = 1000000
local MAX_NOW = 4503599627370496   -- 2^52: every sum stays below 2^53
local MAX_INT = 9007199254740992   -- 2^53: doubles are exact below

local function fail(what)
  return redis.error_reply('ERR omni_limit: ' .. what)
end

-- a decimal integer in lo..hi, or nil
local function int(s, lo, hi)
  if type(s) ~= 'string' or #s > 16 or not s:find('^%d+$') then
    return nil
  end
  local v = tonumber(s)
  if v < lo or v > hi then
    return nil
  end
  return v
end

-- floor(a / b) for integers 0 <= a < 2^53, b >= 1, exactly
local function div(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

local function ms(us)
  if us <= 0 then
    return us
  end
  return div(us + 999, 1000)
end

-- first: no later error may hide a revoked token
if (KEYS[1] or '') ~= '' and redis.call('EXISTS', KEYS[1]) == 1 then
  return {2}
end

local n = #KEYS - 2
if n < 0 or #ARGV ~= 1 + 4 * n then
  return fail('wrong number of keys or arguments')
end

local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = int(ARGV[1], 0, MAX_NOW)
  if not now then
    return fail('bad now')
  end
end

local lim = {}
for i = 1, n do
  local t = int(ARGV[4 * i - 2], 1, MAX_SPAN)
  local b = int(ARGV[4 * i - 1], 0, MAX_SPAN)
  local c = int(ARGV[4 * i], 1, MAX_COST)
  local u = ARGV[4 * i + 1]
  if not (t and b and c) or (b + 1) * t > MAX_SPAN
      or (u ~= '0' and u ~= '1') then
    return fail('bad limit ' .. i)
  end
  if u == '1' and KEYS[2] == '' then
    return fail('user key without an API key')
  end
  lim[i] = {t = t, b = b, c = c, user = u == '1'}
end

local id = {'', '', '', ''}
if KEYS[2] ~= '' then
  local h = redis.call('HMGET', KEYS[2], 'key_id', 'user_id',
    'username', 'role', 'expires_at')
  if not h[1] or h[1] == '' or not h[2] or h[2] == '' then
    return {3}
  end
  local e = int(h[5] or '0', 0, MAX_INT)
  if not e or (e ~= 0 and e <= div(now, 1000000)) then
    return {4}
  end
  id = {h[1], h[2], h[3] or '', h[4] or ''}
end

local keys, seen = {}, {}
for i = 1, n do
  local k = KEYS[i + 2]
  if lim[i].user then
    k = k .. id[2]
  end
  if seen[k] then
    return fail('repeated limit key')
  end
  seen[k] = true
  keys[i] = k
end

-- one limit against its state, as omni_gcra_decide() in omni_gcra.c
local function decide(l, tat)
  local cap = (l.b + 1) * l.t
  local r = {ok = 0, rem = 0, retry = 0, ttl = 0, tat = tat}
  local base = math.max(tat, now)
  if base - now > cap then
    base = now + cap
    r.tat, r.ttl = base, cap
  end
  r.reset = base - now
  if l.c > l.b + 1 then
    r.retry = -1
    return r
  end
  local ahead = base + l.c * l.t - now
  if ahead > cap then
    r.retry = ahead - cap
    return r
  end
  r.ok, r.rem, r.reset, r.ttl = 1, div(cap - ahead, l.t), ahead, ahead
  r.tat = now + ahead
  return r
end

-- whether a is tighter than b, both allowed or both denied
local function tighter(a, b)
  if a.ok == 1 then
    if a.rem ~= b.rem then
      return a.rem < b.rem
    end
  elseif a.retry ~= b.retry then
    if a.retry == -1 or b.retry == -1 then
      return a.retry == -1
    end
    return a.retry > b.retry
  end
  return a.reset > b.reset
end

local res, best = {}, nil
for i = 1, n do
  local v = redis.call('GET', keys[i])
  local r = decide(lim[i], v and v:find('^%d+$') and tonumber(v) or 0)
  r.i = i
  res[i] = r
  if not best or (r.ok == 0 and best.ok == 1)
      or (r.ok == best.ok and tighter(r, best)) then
    best = r
  end
end

if not best then
  return {1, 0, 0, 0, 0, id[1], id[2], id[3], id[4]}
end

for i = 1, n do
  local r = res[i]
  if r.ttl > 0 and (best.ok == 1 or r.ok == 0) then
    redis.call('SET', keys[i], string.format('%d', r.tat), 'PX',
      string.format('%d', ms(r.ttl)))
  end
end

return {best.ok, best.rem, ms(best.retry), ms(best.reset), best.i,
  id[1], id[2], id[3], id[4]}
