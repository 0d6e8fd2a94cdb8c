#!/usr/bin/env bash
# Style lint (STYLE.md). The nginx module (and the bench's nginx module,
# tests/bench/rsa_ceiling.c): no tabs, no // comments, no line
# over 80 columns, no trailing whitespace, reported as file:line. Worker
# code: clang-format --dry-run --Werror against the repo's .clang-format,
# and its includes run one way (lib <- io <- http <- services <- core;
# see include_allowed below). Exits non-zero on any finding.
set -u
cd "$(dirname "$0")/.."

# Every worker file is held to .clang-format, and the unit tests, fuzz
# targets and fixtures that build against it (the module's tests follow
# the module's style instead).
shopt -s nullglob globstar
CLANG_FORMAT_FILES=(
    worker/**/*.[ch]
    tests/unit/unit.h
    tests/unit/**/test_*.c
    tests/fuzz/fuzz_*.c
    tests/integration/fixtures/*.c
    tests/bench/outbound_relay.c
)
shopt -u globstar
MODULE_STYLE_TESTS=(tests/unit/test_mod_*.c tests/fuzz/fuzz_jwt.c)

status=0

shopt -s nullglob
module_files=(ngx_omni_module/*.[ch] tests/bench/rsa_ceiling.c)
if [ ${#module_files[@]} -gt 0 ]; then
    # A small C scanner rather than grep: "//" inside a string ("http://")
    # or inside a /* */ comment is not a // comment.
    perl -CSD -e '
        my $bad = 0;
        for my $file (@ARGV) {
            open(my $fh, "<", $file) or die "$file: $!\n";
            my $in_comment = 0;
            while (my $line = <$fh>) {
                chomp $line;
                my $n = $.;
                my @found;
                push @found, "tab" if $line =~ /\t/;
                push @found, "trailing whitespace" if $line =~ /[ \t]+\r?$/;
                push @found, "line is " . length($line) . " columns (max 80)"
                    if length($line) > 80;
                my $i = 0;
                my $len = length($line);
                while ($i < $len) {
                    my $c = substr($line, $i, 1);
                    my $two = substr($line, $i, 2);
                    if ($in_comment) {
                        if ($two eq "*/") { $in_comment = 0; $i += 2; next; }
                        $i++;
                        next;
                    }
                    if ($two eq "/*") { $in_comment = 1; $i += 2; next; }
                    if ($two eq "//") { push @found, "// comment"; last; }
                    if ($c eq "\"" || $c eq "\x27") {
                        my $q = $c;
                        $i++;
                        while ($i < $len) {
                            my $d = substr($line, $i, 1);
                            if ($d eq "\\") { $i += 2; next; }
                            $i++;
                            last if $d eq $q;
                        }
                        next;
                    }
                    $i++;
                }
                for my $what (@found) {
                    print "$file:$n: $what\n";
                    $bad = 1;
                }
            }
            close($fh);
        }
        exit $bad;
    ' "${module_files[@]}" || status=1
fi

if [ -f .clang-format ]; then
    if ! command -v clang-format >/dev/null; then
        echo "lint: clang-format not installed" >&2
        status=1
    else
        for f in "${CLANG_FORMAT_FILES[@]}"; do
            [ -f "$f" ] || continue
            case " ${MODULE_STYLE_TESTS[*]} " in *" $f "*) continue ;; esac
            clang-format --dry-run --Werror "$f" || status=1
        done
    fi
fi

# Which worker header a worker file may include: a folder sees only the
# folders below it (SPEC section 2), and a service sees another service
# only through that service's public header, services/<name>/<name>.h.
include_allowed() {
    local from=$1 inc=$2 layer svc
    layer=${from#worker/src/}
    layer=${layer%%/*}
    case $layer in
    lib) [[ $inc == lib/* ]] ;;
    io) [[ $inc == lib/* || $inc == io/* ]] ;;
    http) [[ $inc == lib/* || $inc == io/* || $inc == http/* ]] ;;
    services)
        svc=${from#worker/src/services/}
        svc=${svc%%/*}
        [[ $inc == lib/* || $inc == io/* || $inc == http/* \
            || $inc == services/$svc/* ]] && return 0
        [[ $inc =~ ^services/([a-z_]+)/([a-z_]+)\.h$ ]] \
            && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]
        ;;
    cli) [[ $inc != core/* ]] ;;
    core) true ;;
    *) false ;;
    esac
}

while IFS= read -r -d '' f; do
    n=0
    while IFS= read -r line; do
        n=$((n + 1))
        [[ $line =~ ^#[[:space:]]*include[[:space:]]+\"([^\"]+)\" ]] || continue
        inc=${BASH_REMATCH[1]}
        if [[ $inc != */* ]]; then
            echo "$f:$n: include \"$inc\" without its folder"
            status=1
        elif [ ! -f "worker/src/$inc" ]; then
            echo "$f:$n: include \"$inc\": no such worker header"
            status=1
        elif ! include_allowed "$f" "$inc"; then
            echo "$f:$n: include \"$inc\" goes against the layers"
            status=1
        fi
    done <"$f"
done < <(find worker/src -name '*.[ch]' -print0)

if [ $status -eq 0 ]; then
    echo "lint: ok"
fi
exit $status
