"""The auth service Omni replaces, for the `auth_request` baseline: a small
FastAPI app that nginx asks about every request (`auth_request /_auth`).

GET /verify checks the `Authorization: Bearer` JWT with PyJWT (RS256, the
issuer and audience the Omni gateway rows use) and answers 204 with the
identity in X-User-Id / X-User-Username / X-User-Role, or 401. The public
key is parsed once per process, as the gateway does; nothing is cached.

Configured from the environment (the bench starts it under uvicorn):
  AUTH_PUBLIC_KEY   path of the PEM public key
  AUTH_ISSUER       required `iss`
  AUTH_AUDIENCE     accepted `aud`
"""

import os

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import FastAPI, Header, Response

with open(os.environ["AUTH_PUBLIC_KEY"], "rb") as f:
    PUBLIC_KEY = load_pem_public_key(f.read())
ISSUER = os.environ["AUTH_ISSUER"]
AUDIENCE = os.environ["AUTH_AUDIENCE"]

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
    return Response(status_code=204, headers={
        "X-User-Id": str(claims["sub"]),
        "X-User-Username": str(claims.get("preferred_username", "")),
        "X-User-Role": str(claims.get("role", "")),
    })
