/*
 * omni_limit_lua.h: omni_limit.lua and omni_limit_batch.lua as C
 * string literals, made by gen_limit_lua.sh. Edit the .lua files
 * and run the script, never this file: the unit tests compare
 * them byte for byte.
 */


#ifndef OMNI_LIMIT_LUA_H_INCLUDED_
#define OMNI_LIMIT_LUA_H_INCLUDED_


#define OMNI_LIMIT_LUA                                                        \
    "-- omni_limit.lua: all a gateway request needs from Redis in one\n"      \
    "-- atomic call: jti revocation, API-key lookup and every GCRA limit\n"   \
    "-- (all or nothing) on Redis' own clock. omni_gcra.c is its twin in C\n" \
    "-- and the two must agree. The module embeds this file as\n"             \
    "-- OMNI_LIMIT_LUA (omni_limit_lua.h, made by gen_limit_lua.sh; make\n"   \
    "-- unit fails when the two differ).\n"                                   \
    "--\n"                                                                    \
    "-- KEYS[1]   'omni:revoked:<jti>', or '' when the request has no jti\n"  \
    "-- KEYS[2]   'omni:apikey:<sha256 hex of the key>', or '' (no API key)\n"\
    "-- KEYS[3..] one per limit, 'omni:rl:<zone>:<key>'; for a limit keyed\n" \
    "--           by the API key's user, 'omni:rl:<zone>:', completed with\n" \
    "--           the user_id KEYS[2] resolves to. Key bytes are only key\n"  \
    "--           bytes: what a limit is keyed by is said in ARGV. Each\n"    \
    "--           completed key at most once.\n"                              \
    "-- ARGV[1]   now, unix microseconds, for tests; '' = Redis TIME\n"       \
    "-- ARGV[2..] four per limit, in KEYS order: T (emission interval, us,\n" \
    "--           >= 1), B (burst, >= 0), c (cost, 1..1000000), with\n"       \
    "--           (B + 1) * T <= 2^50 (OMNI_GCRA_MAX_SPAN), and u: '1' when\n"\
    "--           the limit is keyed by the API key's user, else '0'\n"       \
    "--\n"                                                                    \
    "-- Replies, integers and strings only:\n"                                \
    "--   {2}  KEYS[1] exists: the token is revoked\n"                        \
    "--   {3}  KEYS[2] is no hash with key_id and user_id: unknown API key\n" \
    "--   {4}  its expires_at (unix s, '0' = never) is <= now: expired\n"     \
    "--   {allowed, remaining, retry_after_ms, reset_ms, index,\n"            \
    "--    key_id, user_id, username, role}\n"                                \
    "--     allowed         1 or 0\n"                                         \
    "--     remaining       allow: requests of cost 1 left after this one;\n" \
    "--                     deny: 0\n"                                        \
    "--     retry_after_ms  deny: wait this long and the same request\n"      \
    "--                     passes, -1 = never (its cost exceeds B + 1);\n"   \
    "--                     allow: 0\n"                                       \
    "--     reset_ms        until the tightest limit's key is full again\n"   \
    "--     index           the tightest limit, 1-based (KEYS[index + 2]),\n" \
    "--                     0 = no limits; allow: lowest remaining, deny:\n"  \
    "--                     longest retry_after; ties: longer reset, then\n"  \
    "--                     lower index\n"                                    \
    "--     identity        the hash's fields, '' without an API key\n"       \
    "-- Durations are rounded up to whole ms. Revoked, unknown, expired and\n"\
    "-- denied requests consume nothing; an allowed one stores each limit's\n"\
    "-- TAT (unix us) with PX = ceil(ttl / 1000), ttl = TAT - now. A TAT\n"   \
    "-- further ahead than (B + 1) * T (a clock stepped back, a tightened\n"  \
    "-- limit) counts as now + (B + 1) * T and is lowered to that even when\n"\
    "-- the request is denied; a value that is not a decimal integer counts\n"\
    "-- as no state. Lua numbers are doubles: every value stays below 2^53,\n"\
    "-- where they are exact (now <= 2^52).\n"                                \
    "-- Revocation is answered first, before anything that can fail: a\n"     \
    "-- revoked jti gets {2} whatever else is wrong with the call. Then a\n"  \
    "-- malformed call (counts, ranges, a repeated key, a user-keyed limit\n" \
    "-- without KEYS[2]) or a key of the wrong type gives an error reply;\n"  \
    "-- the module then asks EXISTS KEYS[1] on its own.\n"                    \
    "--\n"                                                                    \
    "-- The gateway sends its requests to omni_limit_batch.lua, this\n"       \
    "-- script for many requests (as a function library by FCALL, else by\n"  \
    "-- EVALSHA, and EVAL when Redis has lost it: see there). User-keyed\n"   \
    "-- limit keys are completed here, not declared in KEYS: standalone\n"    \
    "-- Redis only, not Cluster.\n"                                           \
    "\n"                                                                      \
    "local MAX_SPAN = 1125899906842624  -- 2^50\n"                            \
    "local MAX_COST = 1000000\n"                                              \
    "local MAX_NOW = 4503599627370496   -- 2^52: every sum stays below 2^53\n"\
    "local MAX_INT = 9007199254740992   -- 2^53: doubles are exact below\n"   \
    "\n"                                                                      \
    "local function fail(what)\n"                                             \
    "  return redis.error_reply('ERR omni_limit: ' .. what)\n"                \
    "end\n"                                                                   \
    "\n"                                                                      \
    "-- a decimal integer in lo..hi, or nil\n"                                \
    "local function int(s, lo, hi)\n"                                         \
    "  if type(s) ~= 'string' or #s > 16 or not s:find('^%d+$') then\n"       \
    "    return nil\n"                                                        \
    "  end\n"                                                                 \
    "  local v = tonumber(s)\n"                                               \
    "  if v < lo or v > hi then\n"                                            \
    "    return nil\n"                                                        \
    "  end\n"                                                                 \
    "  return v\n"                                                            \
    "end\n"                                                                   \
    "\n"                                                                      \
    "-- floor(a / b) for integers 0 <= a < 2^53, b >= 1, exactly\n"           \
    "local function div(a, b)\n"                                              \
    "  local q = math.floor(a / b)\n"                                         \
    "  if q * b > a then\n"                                                   \
    "    q = q - 1\n"                                                         \
    "  elseif (q + 1) * b <= a then\n"                                        \
    "    q = q + 1\n"                                                         \
    "  end\n"                                                                 \
    "  return q\n"                                                            \
    "end\n"                                                                   \
    "\n"                                                                      \
    "local function ms(us)\n"                                                 \
    "  if us <= 0 then\n"                                                     \
    "    return us\n"                                                         \
    "  end\n"                                                                 \
    "  return div(us + 999, 1000)\n"                                          \
    "end\n"                                                                   \
    "\n"                                                                      \
    "-- first: no later error may hide a revoked token\n"                     \
    "if (KEYS[1] or '') ~= '' and redis.call('EXISTS', KEYS[1]) == 1 then\n"  \
    "  return {2}\n"                                                          \
    "end\n"                                                                   \
    "\n"                                                                      \
    "local n = #KEYS - 2\n"                                                   \
    "if n < 0 or #ARGV ~= 1 + 4 * n then\n"                                   \
    "  return fail('wrong number of keys or arguments')\n"                    \
    "end\n"                                                                   \
    "\n"                                                                      \
    "local now\n"                                                             \
    "if ARGV[1] == '' then\n"                                                 \
    "  local t = redis.call('TIME')\n"                                        \
    "  now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                     \
    "else\n"                                                                  \
    "  now = int(ARGV[1], 0, MAX_NOW)\n"                                      \
    "  if not now then\n"                                                     \
    "    return fail('bad now')\n"                                            \
    "  end\n"                                                                 \
    "end\n"                                                                   \
    "\n"                                                                      \
    "local lim = {}\n"                                                        \
    "for i = 1, n do\n"                                                       \
    "  local t = int(ARGV[4 * i - 2], 1, MAX_SPAN)\n"                         \
    "  local b = int(ARGV[4 * i - 1], 0, MAX_SPAN)\n"                         \
    "  local c = int(ARGV[4 * i], 1, MAX_COST)\n"                             \
    "  local u = ARGV[4 * i + 1]\n"                                           \
    "  if not (t and b and c) or (b + 1) * t > MAX_SPAN\n"                    \
    "      or (u ~= '0' and u ~= '1') then\n"                                 \
    "    return fail('bad limit ' .. i)\n"                                    \
    "  end\n"                                                                 \
    "  if u == '1' and KEYS[2] == '' then\n"                                  \
    "    return fail('user key without an API key')\n"                        \
    "  end\n"                                                                 \
    "  lim[i] = {t = t, b = b, c = c, user = u == '1'}\n"                     \
    "end\n"                                                                   \
    "\n"                                                                      \
    "local id = {'', '', '', ''}\n"                                           \
    "if KEYS[2] ~= '' then\n"                                                 \
    "  local h = redis.call('HMGET', KEYS[2], 'key_id', 'user_id',\n"         \
    "    'username', 'role', 'expires_at')\n"                                 \
    "  if not h[1] or h[1] == '' or not h[2] or h[2] == '' then\n"            \
    "    return {3}\n"                                                        \
    "  end\n"                                                                 \
    "  local e = int(h[5] or '0', 0, MAX_INT)\n"                              \
    "  if not e or (e ~= 0 and e <= div(now, 1000000)) then\n"                \
    "    return {4}\n"                                                        \
    "  end\n"                                                                 \
    "  id = {h[1], h[2], h[3] or '', h[4] or ''}\n"                           \
    "end\n"                                                                   \
    "\n"                                                                      \
    "local keys, seen = {}, {}\n"                                             \
    "for i = 1, n do\n"                                                       \
    "  local k = KEYS[i + 2]\n"                                               \
    "  if lim[i].user then\n"                                                 \
    "    k = k .. id[2]\n"                                                    \
    "  end\n"                                                                 \
    "  if seen[k] then\n"                                                     \
    "    return fail('repeated limit key')\n"                                 \
    "  end\n"                                                                 \
    "  seen[k] = true\n"                                                      \
    "  keys[i] = k\n"                                                         \
    "end\n"                                                                   \
    "\n"                                                                      \
    "-- one limit against its state, as omni_gcra_decide() in omni_gcra.c\n"  \
    "local function decide(l, tat)\n"                                         \
    "  local cap = (l.b + 1) * l.t\n"                                         \
    "  local r = {ok = 0, rem = 0, retry = 0, ttl = 0, tat = tat}\n"          \
    "  local base = math.max(tat, now)\n"                                     \
    "  if base - now > cap then\n"                                            \
    "    base = now + cap\n"                                                  \
    "    r.tat, r.ttl = base, cap\n"                                          \
    "  end\n"                                                                 \
    "  r.reset = base - now\n"                                                \
    "  if l.c > l.b + 1 then\n"                                               \
    "    r.retry = -1\n"                                                      \
    "    return r\n"                                                          \
    "  end\n"                                                                 \
    "  local ahead = base + l.c * l.t - now\n"                                \
    "  if ahead > cap then\n"                                                 \
    "    r.retry = ahead - cap\n"                                             \
    "    return r\n"                                                          \
    "  end\n"                                                                 \
    "  r.ok, r.rem, r.reset, r.ttl = 1, div(cap - ahead, l.t), ahead, ahead\n"\
    "  r.tat = now + ahead\n"                                                 \
    "  return r\n"                                                            \
    "end\n"                                                                   \
    "\n"                                                                      \
    "-- whether a is tighter than b, both allowed or both denied\n"           \
    "local function tighter(a, b)\n"                                          \
    "  if a.ok == 1 then\n"                                                   \
    "    if a.rem ~= b.rem then\n"                                            \
    "      return a.rem < b.rem\n"                                            \
    "    end\n"                                                               \
    "  elseif a.retry ~= b.retry then\n"                                      \
    "    if a.retry == -1 or b.retry == -1 then\n"                            \
    "      return a.retry == -1\n"                                            \
    "    end\n"                                                               \
    "    return a.retry > b.retry\n"                                          \
    "  end\n"                                                                 \
    "  return a.reset > b.reset\n"                                            \
    "end\n"                                                                   \
    "\n"                                                                      \
    "local res, best = {}, nil\n"                                             \
    "for i = 1, n do\n"                                                       \
    "  local v = redis.call('GET', keys[i])\n"                                \
    "  local r = decide(lim[i], v and v:find('^%d+$') and tonumber(v) or 0)\n"\
    "  r.i = i\n"                                                             \
    "  res[i] = r\n"                                                          \
    "  if not best or (r.ok == 0 and best.ok == 1)\n"                         \
    "      or (r.ok == best.ok and tighter(r, best)) then\n"                  \
    "    best = r\n"                                                          \
    "  end\n"                                                                 \
    "end\n"                                                                   \
    "\n"                                                                      \
    "if not best then\n"                                                      \
    "  return {1, 0, 0, 0, 0, id[1], id[2], id[3], id[4]}\n"                  \
    "end\n"                                                                   \
    "\n"                                                                      \
    "for i = 1, n do\n"                                                       \
    "  local r = res[i]\n"                                                    \
    "  if r.ttl > 0 and (best.ok == 1 or r.ok == 0) then\n"                   \
    "    redis.call('SET', keys[i], string.format('%d', r.tat), 'PX',\n"      \
    "      string.format('%d', ms(r.ttl)))\n"                                 \
    "  end\n"                                                                 \
    "end\n"                                                                   \
    "\n"                                                                      \
    "return {best.ok, best.rem, ms(best.retry), ms(best.reset), best.i,\n"    \
    "  id[1], id[2], id[3], id[4]}\n"


