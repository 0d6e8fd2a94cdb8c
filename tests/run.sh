#!/usr/bin/env bash
# `make test`: the C unit tests (binaries given as arguments), then the
# integration suite against real nginx, Postgres and Redis. Ends with one
# line "N passed, N failed" over both; exits non-zero if anything failed.
#
#   bash tests/run.sh build/unit/lib/test_json build/unit/test_mod_jwt ...
set -u

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PYTHONDONTWRITEBYTECODE=1

log=$(mktemp -d "${TMPDIR:-/tmp}/omni-tests.XXXXXX")
trap 'rm -rf "$log"' EXIT

passed=0
failed=0

# count N from "N <word>" in a summary line, 0 when absent
count() {
    local n
    n=$(printf '%s\n' "$2" | grep -oE "(^|[ ,])[0-9]+ $1\b" | grep -oE '[0-9]+' \
        | tail -n 1)
    echo "${n:-0}"
}

# --- unit ---------------------------------------------------------------

bash tests/unit/run.sh "$@" 2>&1 | tee "$log/unit"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^unit: [0-9]+ passed, [0-9]+ failed$' "$log/unit" | tail -n 1)
if [ -z "$summary" ]; then
    echo "run.sh: tests/unit/run.sh printed no summary (exit $rc)" >&2
    failed=$((failed + 1))
else
    p=$(count passed "$summary")
    f=$(count failed "$summary")
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "run.sh: tests/unit/run.sh exited $rc with nothing failed" >&2
        failed=$((failed + 1))
    fi
fi

# --- integration ----------------------------------------------------------

/usr/bin/python3 -m pytest tests/integration -q -p no:cacheprovider \
    -o console_output_style=classic 2>&1 | tee "$log/integration"
rc=${PIPESTATUS[0]}
# pytest's last line: "3 failed, 40 passed, 1 error in 12.34s" (any order)
summary=$(grep -E '[0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?).* in [0-9.]+s' \
    "$log/integration" | tail -n 1)
p=$(count passed "$summary")
f=$(count failed "$summary")
e=$(count 'errors?' "$summary")
passed=$((passed + p))
failed=$((failed + f + e))
if [ "$rc" -eq 5 ]; then
    echo "run.sh: pytest collected no tests" >&2
    failed=$((failed + 1))
elif [ "$rc" -ne 0 ] && [ $((f + e)) -eq 0 ]; then
    echo "run.sh: pytest exited $rc with nothing failed" >&2
    failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
