#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_<name>.c with libFuzzer + ASan/UBSan, replays
# tests/fuzz/regressions/<name>/*, then fuzzes for FUZZ_SECONDS (default 60)
# on a scratch copy of tests/fuzz/corpus/<name> (the checked-in seeds stay
# clean). On a finding the reproducer is copied into
# tests/fuzz/regressions/<name>/ to be committed, and the script exits 1.
set -u
cd "$(dirname "$0")/../.."

# target -> the worker sources it links with (only those: a fuzz binary
# must not drag in the event loop, libpq or main), the pkg-config packages
# (if any) and any extra include directories
declare -A SOURCES=(
    [auth_input]="worker/src/services/auth/auth_input.c"
    [json]="worker/src/lib/arena.c worker/src/lib/json.c"
    [jsonrpc]="worker/src/lib/arena.c worker/src/lib/json.c worker/src/lib/jsonrpc.c"
    [jwt]="ngx_omni_module/omni_b64url.c ngx_omni_module/omni_jwt_*.c ngx_omni_module/omni_jwks.c"
    [jwks]="ngx_omni_module/omni_b64url.c ngx_omni_module/omni_jwt_*.c ngx_omni_module/omni_jwks.c"
    [jwt_json]="ngx_omni_module/omni_b64url.c ngx_omni_module/omni_jwt_*.c ngx_omni_module/omni_jwks.c"
    [httpwire]="worker/src/lib/httpwire.c"
    [sse]="worker/src/lib/sse.c"
    [vectors]="worker/src/lib/arena.c worker/src/lib/json.c worker/src/services/memory/vectors.c"
    [wire]="worker/src/services/chat/wire.c worker/src/lib/sse.c worker/src/lib/json.c worker/src/lib/arena.c"
)
declare -A PKGS=(
    [json]="libevent yajl"
    [jsonrpc]="libevent yajl"
    [vectors]="libevent yajl"
    [wire]="libevent yajl"
    [jwt]="yajl libcrypto"
    [jwks]="yajl libcrypto"
    [jwt_json]="yajl libcrypto"
)
declare -A INCLUDES=(
    [jwt]="-Ingx_omni_module"
    [jwks]="-Ingx_omni_module"
    [jwt_json]="-Ingx_omni_module"
)

CC=${FUZZ_CC:-clang}
SECONDS_EACH=${FUZZ_SECONDS:-60}
OUT=build/fuzz
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer -Iworker/src
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

mkdir -p "$OUT"
status=0

for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    if [ -z "${SOURCES[$name]+set}" ]; then
        echo "fuzz: $src has no entry in the SOURCES table of $0" >&2
        status=1
        continue
    fi

    bin="$OUT/fuzz_$name"
    # shellcheck disable=SC2086 # word splitting of the lists is intended
    if ! $CC $CFLAGS ${INCLUDES[$name]:-} \
        ${PKGS[$name]:+$(pkg-config --cflags ${PKGS[$name]})} \
        -o "$bin" "$src" \
        ${SOURCES[$name]} \
        ${PKGS[$name]:+$(pkg-config --libs ${PKGS[$name]})} -lm; then
        echo "fuzz: $name: build failed" >&2
        status=1
        continue
    fi

    regress="tests/fuzz/regressions/$name"
    mkdir -p "$regress"
    inputs=()
    for f in "$regress"/*; do
        [ -f "$f" ] && inputs+=("$f")
    done
    if [ ${#inputs[@]} -gt 0 ]; then
        echo "fuzz: $name: replaying ${#inputs[@]} regression input(s)"
        if ! "$bin" "${inputs[@]}" >"$OUT/regress-$name.log" 2>&1; then
            tail -n 40 "$OUT/regress-$name.log" >&2
            echo "fuzz: $name: a regression input fails again" >&2
            status=1
            continue
        fi
    fi

    corpus="$OUT/corpus-$name"
    artifacts="$OUT/artifacts-$name"
    rm -rf "$corpus" "$artifacts"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "tests/fuzz/corpus/$name" ]; then
        cp -R "tests/fuzz/corpus/$name/." "$corpus/"
    fi
    dict=()
    if [ -f "tests/fuzz/$name.dict" ]; then
        dict=("-dict=tests/fuzz/$name.dict")
    fi

    echo "fuzz: $name: fuzzing for ${SECONDS_EACH}s"
    "$bin" "$corpus" "${dict[@]}" -max_total_time="$SECONDS_EACH" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$OUT/fuzz-$name.log" 2>&1
    rc=$?
    found=0
    for f in "$artifacts"/*; do
        [ -f "$f" ] || continue
        found=1
        cp "$f" "$regress/"
        echo "fuzz: $name: finding saved as $regress/$(basename "$f")" >&2
    done
    if [ $rc -ne 0 ] || [ $found -ne 0 ]; then
        grep -A 30 -m 1 'ERROR\|runtime error\|deadly signal' \
            "$OUT/fuzz-$name.log" >&2
        echo "fuzz: $name: FAILED (exit $rc, log $OUT/fuzz-$name.log)" >&2
        status=1
    else
        grep -E 'stat::number_of_executed_units|cov:' "$OUT/fuzz-$name.log" \
            | tail -n 2
        echo "fuzz: $name: ok"
    fi
done

exit $status
