#!/usr/bin/env bash
# `make bench`: runs tests/bench/bench.py with Debian's python3; the whole
# run (no arguments) also runs the memory store's rows (tests/bench/memory.py,
# results-memory.md), which set up a store of their own.
set -euo pipefail
cd "$(dirname "$0")/../.."
/usr/bin/python3 tests/bench/bench.py "$@"
if [ $# -eq 0 ]; then
    /usr/bin/python3 tests/bench/memory.py
fi
