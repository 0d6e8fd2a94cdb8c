-- The gateway benchmark's measured limit ceiling
-- (tests/bench/gateway.py; make
-- build/limit-ceiling/ngx_http_omni_module.so): the module built
-- with this file in place of omni_limit_batch.lua. It does only the
-- Redis commands a decision needs, for the bench's requests (one
-- profile, a jti, no API key, none denied): TIME once, then per group
-- EXISTS on its revocation key, GET and SET PX of each limit's TAT,
-- and the reply the module decides from (0, now, each TAT). No checks
-- of the envelope, no API keys, no denials, no reads shared
-- between groups: what is left is the round trip and the unavoidable
-- commands.
-- Never for serving: it trusts its caller.

local function run(keys, argv)
  local call, format, floor = redis.call, string.format, math.floor
  local t = call('TIME')
  local now = t[1] * 1000000 + t[2]
  local n = tonumber(argv[3])
  local groups = argv[4 + 4 * n]
  local out, o, k = {}, 0, 0
  for g = 1, #groups / 2 do
    local cnt = string.byte(groups, 2 * g)
    local rk = keys[k + 1]
    if rk ~= '' and call('EXISTS', rk) == 1 then
      o = o + 1
      out[o] = 2
    else
      o = o + 2
      out[o - 1], out[o] = 0, now
      for i = 1, n do
        local key = keys[k + 2 + i]
        local T = tonumber(argv[4 * i])
        local C = tonumber(argv[4 * i + 2])
        local tat = tonumber(call('GET', key)) or 0
        o = o + 1
        out[o] = tat
        local new = (tat > now and tat or now) + cnt * C * T
        call('SET', key, format('%d', new), 'PX',
          format('%d', floor((new - now) / 1000) + 1))
      end
    end
    k = k + 2 + n
  end
  return out
end
