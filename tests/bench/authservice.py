"""The auth service Omni replaces, for the `auth_request` baseline: a small
FastAPI app that nginx asks about every request (`auth_request /_auth`).

GET /verify checks the `Authorization: Bearer` JWT with PyJWT (RS256, the
issuer and audience the Omni gateway rows use) and answers 204 with the
identity in X-User-Id / X-User-Username / X-User-Role, or 401. The public
key is parsed once per process, as the gateway does; nothing is cached.

With AUTH_REDIS_URL it also rate-limits each user as a Python auth
service does when it owns the limits: a GCRA limit (AUTH_RATE requests a
second, AUTH_BURST) kept in Redis and checked by one Lua script call per
request (redis-py's asyncio client, a connection pool per process),
answering 429 when the user is over it: the work the gateway's
`omni_limit` does, for the rows that compare it.

Configured from the environment (the bench starts it under uvicorn):
  AUTH_PUBLIC_KEY   path of the PEM public key
  AUTH_ISSUER       required `iss`
  AUTH_AUDIENCE     accepted `aud`
  AUTH_REDIS_URL    redis://:pw@host:port or unix://:pw@/path for the
                    limit, or unset for none
  AUTH_RATE, AUTH_BURST  the limit (requests/s, burst)
"""

import os

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import FastAPI, Header, Response

with open(os.environ["AUTH_PUBLIC_KEY"], "rb") as f:
    PUBLIC_KEY = load_pem_public_key(f.read())
ISSUER = os.environ["AUTH_ISSUER"]
AUDIENCE = os.environ["AUTH_AUDIENCE"]

# GCRA on Redis's clock: KEYS[1] the user's TAT (unix us); ARGV: the
# emission interval T and the burst B in us-units; 1 allowed, else the
# wait in ms
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local T, B = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - B * T
if allow_at > now then
  return -math.ceil((allow_at - now) / 1000)
end
local new = tat + T
redis.call('SET', KEYS[1], string.format('%d', new), 'PX',
           math.max(1, math.ceil((new - now) / 1000)))
return 1
"""
LIMIT = None
if os.environ.get("AUTH_REDIS_URL"):
    import redis.asyncio
    _redis = redis.asyncio.Redis.from_url(os.environ["AUTH_REDIS_URL"])
    LIMIT = _redis.register_script(GCRA)
    INTERVAL_US = max(1, round(1000000 / float(os.environ["AUTH_RATE"])))
    BURST = int(os.environ["AUTH_BURST"])

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


def unauthorized(description):
    return Response(status_code=401, headers={
        "WWW-Authenticate": 'Bearer realm="auth", error="invalid_token", '
                            'error_description="%s"' % description})


@app.get("/verify")
async def verify(authorization: str = Header(default="")):
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return Response(status_code=401,
                        headers={"WWW-Authenticate": 'Bearer realm="auth"'})
    try:
        claims = jwt.decode(token, PUBLIC_KEY, algorithms=["RS256"],
                            issuer=ISSUER, audience=AUDIENCE,
                            options={"require": ["exp", "iss", "aud",
                                                 "sub"]})
    except jwt.ExpiredSignatureError:
        return unauthorized("token expired")
    except jwt.InvalidTokenError:
        return unauthorized("invalid token")
    if LIMIT is not None:
        got = await LIMIT(keys=["authsvc:rl:" + str(claims["sub"])],
                          args=[INTERVAL_US, BURST])
        if got != 1:
            return Response(status_code=429,
                            headers={"Retry-After": str(-got // 1000 + 1)})
    return Response(status_code=204, headers={
        "X-User-Id": str(claims["sub"]),
        "X-User-Username": str(claims.get("preferred_username", "")),
        "X-User-Role": str(claims.get("role", "")),
    })
