#!/usr/bin/env bash
# Runs each unit-test binary given as an argument (default: every
# build/unit/**/test_* binary)
# and prints "unit: N passed, N failed". A binary that crashes, prints no
# summary, or exits non-zero with nothing failed (LeakSanitizer exits 23
# after main returns) counts as one more failure.
set -u

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

if [ $# -eq 0 ]; then
    mapfile -t bins < <(find build/unit -type f -name 'test_*' ! -name '*.d' | sort)
    set -- "${bins[@]}"
fi

passed=0
failed=0
for bin in "$@"; do
    name=$(basename "$bin")
    if [ ! -x "$bin" ]; then
        echo "$name: not built" >&2
        failed=$((failed + 1))
        continue
    fi
    out=$("$bin")
    rc=$?
    printf '%s\n' "$out"
    summary=$(printf '%s\n' "$out" | grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$summary" ]; then
        echo "$name: crashed or printed no summary (exit $rc)" >&2
        failed=$((failed + 1))
        continue
    fi
    p=$(printf '%s' "$summary" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1/')
    f=$(printf '%s' "$summary" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\2/')
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "$name: exited $rc after its tests passed (leak or sanitizer report above)" >&2
        failed=$((failed + 1))
    fi
done

echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
