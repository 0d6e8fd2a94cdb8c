#!/usr/bin/env bash
# Prints an access token the local stack's gateway accepts, signed with the
# dev key in the run directory, until the worker's /auth/login exists.
#
#   bash conf/dev-token.sh [ROLE] [SUB]      (defaults: admin, dev-admin)
#
# Uses Debian's python3-jwt (PyJWT). Tokens last one hour.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
run=${OMNI_RUN_DIR:-$repo/.run}
key=$run/keys/jwt-private.pem

[ -r "$key" ] || { echo "dev-token: no $key (run make up first)" >&2; exit 1; }

exec /usr/bin/python3 - "$key" "${1:-admin}" "${2:-dev-admin}" <<'PY'
import secrets, sys, time
import jwt

key, role, sub = sys.argv[1:4]
now = int(time.time())
print(jwt.encode({"iss": "omni", "aud": "omni-api", "sub": sub,
                  "preferred_username": sub, "role": role,
                  "jti": secrets.token_hex(16), "iat": now,
                  "exp": now + 3600},
                 open(key).read(), algorithm="RS256"))
PY
