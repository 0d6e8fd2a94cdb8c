#!/usr/bin/env bash
# `make bench`: runs tests/bench/bench.py with Debian's python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 tests/bench/bench.py "$@"
