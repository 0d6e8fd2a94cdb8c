#!/usr/bin/env bash
# The gateway container's entrypoint: prepares nginx's prefix in the pod's
# writable emptyDir (the root filesystem is read-only), fills in the
# omni_redis directive and nchan's Redis (events.conf), then runs nginx in the foreground as this (non-root)
# user. Extra arguments go to nginx (e.g. -t).
#
#   OMNI_NGINX_CONF            nginx.conf from the ConfigMap
#   OMNI_NGINX_PREFIX          the emptyDir: pid, temp files, omni-redis.conf,
#                              events.conf
#   OMNI_REDIS_ADDR            host:port of Redis (resolved when nginx starts)
#   OMNI_REDIS_PASSWORD_FILE   a file of a mounted Secret (may be absent:
#                              no AUTH)
set -euo pipefail

conf=${OMNI_NGINX_CONF:-/etc/omni/nginx/nginx.conf}
prefix=${OMNI_NGINX_PREFIX:-/run/omni-gateway}
redis_in=$(dirname "$conf")/omni-redis.conf.in
events_in=$(dirname "$conf")/events.conf.in
pwfile=${OMNI_REDIS_PASSWORD_FILE:-/etc/omni/redis/password}

fail() {
    echo "omni-gateway: $*" >&2
    exit 1
}

[ -n "${OMNI_REDIS_ADDR:-}" ] || fail "OMNI_REDIS_ADDR is not set"
[[ $OMNI_REDIS_ADDR =~ ^[A-Za-z0-9.:_-]+$ ]] \
    || fail "OMNI_REDIS_ADDR: expected host:port"

password=
if [ -f "$pwfile" ]; then
    password=$(cat "$pwfile")
fi
# one nginx token: no white space, quotes, ';' or braces
[[ $password =~ ^[A-Za-z0-9._~+/=!@%^*,:-]*$ ]] \
    || fail "$pwfile: the Redis password has characters nginx cannot take" \
        "unquoted (letters, digits and ._~+/=!@%^*,:- only)"

mkdir -p "$prefix/tmp"
# logs to the container's stdout and stderr (kubectl logs)
ln -sfn /dev/stderr "$prefix/error.log"
ln -sfn /dev/stdout "$prefix/access.log"

shopt -u patsub_replacement 2> /dev/null || true
text=$(cat "$redis_in")
text=${text//"@REDIS_ADDR@"/"$OMNI_REDIS_ADDR"}
text=${text//"@REDIS_PASSWORD@"/"$password"}
umask 077
printf '%s\n' "$text" > "$prefix/omni-redis.conf.tmp"
mv -f "$prefix/omni-redis.conf.tmp" "$prefix/omni-redis.conf"

# nchan's channels in the same Redis
if [ -f "$events_in" ]; then
    url="redis://$OMNI_REDIS_ADDR"
    if [ -n "$password" ]; then
        url="redis://:$password@$OMNI_REDIS_ADDR"
    fi
    text=$(cat "$events_in")
    text=${text//"@REDIS_URL@"/"$url"}
    printf '%s\n' "$text" > "$prefix/events.conf.tmp"
    mv -f "$prefix/events.conf.tmp" "$prefix/events.conf"
fi

exec nginx -p "$prefix" -c "$conf" -e stderr -g 'daemon off;' "$@"
