-- omni_limit_batch.lua: omni_limit.lua for several requests in one
-- call, so that the requests of an nginx worker that need Redis in
-- the same event-loop pass share one round trip. Each request is
-- decided exactly as a call of omni_limit.lua of its own would decide
-- it, in order (its revocation first, its limits all or nothing); the
-- clock is read once for all. The module embeds this file as
-- OMNI_LIMIT_BATCH_LUA (omni_limit_lua.h, gen_limit_lua.sh);
-- tests/integration/test_limit_batch.py holds the two to the same
-- replies and the same end state on random request sequences.
--
-- KEYS      every request's KEYS (as omni_limit.lua's), one after the
--           other
-- ARGV[1]   now, unix microseconds, for tests; '' = Redis TIME
-- ARGV[2..] per request, in KEYS order: n, its number of limits, then
--           its 4 * n ARGV (omni_limit.lua's ARGV[2..])
--
-- Reply: one element per request, in order: its omni_limit.lua
-- reply, or an error element where a call of its own would have got
-- an error reply (a malformed request, a key of the wrong type); the
-- others are unaffected. A malformed envelope is an error reply for
-- the whole call, before any request runs.
--
-- It is omni_limit.lua written for many requests: Redis is read
-- through tables that hold each key once (a revoked key's EXISTS, an
-- API key's hash, a limit's TAT as a number), each limit key written
-- is SET once at the end with its last TAT and expiry, an argument is
-- parsed once per call however many requests repeat it, and a request
-- allocates nothing but its reply. Nothing else runs during the
-- script and Redis's clock stands still in it, so every request sees
-- what it would have seen after the ones before it, and the keys end
-- as those calls would have left them.

local MAX_SPAN = 1125899906842624  -- 2^50
local MAX_COST = 1000000
local MAX_NOW = 4503599627370496   -- 2^52: every sum stays below 2^53
local MAX_INT = 9007199254740992   -- 2^53: doubles are exact below

local KEYS, ARGV = KEYS, ARGV
local call, error_reply = redis.call, redis.error_reply
local floor, format = math.floor, string.format

local REVOKED, UNKNOWN, EXPIRED = {2}, {3}, {4}

local function fail(what)
  return error_reply('ERR omni_limit: ' .. what)
end

-- an argument's value when a decimal integer of at most 16 digits,
-- else false, each string parsed once
local dec = {}

-- a decimal integer in lo..hi, or nil
local function int(s, lo, hi)
  local v = dec[s]
  if v == nil then
    v = #s <= 16 and s:find('^%d+$') and tonumber(s) or false
    dec[s] = v
  end
  if v and v >= lo and v <= hi then
    return v
  end
  return nil
end

-- floor(a / b) for integers 0 <= a < 2^53, b >= 1, exactly
local function div(a, b)
  local q = floor(a / b)
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

-- Redis as this call has left it so far
local exists, hashes, tats, pxs, written = {}, {}, {}, {}, {}

-- one request's limits and decisions, by limit index, reused
local T, B, C, U, K = {}, {}, {}, {}, {}
local OK, REM, RETRY, RESET, TTL, TAT = {}, {}, {}, {}, {}, {}

local now, now_s

-- whether limit x is tighter than limit y, both allowed or denied
local function tighter(x, y)
  if OK[x] == 1 then
    if REM[x] ~= REM[y] then
      return REM[x] < REM[y]
    end
  elseif RETRY[x] ~= RETRY[y] then
    if RETRY[x] == -1 or RETRY[y] == -1 then
      return RETRY[x] == -1
    end
    return RETRY[x] > RETRY[y]
  end
  return RESET[x] > RESET[y]
end

-- the request whose KEYS follow KEYS[k] and whose n limits' ARGV
-- follow ARGV[a], as omni_limit.lua decides it
local function check(k, a, n)
  local rk, ak = KEYS[k + 1], KEYS[k + 2]

  if rk ~= '' then
    if pxs[rk] then
      return REVOKED
    end
    local e = exists[rk]
    if e == nil then
      e = call('EXISTS', rk)
      exists[rk] = e
    end
    if e == 1 then
      return REVOKED
    end
  end

  if not now then
    return fail('bad now')
  end

  for i = 1, n do
    local j = a + 4 * i
    local t = int(ARGV[j - 3], 1, MAX_SPAN)
    local b = int(ARGV[j - 2], 0, MAX_SPAN)
    local c = int(ARGV[j - 1], 1, MAX_COST)
    local u = ARGV[j]
    if not (t and b and c) or (b + 1) * t > MAX_SPAN
        or (u ~= '0' and u ~= '1') then
      return fail('bad limit ' .. i)
    end
    if u == '1' and ak == '' then
      return fail('user key without an API key')
    end
    T[i], B[i], C[i], U[i] = t, b, c, u == '1'
  end

  local id1, id2, id3, id4 = '', '', '', ''
  if ak ~= '' then
    local h = hashes[ak]
    if h == nil then
      h = call('HMGET', ak, 'key_id', 'user_id', 'username', 'role',
        'expires_at')
      hashes[ak] = h
    end
    if not h[1] or h[1] == '' or not h[2] or h[2] == '' then
      return UNKNOWN
    end
    local e = int(h[5] or '0', 0, MAX_INT)
    if not e or (e ~= 0 and e <= now_s) then
      return EXPIRED
    end
    id1, id2, id3, id4 = h[1], h[2], h[3] or '', h[4] or ''
  end

  for i = 1, n do
    local key = KEYS[k + 2 + i]
    if U[i] then
      key = key .. id2
    end
    for j = 1, i - 1 do
      if K[j] == key then
        return fail('repeated limit key')
      end
    end
    K[i] = key
  end

  if n == 0 then
    return {1, 0, 0, 0, 0, id1, id2, id3, id4}
  end

  -- every read before any decision: a key of the wrong type stops the
  -- request with nothing written
  for i = 1, n do
    local key = K[i]
    if tats[key] == nil then
      local v = call('GET', key)
      tats[key] = v and v:find('^%d+$') and tonumber(v) or 0
    end
  end

  -- each limit as omni_gcra_decide() in omni_gcra.c; best: the
  -- tightest
  local best = 0
  for i = 1, n do
    local t, b, c, tat = T[i], B[i], C[i], tats[K[i]]
    local cap = (b + 1) * t
    local ok, rem, retry, ttl = 0, 0, 0, 0
    local base = tat > now and tat or now
    if base - now > cap then
      base = now + cap
      tat, ttl = base, cap
    end
    local reset = base - now
    if c > b + 1 then
      retry = -1
    else
      local ahead = base + c * t - now
      if ahead > cap then
        retry = ahead - cap
      else
        ok, rem, reset, ttl = 1, div(cap - ahead, t), ahead, ahead
        tat = now + ahead
      end
    end
    OK[i], REM[i], RETRY[i], RESET[i], TTL[i], TAT[i] =
      ok, rem, retry, reset, ttl, tat
    if best == 0 or (ok == 0 and OK[best] == 1)
        or (ok == OK[best] and tighter(i, best)) then
      best = i
    end
  end

  local ok = OK[best]
  for i = 1, n do
    if TTL[i] > 0 and (ok == 1 or OK[i] == 0) then
      local key = K[i]
      if not pxs[key] then
        written[#written + 1] = key
      end
      tats[key], pxs[key] = TAT[i], ms(TTL[i])
    end
  end

  return {ok, REM[best], ms(RETRY[best]), ms(RESET[best]), best,
    id1, id2, id3, id4}
end

local nkeys, nargv = #KEYS, #ARGV
local rk, ra, rn, m = {}, {}, {}, 0
local k, a = 0, 2
while a <= nargv do
  local n = tonumber(ARGV[a])
  if not n or n < 0 or n ~= floor(n) or a + 4 * n > nargv
      or k + 2 + n > nkeys then
    return error_reply('ERR omni_limit: bad batch')
  end
  m = m + 1
  rk[m], ra[m], rn[m] = k, a, n
  k, a = k + 2 + n, a + 1 + 4 * n
end
if k ~= nkeys or m == 0 then
  return error_reply('ERR omni_limit: bad batch')
end

if ARGV[1] == '' then
  local t = call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  if now > MAX_NOW then
    now = nil
  end
else
  now = int(ARGV[1], 0, MAX_NOW)
end
if now then
  now_s = div(now, 1000000)
end

local replies = {}
for i = 1, m do
  local ok, r = pcall(check, rk[i], ra[i], rn[i])
  if not ok then
    r = error_reply(type(r) == 'table' and r.err or tostring(r))
  end
  replies[i] = r
end

for i = 1, #written do
  local key = written[i]
  call('SET', key, format('%d', tats[key]), 'PX',
    format('%d', pxs[key]))
end
return replies
