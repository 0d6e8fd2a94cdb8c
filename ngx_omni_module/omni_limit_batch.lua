-- omni_limit_batch.lua: omni_limit.lua for several requests in one
-- call, so that the requests of an nginx worker that need Redis in
-- the same event-loop pass share one round trip. The module sends
-- this text with omni_limit.lua's in place of the marker line below:
-- each request runs it as a function of its own KEYS and ARGV, in
-- order, exactly as a call of its own would (its revocation first,
-- its limits all or nothing); the clock is read once for all. The
-- module embeds the parts around the marker as OMNI_LIMIT_BATCH_HEAD
-- and OMNI_LIMIT_BATCH_TAIL (omni_limit_lua.h, gen_limit_lua.sh).
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
-- The requests see Redis through a view that reads each key once and
-- writes it once: a read of a key already read or written in this
-- call is answered from the view, and each key written is SET at the
-- end with its last value and expiry. Nothing else runs during the
-- script and Redis's clock stands still in it, so every request sees
-- what it would have seen after the ones before it, and the keys end
-- as those calls would have left them; requests of one user cost one
-- GET and one SET per limit together instead of each.

local reads = {EXISTS = {}, GET = {}, HMGET = {}}
local writes, written = {}, {}
local view = {error_reply = redis.error_reply}

function view.call(cmd, key, ...)
  if cmd == 'SET' then
    local v, _, px = ...
    if not writes[key] then
      written[#written + 1] = key
    end
    writes[key] = {v, px}
    reads.GET[key] = v
    return
  end
  local seen = reads[cmd]
  if not seen or key == nil then
    return redis.call(cmd, key, ...)
  end
  local v = seen[key]
  if v == nil then
    v = redis.call(cmd, key, ...)
    seen[key] = v
  end
  return v
end

local function one(KEYS, ARGV, redis)
--@omni_limit.lua@
end

local reqs, k, a = {}, 0, 2
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  if not n or n < 0 or n ~= math.floor(n) or a + 4 * n > #ARGV
      or k + 2 + n > #KEYS then
    return redis.error_reply('ERR omni_limit: bad batch')
  end
  reqs[#reqs + 1] = {k = k, a = a, n = n}
  k, a = k + 2 + n, a + 1 + 4 * n
end
if k ~= #KEYS or #reqs == 0 then
  return redis.error_reply('ERR omni_limit: bad batch')
end

local now = ARGV[1]
if now == '' then
  local t = redis.call('TIME')
  now = string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2]))
end

local replies = {}
for i, q in ipairs(reqs) do
  local keys, argv = {}, {now}
  for j = 1, 2 + q.n do
    keys[j] = KEYS[q.k + j]
  end
  for j = 1, 4 * q.n do
    argv[j + 1] = ARGV[q.a + j]
  end
  local ok, r = pcall(one, keys, argv, view)
  if not ok then
    r = redis.error_reply(type(r) == 'table' and r.err or tostring(r))
  end
  replies[i] = r
end

for _, key in ipairs(written) do
  redis.call('SET', key, writes[key][1], 'PX', writes[key][2])
end
return replies
