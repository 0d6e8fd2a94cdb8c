#!/usr/bin/env bash
# Builds ngx_http_omni_module.so against Debian's nginx sources (nginx-dev),
# configured like Debian's nginx so that `load_module` accepts it.
#
#   bash ngx_omni_module/build.sh BUILD_DIR
#
# BUILD_DIR is relative to the repository root (or absolute). The sources are
# copied to BUILD_DIR/nginx-src once and configured again only when `config`,
# the flags or the nginx sources change. Quiet on success.
set -euo pipefail

ngx_src=/usr/share/nginx/src
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

if [ $# -ne 1 ]; then
    echo "usage: bash ngx_omni_module/build.sh BUILD_DIR" >&2
    exit 2
fi

case $1 in
    /*) build=$1 ;;
    *)  build=$repo/$1 ;;
esac

src=$build/nginx-src
log=$build/nginx-module.log

if [ ! -f "$ngx_src/conf_flags" ] || [ ! -x "$ngx_src/configure" ]; then
    echo "build.sh: $ngx_src is missing: install nginx-dev (make deps)" >&2
    exit 1
fi

fail() {
    echo "build.sh: $1 failed; its output (kept in $log):" >&2
    cat "$log" >&2
    exit 1
}

# shellcheck source=/dev/null
. "$ngx_src/conf_flags"

# Debian's own --with-cc-opt and --with-ld-opt (nginx -V)
cc_opt="-g -O2 -fstack-protector-strong -Wformat -Werror=format-security"
cc_opt+=" -fPIC -D_FORTIFY_SOURCE=2"
ld_opt="-Wl,-z,relro -Wl,-z,now -fPIC"

args=(
    "${NGX_CONF_FLAGS[@]}"
    "--with-cc-opt=$cc_opt"
    "--with-ld-opt=$ld_opt"
    "--add-dynamic-module=$repo"
)

version=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"$/\1/p' \
    "$ngx_src/src/core/nginx.h")

mkdir -p "$build"

# one build at a time in a build directory
exec 9> "$build/.nginx-module.lock"
flock 9

# a fresh copy when there is none or nginx-dev was upgraded
if [ "$(cat "$src/.omni-source" 2>/dev/null)" != "$version" ]; then
    rm -rf "$src" "$src.tmp"
    cp -a "$ngx_src" "$src.tmp"
    echo "$version" > "$src.tmp/.omni-source"
    mv "$src.tmp" "$src"
fi

stamp=$src/.omni-configured
want=$(printf '%s\n' "$version" "${args[@]}"; cat "$repo/config")

if [ ! -f "$src/objs/Makefile" ] \
   || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]
then
    rm -f "$stamp"
    (cd "$src" && ./configure "${args[@]}") > "$log" 2>&1 || fail configure
    printf '%s\n' "$want" > "$stamp"
fi

# nginx's Makefile must not see the calling make's variables (CFLAGS=...)
(cd "$src" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
     make -j"$(nproc)" -f objs/Makefile modules) > "$log" 2>&1 \
    || fail "make modules"

# a new file, not overwritten in place: a running nginx has the old one mapped
install -m 644 "$src/objs/ngx_http_omni_module.so" \
    "$build/.ngx_http_omni_module.so.tmp"
mv -f "$build/.ngx_http_omni_module.so.tmp" "$build/ngx_http_omni_module.so"
