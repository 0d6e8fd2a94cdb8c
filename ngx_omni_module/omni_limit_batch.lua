-- omni_limit_batch.lua: omni_limit.lua for several requests in one
-- call, so that the requests of an nginx worker that need Redis in
-- the same event-loop pass share one round trip. Identical requests
-- (the same KEYS and the same limits: one client's burst on one key,
-- the case rate limiting exists for) come as one group with a count.
-- Each request is decided exactly as a call of omni_limit.lua of its
-- own would decide it, in order (its revocation first, its limits all
-- or nothing); the clock is read once for all. The module embeds this
-- file as OMNI_LIMIT_BATCH_LUA (omni_limit_lua.h, gen_limit_lua.sh);
-- tests/integration/test_limit_batch.py holds the two to the same
-- replies and the same end state on random request sequences.
--
-- The file defines run(KEYS, ARGV), the call, and is sent in one of
-- two forms (ngx_http_omni_limit.c makes both):
-- - a function library (Redis 7 and later), loaded once per
--   connection: '#!lua name=omni_limit_<V>' first, then this file,
--   then redis.register_function('omni_limit_<V>', run), where <V> is
--   the first 16 hex digits of this file's SHA-1; called by FCALL, so
--   what this file defines is made once, not on every call;
-- - a script, 'return run(KEYS, ARGV)' after this file: EVALSHA, for
--   a Redis without functions, and EVAL when Redis has lost both.
--
-- KEYS      every group's KEYS (as omni_limit.lua's), one after the
--           other
-- ARGV[1]   now, unix microseconds, for tests; '' = Redis TIME
-- ARGV[2]   P, the number of limit lists ("profiles") that follow
-- ARGV[3..] P profiles: n, a number of limits, then its 4 * n ARGV
--           (omni_limit.lua's ARGV[2..]); the requests of one
--           location share one
-- ARGV[#]   the groups, two bytes each, in KEYS order: its profile's
--           number, 1..P, then its number of requests, 1..255
--
-- Reply: one flat array, each group's elements in order: {2}, {3} or
-- {4} as one integer, or an error element where a call of its own
-- would have got an error reply (a malformed profile, a key of the
-- wrong type), each the answer of every request of the group, the
-- other groups unaffected; else 0, now, then each limit's state (its
-- TAT, 0 for none, one past now + capacity for any state further
-- ahead: the same decisions) as the group found it, then key_id,
-- user_id, username, role only when the group has an API key
-- (KEYS[2] ~= ''). From those the module decides the group's requests
-- one after the other with omni_gcra_check_all() (omni_gcra.c, held
-- to omni_limit.lua by test_limit_script.py), as omni_limit.lua
-- would; the script runs the same requests for the state it leaves.
-- So Redis's work per request falls as the load rises: a group costs
-- what one request does, and its reply does not grow with it. A
-- malformed envelope is an error reply for the whole call, before any
-- request runs.
--
-- It is omni_limit.lua written for many requests: Redis is read
-- through tables that hold each key once (a revoked key's EXISTS, an
-- API key's hash, a limit's TAT as a number; the limit keys named
-- whole are read by one MGET), each limit key written
-- is SET once at the end with its last TAT and expiry, a profile is
-- parsed once per call however many requests use it, and a group
-- allocates nothing (its reply is appended to the one array). Nothing
-- else runs during the script and Redis's clock stands still in it,
-- so every request sees what it would have seen after the ones before
-- it, and the keys end as those calls would have left them.

local MAX_SPAN = 1125899906842624  -- 2^50
local MAX_COST = 1000000
local MAX_NOW = 4503599627370496   -- 2^52: every sum stays below 2^53
local MAX_INT = 9007199254740992   -- 2^53: doubles are exact below

-- this call's KEYS and ARGV, and what it calls: bound by run() (a
-- function library cannot reach redis.* or Lua's libraries while it
-- loads, only when called)
local keys, argv
local call, pcall_redis, error_reply, floor, format, byte, unpk

local function fail(what)
  return error_reply('ERR omni_limit: ' .. what)
end

