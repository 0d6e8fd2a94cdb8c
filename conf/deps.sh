#!/usr/bin/env bash
# Installs the Debian packages Omni needs to build, run and test (SPEC 3).
# Idempotent and silent when everything is already installed.
set -euo pipefail

packages=(
    # build
    nginx nginx-dev libjwt-dev libyajl-dev libhiredis-dev libpq-dev
    libssl-dev libevent-dev libcurl4-openssl-dev pkg-config make gcc
    # run
    postgresql redis-server redis-sentinel libnginx-mod-nchan openssl
    # test, benchmark, fuzz
    python3-pytest python3-requests python3-jwt python3-websocket
    python3-psycopg2 python3-redis python3-passlib wrk clang
    libclang-rt-14-dev valgrind
    # the admin page's browser tests (tests/integration/test_admin_ui.py)
    chromium
    # the Kubernetes manifests' checks (tests/k8s)
    yamllint
    # the auth_request baseline's auth service (tests/bench/authservice.py),
    # with what `pip install uvicorn[standard]` adds: uvloop, httptools
    python3-fastapi python3-uvicorn python3-uvloop python3-httptools
)

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

# Node for the npm-pinned test tools (tests/k8s): any node 20 and npm on
# PATH will do (a machine may carry its own nodejs, which Debian's npm
# package would conflict with)
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
    missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo > /dev/null; then
    sudo=(sudo)
else
    echo "deps.sh: missing packages: ${missing[*]}" >&2
    echo "deps.sh: not root and no sudo: install them as root" >&2
    exit 1
fi

echo "deps.sh: installing ${missing[*]}"
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