#define OMNI_LIMIT_BATCH_LUA                                                  \
    "-- omni_limit_batch.lua: omni_limit.lua for several requests in one\n"   \
    "-- call, so that the requests of an nginx worker that need Redis in\n"   \
    "-- the same event-loop pass share one round trip. Identical requests\n"  \
    "-- (the same KEYS and the same limits: one client's burst on one key,\n" \
    "-- the case rate limiting exists for) come as one group with a count.\n" \
    "-- Each request is decided exactly as a call of omni_limit.lua of its\n" \
    "-- own would decide it, in order (its revocation first, its limits all\n"\
    "-- or nothing); the clock is read once for all. The module embeds this\n"\
    "-- file as OMNI_LIMIT_BATCH_LUA (omni_limit_lua.h, gen_limit_lua.sh);\n" \
    "-- tests/integration/test_limit_batch.py holds the two to the same\n"    \
    "-- replies and the same end state on random request sequences.\n"        \
    "--\n"                                                                    \
    "-- The file defines run(KEYS, ARGV), the call, and is sent in one of\n"  \
    "-- two forms (ngx_http_omni_limit.c makes both):\n"                      \
    "-- - a function library (Redis 7 and later), loaded once per\n"          \
    "--   connection: '#!lua name=omni_limit_<V>' first, then this file,\n"   \
    "--   then redis.register_function('omni_limit_<V>', run), where <V> is\n"\
    "--   the first 16 hex digits of this file's SHA-1; called by FCALL, so\n"\
    "--   what this file defines is made once, not on every call;\n"          \
    "-- - a script, 'return run(KEYS, ARGV)' after this file: EVALSHA, for\n" \
    "--   a Redis without functions, and EVAL when Redis has lost both.\n"    \
    "--\n"                                                                    \
    "-- KEYS      every group's KEYS (as omni_limit.lua's), one after the\n"  \
    "--           other\n"                                                    \
    "-- ARGV[1]   now, unix microseconds, for tests; '' = Redis TIME\n"       \
    "-- ARGV[2]   P, the number of limit lists (\"profiles\") that follow\n"  \
    "-- ARGV[3..] P profiles: n, a number of limits, then its 4 * n ARGV\n"   \
    "--           (omni_limit.lua's ARGV[2..]); the requests of one\n"        \
    "--           location share one\n"                                       \
    "-- ARGV[#]   the groups, two bytes each, in KEYS order: its profile's\n" \
    "--           number, 1..P, then its number of requests, 1..255\n"        \
    "--\n"                                                                    \
    "-- Reply: one flat array, each group's elements in order: {2}, {3} or\n" \
    "-- {4} as one integer, or an error element where a call of its own\n"    \
    "-- would have got an error reply (a malformed profile, a key of the\n"   \
    "-- wrong type), each the answer of every request of the group, the\n"    \
    "-- other groups unaffected; else 0, now, then each limit's state (its\n" \
    "-- TAT, 0 for none, one past now + capacity for any state further\n"     \
    "-- ahead: the same decisions) as the group found it, then key_id,\n"     \
    "-- user_id, username, role only when the group has an API key\n"         \
    "-- (KEYS[2] ~= ''). From those the module decides the group's requests\n"\
    "-- one after the other with omni_gcra_check_all() (omni_gcra.c, held\n"  \
    "-- to omni_limit.lua by test_limit_script.py), as omni_limit.lua\n"      \
    "-- would; the script runs the same requests for the state it leaves.\n"  \
    "-- So Redis's work per request falls as the load rises: a group costs\n" \
    "-- what one request does, and its reply does not grow with it. A\n"      \
    "-- malformed envelope is an error reply for the whole call, before any\n"\
    "-- request runs.\n"                                                      \
    "--\n"                                                                    \
    "-- It is omni_limit.lua written for many requests: Redis is read\n"      \
    "-- through tables that hold each key once (a revoked key's EXISTS, an\n" \
    "-- API key's hash, a limit's TAT as a number; the limit keys named\n"    \
    "-- whole are read by one MGET), each limit key written\n"                \
    "-- is SET once at the end with its last TAT and expiry, a profile is\n"  \
    "-- parsed once per call however many requests use it, and a group\n"     \
    "-- allocates nothing (its reply is appended to the one array). Nothing\n"\
    "-- else runs during the script and Redis's clock stands still in it,\n"  \
    "-- so every request sees what it would have seen after the ones before\n"\
    "-- it, and the keys end as those calls would have left them.\n"          \
    "\n"                                                                      \
    "local MAX_SPAN = 1125899906842624  -- 2^50\n"                            \
    "local MAX_COST = 1000000\n"                                              \
    "local MAX_NOW = 4503599627370496   -- 2^52: every sum stays below 2^53\n"\
    "local MAX_INT = 9007199254740992   -- 2^53: doubles are exact below\n"   \
    "\n"                                                                      \
    "-- this call's KEYS and ARGV, and what it calls: bound by run() (a\n"    \
    "-- function library cannot reach redis.* or Lua's libraries while it\n"  \
    "-- loads, only when called)\n"                                           \
    "local keys, argv\n"                                                      \
    "local call, pcall_redis, error_reply, floor, format, byte, unpk\n"       \
    "\n"                                                                      \
    "local function fail(what)\n"                                             \
    "  return error_reply('ERR omni_limit: ' .. what)\n"                      \
    "end\n"                                                                   \
    "\n"                                                                      \
    "-- an argument's value when a decimal integer of at most 16 digits,\n"   \
    "-- else false, each string parsed once: in a function library, across\n" \
    "-- calls (the limits' strings repeat in every call), 1024 at most\n"     \
    "local dec, ndec = {}, 0\n"                                               \
    "\n"                                                                      \
    "-- a decimal integer in lo..hi, or nil\n"                                \
    "local function int(s, lo, hi)\n"                                         \
    "  local v = dec[s]\n"                                                    \
    "  if v == nil then\n"                                                    \
    "    v = #s <= 16 and s:find('^%d+$') and tonumber(s) or false\n"         \
    "    if ndec == 1024 then\n"                                              \
    "      dec, ndec = {}, 0\n"                                               \
    "    end\n"                                                               \
    "    dec[s], ndec = v, ndec + 1\n"                                        \
    "  end\n"                                                                 \
    "  if v and v >= lo and v <= hi then\n"                                   \
    "    return v\n"                                                          \
    "  end\n"                                                                 \
    "  return nil\n"                                                          \
    "end\n"                                                                   \
    "\n"                                                                      \
    "-- floor(a / b) for integers 0 <= a < 2^53, b >= 1, exactly\n"           \
    "local function div(a, b)\n"                                              \
    "  local q = floor(a / b)\n"                                              \
    "  if q * b > a then\n"                                                   \
    "    q = q - 1\n"                                                         \
    "  elseif (q + 1) * b <= a then\n"                                        \
    "    q = q + 1\n"                                                         \
    "  end\n"                                                                 \
    "  return q\n"                                                            \
    "end\n"                                                                   \
    "\n"                                                                      \
    "local function ms(us)\n"                                                 \
    "  if us <= 0 then\n"                                                     \
    "    return us\n"                                                         \
    "  end\n"                                                                 \
    "  return div(us + 999, 1000)\n"                                          \
    "end\n"                                                                   \
    "\n"                                                                      \
    "-- Redis as this call has left it so far\n"                              \
    "local exists, hashes, tats, pxs, written\n"                              \
    "\n"                                                                      \
    "-- each profile's limits, by profile then limit index; BAD: the error\n" \
    "-- of its first malformed limit, USER1: its first user-keyed limit\n"    \
    "-- before that, each false when none (a call sets each profile it has\n" \
    "-- before reading it)\n"                                                 \
    "local PN, PT, PB, PC, PU, BAD, USER1 = {}, {}, {}, {}, {}, {}, {}\n"     \
    "\n"                                                                      \
    "-- one group's limit keys and states, by limit index, reused\n"          \
    "local K, TAT = {}, {}\n"                                                 \
    "\n"                                                                      \
    "local now, now_s\n"                                                      \
    "\n"                                                                      \
    "-- the reply so far\n"                                                   \
    "local out, o\n"                                                          \
    "\n"                                                                      \
    "-- the cnt requests whose KEYS follow KEYS[k] and whose limits are\n"    \
    "-- profile p's, as omni_limit.lua decides them; their elements go to\n"  \
    "-- the reply\n"                                                          \
    "local function check(k, p, cnt)\n"                                       \
    "  local rk, ak = keys[k + 1], keys[k + 2]\n"                             \
    "\n"                                                                      \
    "  if rk ~= '' then\n"                                                    \
    "    local e = pxs[rk] and 1 or exists[rk]\n"                             \
    "    if e == nil then\n"                                                  \
    "      e = call('EXISTS', rk)\n"                                          \
    "      exists[rk] = e\n"                                                  \
    "    end\n"                                                               \
    "    if e == 1 then\n"                                                    \
    "      o = o + 1\n"                                                       \
    "      out[o] = 2\n"                                                      \
    "      return\n"                                                          \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "\n"                                                                      \
    "  if not now then\n"                                                     \
    "    o = o + 1\n"                                                         \
    "    out[o] = fail('bad now')\n"                                          \
    "    return\n"                                                            \
    "  end\n"                                                                 \
    "\n"                                                                      \
    "  local bad, user1 = BAD[p], USER1[p]\n"                                 \
    "  if user1 and ak == '' then\n"                                          \
    "    o = o + 1\n"                                                         \
    "    out[o] = fail('user key without an API key')\n"                      \
    "    return\n"                                                            \
    "  end\n"                                                                 \
    "  if bad then\n"                                                         \
    "    o = o + 1\n"                                                         \
    "    out[o] = bad\n"                                                      \
    "    return\n"                                                            \
    "  end\n"                                                                 \
    "\n"                                                                      \
    "  local id2\n"                                                           \
    "  if ak ~= '' then\n"                                                    \
    "    local h = hashes[ak]\n"                                              \
    "    if h == nil then\n"                                                  \
    "      h = pcall_redis('HMGET', ak, 'key_id', 'user_id', 'username',\n"   \
    "        'role', 'expires_at')\n"                                         \
    "      hashes[ak] = h\n"                                                  \
    "    end\n"                                                               \
    "    if h.err then\n"                                                     \
    "      o = o + 1\n"                                                       \
    "      out[o] = h\n"                                                      \
    "      return\n"                                                          \
    "    end\n"                                                               \
    "    if not h[1] or h[1] == '' or not h[2] or h[2] == '' then\n"          \
    "      o = o + 1\n"                                                       \
    "      out[o] = 3\n"                                                      \
    "      return\n"                                                          \
    "    end\n"                                                               \
    "    local e = int(h[5] or '0', 0, MAX_INT)\n"                            \
    "    if not e or (e ~= 0 and e <= now_s) then\n"                          \
    "      o = o + 1\n"                                                       \
    "      out[o] = 4\n"                                                      \
    "      return\n"                                                          \
    "    end\n"                                                               \
    "    id2 = h[2]\n"                                                        \
    "  end\n"                                                                 \
    "\n"                                                                      \
    "  local n, T, B, C, U = PN[p], PT[p], PB[p], PC[p], PU[p]\n"             \
    "\n"                                                                      \
    "  for i = 1, n do\n"                                                     \
    "    local key = keys[k + 2 + i]\n"                                       \
    "    if U[i] then\n"                                                      \
    "      key = key .. id2\n"                                                \
    "    end\n"                                                               \
    "    for j = 1, i - 1 do\n"                                               \
    "      if K[j] == key then\n"                                             \
    "        o = o + 1\n"                                                     \
    "        out[o] = fail('repeated limit key')\n"                           \
    "        return\n"                                                        \
    "      end\n"                                                             \
    "    end\n"                                                               \
    "    -- a request that writes its revocation key revokes the next one:\n" \
    "    -- one answer cannot stand for both (the module's keys never meet)\n"\
    "    if key == rk and cnt > 1 then\n"                                     \
    "      o = o + 1\n"                                                       \
    "      out[o] = fail('revocation key is a limit key')\n"                  \
    "      return\n"                                                          \
    "    end\n"                                                               \
    "    K[i] = key\n"                                                        \
    "  end\n"                                                                 \
    "\n"                                                                      \
    "  -- every read before any decision: a key of the wrong type stops the\n"\
    "  -- request with nothing written\n"                                     \
    "  for i = 1, n do\n"                                                     \
    "    local key = K[i]\n"                                                  \
    "    if tats[key] == nil then\n"                                          \
    "      local v = pcall_redis('GET', key)\n"                               \
    "      if type(v) == 'table' then\n"                                      \
    "        o = o + 1\n"                                                     \
    "        out[o] = v\n"                                                    \
    "        return\n"                                                        \
    "      end\n"                                                             \
    "      tats[key] = v and v:find('^%d+$') and tonumber(v) or 0\n"          \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "\n"                                                                      \
    "  -- the group as it finds the limits, for the module to decide\n"       \
    "  o = o + 2\n"                                                           \
    "  out[o - 1], out[o] = 0, now\n"                                         \
    "  for i = 1, n do\n"                                                     \
    "    local tat, far = tats[K[i]], now + (B[i] + 1) * T[i] + 1\n"          \
    "    o = o + 1\n"                                                         \
    "    out[o] = tat < far and tat or far\n"                                 \
    "  end\n"                                                                 \
    "\n"                                                                      \
    "  -- its requests one after the other, each limit as in omni_gcra.c,\n"  \
    "  -- all or nothing, leave the state below. Each allowed one moves\n"    \
    "  -- every TAT on by its cost; the first denied changes nothing the\n"   \
    "  -- next would see, so the rest are denied too. A limit lets the m\n"   \
    "  -- first through whose m costs fit in what its capacity has left\n"    \
    "  -- (none when it is over, and its state ahead of capacity is lowered\n"\
    "  -- to a full debt, as a denial of omni_gcra.c does).\n"                \
    "  local m = cnt\n"                                                       \
    "  for i = 1, n do\n"                                                     \
    "    local t, b, c, tat = T[i], B[i], C[i], tats[K[i]]\n"                 \
    "    local cap = (b + 1) * t\n"                                           \
    "    local base = tat > now and tat or now\n"                             \
    "    local fit = 0\n"                                                     \
    "    if base - now <= cap then\n"                                         \
    "      fit = div(cap - (base - now), c * t)\n"                            \
    "    end\n"                                                               \
    "    TAT[i] = base\n"                                                     \
    "    if fit < m then\n"                                                   \
    "      m = fit\n"                                                         \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  for i = 1, n do\n"                                                     \
    "    local key, cap = K[i], (B[i] + 1) * T[i]\n"                          \
    "    local tat, ttl = TAT[i], 0\n"                                        \
    "    if m > 0 then\n"                                                     \
    "      tat = tat + m * C[i] * T[i]\n"                                     \
    "      ttl = tat - now\n"                                                 \
    "    elseif tat - now > cap then\n"                                       \
    "      tat, ttl = now + cap, cap\n"                                       \
    "    end\n"                                                               \
    "    if ttl > 0 then\n"                                                   \
    "      if not pxs[key] then\n"                                            \
    "        written[#written + 1] = key\n"                                   \
    "      end\n"                                                             \
    "      tats[key], pxs[key] = tat, ms(ttl)\n"                              \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "\n"                                                                      \
    "  if ak ~= '' then\n"                                                    \
    "    local h = hashes[ak]\n"                                              \
    "    out[o + 1], out[o + 2], out[o + 3], out[o + 4] =\n"                  \
    "      h[1], h[2], h[3] or '', h[4] or ''\n"                              \
    "    o = o + 4\n"                                                         \
    "  end\n"                                                                 \
    "end\n"                                                                   \
    "\n"                                                                      \
    "local function bad_batch()\n"                                            \
    "  return error_reply('ERR omni_limit: bad batch')\n"                     \
    "end\n"                                                                   \
    "\n"                                                                      \
    "-- the call: KEYS and ARGV as above; the reply\n"                        \
    "local function run(call_keys, call_argv)\n"                              \
    "  keys, argv = call_keys, call_argv\n"                                   \
    "  if not call then\n"                                                    \
    "    call, pcall_redis, error_reply = redis.call, redis.pcall,\n"         \
    "      redis.error_reply\n"                                               \
    "    floor, format, byte = math.floor, string.format, string.byte\n"      \
    "    unpk = unpack\n"                                                     \
    "  end\n"                                                                 \
    "  exists, hashes, tats, pxs, written = {}, {}, {}, {}, {}\n"             \
    "  out, o, now, now_s = {}, 0, nil, nil\n"                                \
    "\n"                                                                      \
    "  -- the envelope, whole, before any request runs\n"                     \
    "  local nkeys, nargv = #keys, #argv\n"                                   \
    "  local np = nargv >= 3 and tonumber(argv[2])\n"                         \
    "  if not np or np < 0 or np ~= floor(np) then\n"                         \
    "    return bad_batch()\n"                                                \
    "  end\n"                                                                 \
    "  local a = 3\n"                                                         \
    "  for p = 1, np do\n"                                                    \
    "    local n = tonumber(argv[a])\n"                                       \
    "    if not n or n < 0 or n ~= floor(n) or a + 4 * n >= nargv then\n"     \
    "      return bad_batch()\n"                                              \
    "    end\n"                                                               \
    "    local T, B, C, U = {}, {}, {}, {}\n"                                 \
    "    local bad, user1 = false, false\n"                                   \
    "    for i = 1, n do\n"                                                   \
    "      local j = a + 4 * i\n"                                             \
    "      local t = int(argv[j - 3], 1, MAX_SPAN)\n"                         \
    "      local b = int(argv[j - 2], 0, MAX_SPAN)\n"                         \
    "      local c = int(argv[j - 1], 1, MAX_COST)\n"                         \
    "      local u = argv[j]\n"                                               \
    "      if not bad then\n"                                                 \
    "        if not (t and b and c) or (b + 1) * t > MAX_SPAN\n"              \
    "            or (u ~= '0' and u ~= '1') then\n"                           \
    "          bad = fail('bad limit ' .. i)\n"                               \
    "        elseif u == '1' and not user1 then\n"                            \
    "          user1 = i\n"                                                   \
    "        end\n"                                                           \
    "      end\n"                                                             \
    "      T[i], B[i], C[i], U[i] = t, b, c, u == '1'\n"                      \
    "    end\n"                                                               \
    "    PN[p], PT[p], PB[p], PC[p], PU[p], BAD[p], USER1[p] =\n"             \
    "      n, T, B, C, U, bad, user1\n"                                       \
    "    a = a + 1 + 4 * n\n"                                                 \
    "  end\n"                                                                 \
    "\n"                                                                      \
    "  local groups = argv[a]\n"                                              \
    "  local m = a == nargv and #groups or 0\n"                               \
    "  if m == 0 or m % 2 == 1 then\n"                                        \
    "    return bad_batch()\n"                                                \
    "  end\n"                                                                 \
    "  m = m / 2\n"                                                           \
    "  local k = 0\n"                                                         \
    "  for i = 1, m do\n"                                                     \
    "    local p, cnt = byte(groups, 2 * i - 1, 2 * i)\n"                     \
    "    if p < 1 or p > np or cnt < 1 then\n"                                \
    "      return bad_batch()\n"                                              \
    "    end\n"                                                               \
    "    k = k + 2 + PN[p]\n"                                                 \
    "  end\n"                                                                 \
    "  if k ~= nkeys then\n"                                                  \
    "    return bad_batch()\n"                                                \
    "  end\n"                                                                 \
    "\n"                                                                      \
    "  if argv[1] == '' then\n"                                               \
    "    local t = call('TIME')\n"                                            \
    "    now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                   \
    "    if now > MAX_NOW then\n"                                             \
    "      now = nil\n"                                                       \
    "    end\n"                                                               \
    "  else\n"                                                                \
    "    now = int(argv[1], 0, MAX_NOW)\n"                                    \
    "  end\n"                                                                 \
    "  if now then\n"                                                         \
    "    now_s = div(now, 1000000)\n"                                         \
    "  end\n"                                                                 \
    "\n"                                                                      \
    "  -- the limit keys the groups name whole (not completed with an\n"      \
    "  -- API key's user) read at once: one MGET, not a GET each. MGET\n"     \
    "  -- shows a key that is absent or of another type as nil; one EXISTS\n" \
    "  -- over those says they are all absent, else check() GETs each as\n"   \
    "  -- before (an error for the wrong type). Nothing is written before\n"  \
    "  -- the end, so reading early reads the same.\n"                        \
    "  if now then\n"                                                         \
    "    local pre, npre = {}, 0\n"                                           \
    "    k = 0\n"                                                             \
    "    for i = 1, m do\n"                                                   \
    "      local p = byte(groups, 2 * i - 1)\n"                               \
    "      if not BAD[p] then\n"                                              \
    "        local U = PU[p]\n"                                               \
    "        for j = 1, PN[p] do\n"                                           \
    "          local key = keys[k + 2 + j]\n"                                 \
    "          if not U[j] and tats[key] == nil then\n"                       \
    "            tats[key] = false\n"                                         \
    "            npre = npre + 1\n"                                           \
    "            pre[npre] = key\n"                                           \
    "          end\n"                                                         \
    "        end\n"                                                           \
    "      end\n"                                                             \
    "      k = k + 2 + PN[p]\n"                                               \
    "    end\n"                                                               \
    "    if npre > 0 then\n"                                                  \
    "      local v = call('MGET', unpk(pre, 1, npre))\n"                      \
    "      local gone, ngone = {}, 0\n"                                       \
    "      for i = 1, npre do\n"                                              \
    "        local s = v[i]\n"                                                \
    "        if s then\n"                                                     \
    "          tats[pre[i]] = s:find('^%d+$') and tonumber(s) or 0\n"         \
    "        else\n"                                                          \
    "          ngone = ngone + 1\n"                                           \
    "          gone[ngone] = pre[i]\n"                                        \
    "        end\n"                                                           \
    "      end\n"                                                             \
    "      local none = ngone > 0\n"                                          \
    "        and call('EXISTS', unpk(gone, 1, ngone)) == 0\n"                 \
    "      for i = 1, ngone do\n"                                             \
    "        tats[gone[i]] = none and 0 or nil\n"                             \
    "      end\n"                                                             \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "\n"                                                                      \
    "  k = 0\n"                                                               \
    "  for i = 1, m do\n"                                                     \
    "    local p, cnt = byte(groups, 2 * i - 1, 2 * i)\n"                     \
    "    check(k, p, cnt)\n"                                                  \
    "    k = k + 2 + PN[p]\n"                                                 \
    "  end\n"                                                                 \
    "\n"                                                                      \
    "  for i = 1, #written do\n"                                              \
    "    local key = written[i]\n"                                            \
    "    call('SET', key, format('%d', tats[key]), 'PX',\n"                   \
    "      format('%d', pxs[key]))\n"                                         \
    "  end\n"                                                                 \
    "  return out\n"                                                          \
    "end\n"


#endif /* OMNI_LIMIT_LUA_H_INCLUDED_ */