-- an argument's value when a decimal integer of at most 16 digits,
-- else false, each string parsed once: in a function library, across
-- calls (the limits' strings repeat in every call), 1024 at most
local dec, ndec = {}, 0

-- a decimal integer in lo..hi, or nil
local function int(s, lo, hi)
  local v = dec[s]
  if v == nil then
    v = #s <= 16 and s:find('^%d+$') and tonumber(s) or false
    if ndec == 1024 then
      dec, ndec = {}, 0
    end
    dec[s], ndec = v, ndec + 1
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
local exists, hashes, tats, pxs, written

-- each profile's limits, by profile then limit index; BAD: the error
-- of its first malformed limit, USER1: its first user-keyed limit
-- before that, each false when none (a call sets each profile it has
-- before reading it)
local PN, PT, PB, PC, PU, BAD, USER1 = {}, {}, {}, {}, {}, {}, {}

-- one group's limit keys and states, by limit index, reused
local K, TAT = {}, {}

local now, now_s

-- the reply so far
local out, o

-- the cnt requests whose KEYS follow KEYS[k] and whose limits are
-- profile p's, as omni_limit.lua decides them; their elements go to
-- the reply
local function check(k, p, cnt)
  local rk, ak = keys[k + 1], keys[k + 2]

  if rk ~= '' then
    local e = pxs[rk] and 1 or exists[rk]
    if e == nil then
      e = call('EXISTS', rk)
      exists[rk] = e
    end
    if e == 1 then
      o = o + 1
      out[o] = 2
      return
    end
  end

  if not now then
    o = o + 1
    out[o] = fail('bad now')
    return
  end

  local bad, user1 = BAD[p], USER1[p]
  if user1 and ak == '' then
    o = o + 1
    out[o] = fail('user key without an API key')
    return
  end
  if bad then
    o = o + 1
    out[o] = bad
    return
  end

  local id2
  if ak ~= '' then
    local h = hashes[ak]
    if h == nil then
      h = pcall_redis('HMGET', ak, 'key_id', 'user_id', 'username',
        'role', 'expires_at')
      hashes[ak] = h
    end
    if h.err then
      o = o + 1
      out[o] = h
      return
    end
    if not h[1] or h[1] == '' or not h[2] or h[2] == '' then
      o = o + 1
      out[o] = 3
      return
    end
    local e = int(h[5] or '0', 0, MAX_INT)
    if not e or (e ~= 0 and e <= now_s) then
      o = o + 1
      out[o] = 4
      return
    end
    id2 = h[2]
  end

  local n, T, B, C, U = PN[p], PT[p], PB[p], PC[p], PU[p]

  for i = 1, n do
    local key = keys[k + 2 + i]
    if U[i] then
      key = key .. id2
    end
    for j = 1, i - 1 do
      if K[j] == key then
        o = o + 1
        out[o] = fail('repeated limit key')
        return
      end
    end
    -- a request that writes its revocation key revokes the next one:
    -- one answer cannot stand for both (the module's keys never meet)
    if key == rk and cnt > 1 then
      o = o + 1
      out[o] = fail('revocation key is a limit key')
      return
    end
    K[i] = key
  end

  -- every read before any decision: a key of the wrong type stops the
  -- request with nothing written
  for i = 1, n do
    local key = K[i]
    if tats[key] == nil then
      local v = pcall_redis('GET', key)
      if type(v) == 'table' then
        o = o + 1
        out[o] = v
        return
      end
      tats[key] = v and v:find('^%d+$') and tonumber(v) or 0
    end
  end

  -- the group as it finds the limits, for the module to decide
  o = o + 2
  out[o - 1], out[o] = 0, now
  for i = 1, n do
    local tat, far = tats[K[i]], now + (B[i] + 1) * T[i] + 1
    o = o + 1
    out[o] = tat < far and tat or far
  end

  -- its requests one after the other, each limit as in omni_gcra.c,
  -- all or nothing, leave the state below. Each allowed one moves
  -- every TAT on by its cost; the first denied changes nothing the
  -- next would see, so the rest are denied too. A limit lets the m
  -- first through whose m costs fit in what its capacity has left
  -- (none when it is over, and its state ahead of capacity is lowered
  -- to a full debt, as a denial of omni_gcra.c does).
  local m = cnt
  for i = 1, n do
    local t, b, c, tat = T[i], B[i], C[i], tats[K[i]]
    local cap = (b + 1) * t
    local base = tat > now and tat or now
    local fit = 0
    if base - now <= cap then
      fit = div(cap - (base - now), c * t)
    end
    TAT[i] = base
    if fit < m then
      m = fit
    end
  end
  for i = 1, n do
    local key, cap = K[i], (B[i] + 1) * T[i]
    local tat, ttl = TAT[i], 0
    if m > 0 then
      tat = tat + m * C[i] * T[i]
      ttl = tat - now
    elseif tat - now > cap then
      tat, ttl = now + cap, cap
    end
    if ttl > 0 then
      if not pxs[key] then
        written[#written + 1] = key
      end
      tats[key], pxs[key] = tat, ms(ttl)
    end
  end

  if ak ~= '' then
    local h = hashes[ak]
    out[o + 1], out[o + 2], out[o + 3], out[o + 4] =
      h[1], h[2], h[3] or '', h[4] or ''
    o = o + 4
  end
end

local function bad_batch()
  return error_reply('ERR omni_limit: bad batch')
end

-- the call: KEYS and ARGV as above; the reply
local function run(call_keys, call_argv)
  keys, argv = call_keys, call_argv
  if not call then
    call, pcall_redis, error_reply = redis.call, redis.pcall,
      redis.error_reply
    floor, format, byte = math.floor, string.format, string.byte
    unpk = unpack
  end
  exists, hashes, tats, pxs, written = {}, {}, {}, {}, {}
  out, o, now, now_s = {}, 0, nil, nil

  -- the envelope, whole, before any request runs
  local nkeys, nargv = #keys, #argv
  local np = nargv >= 3 and tonumber(argv[2])
  if not np or np < 0 or np ~= floor(np) then
    return bad_batch()
  end
  local a = 3
  for p = 1, np do
    local n = tonumber(argv[a])
    if not n or n < 0 or n ~= floor(n) or a + 4 * n >= nargv then
      return bad_batch()
    end
    local T, B, C, U = {}, {}, {}, {}
    local bad, user1 = false, false
    for i = 1, n do
      local j = a + 4 * i
      local t = int(argv[j - 3], 1, MAX_SPAN)
      local b = int(argv[j - 2], 0, MAX_SPAN)
      local c = int(argv[j - 1], 1, MAX_COST)
      local u = argv[j]
      if not bad then
        if not (t and b and c) or (b + 1) * t > MAX_SPAN
            or (u ~= '0' and u ~= '1') then
          bad = fail('bad limit ' .. i)
        elseif u == '1' and not user1 then
          user1 = i
        end
      end
      T[i], B[i], C[i], U[i] = t, b, c, u == '1'
    end
    PN[p], PT[p], PB[p], PC[p], PU[p], BAD[p], USER1[p] =
      n, T, B, C, U, bad, user1
    a = a + 1 + 4 * n
  end

  local groups = argv[a]
  local m = a == nargv and #groups or 0
  if m == 0 or m % 2 == 1 then
    return bad_batch()
  end
  m = m / 2
  local k = 0
  for i = 1, m do
    local p, cnt = byte(groups, 2 * i - 1, 2 * i)
    if p < 1 or p > np or cnt < 1 then
      return bad_batch()
    end
    k = k + 2 + PN[p]
  end
  if k ~= nkeys then
    return bad_batch()
  end

  if argv[1] == '' then
    local t = call('TIME')
    now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    if now > MAX_NOW then
      now = nil
    end
  else
    now = int(argv[1], 0, MAX_NOW)
  end
  if now then
    now_s = div(now, 1000000)
  end

  -- the limit keys the groups name whole (not completed with an
  -- API key's user) read at once: one MGET, not a GET each. MGET
  -- shows a key that is absent or of another type as nil; one EXISTS
  -- over those says they are all absent, else check() GETs each as
  -- before (an error for the wrong type). Nothing is written before
  -- the end, so reading early reads the same.
  if now then
    local pre, npre = {}, 0
    k = 0
    for i = 1, m do
      local p = byte(groups, 2 * i - 1)
      if not BAD[p] then
        local U = PU[p]
        for j = 1, PN[p] do
          local key = keys[k + 2 + j]
          if not U[j] and tats[key] == nil then
            tats[key] = false
            npre = npre + 1
            pre[npre] = key
          end
        end
      end
      k = k + 2 + PN[p]
    end
    if npre > 0 then
      local v = call('MGET', unpk(pre, 1, npre))
      local gone, ngone = {}, 0
      for i = 1, npre do
        local s = v[i]
        if s then
          tats[pre[i]] = s:find('^%d+$') and tonumber(s) or 0
        else
          ngone = ngone + 1
          gone[ngone] = pre[i]
        end
      end
      local none = ngone > 0
        and call('EXISTS', unpk(gone, 1, ngone)) == 0
      for i = 1, ngone do
        tats[gone[i]] = none and 0 or nil
      end
    end
  end

  k = 0
  for i = 1, m do
    local p, cnt = byte(groups, 2 * i - 1, 2 * i)
    check(k, p, cnt)
    k = k + 2 + PN[p]
  end

  for i = 1, #written do
    local key = written[i]
    call('SET', key, format('%d', tats[key]), 'PX',
      format('%d', pxs[key]))
  end
  return out
end
