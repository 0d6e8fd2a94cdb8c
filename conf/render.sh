#!/usr/bin/env bash
# Renders the nginx configuration template conf/nginx.conf.in.
#
#   bash conf/render.sh OUT KEY=VALUE...
#
# Every @KEY@ in the template is replaced by VALUE. Fails, writing nothing,
# when a KEY is not in the template or a placeholder outside a comment is
# left unfilled. A few keys mean more than their text:
#
#   WORKER_SOCKET=/path     the worker's unix socket (WORKER_ADDR=unix:/path)
#   WORKER_ADDR=ADDR        where the worker listens: unix:/path or host:port
#                           (TCP: the worker needs OMNI_GATEWAY_SECRET)
#   GATEWAY_SECRET=S        the worker's OMNI_GATEWAY_SECRET, sent on every
#                           proxied request; written (mode 0600) to
#                           gateway-secret.conf beside OUT. Unset: nothing
#                           is sent (a unix socket needs no secret).
#   GATEWAY_SECRET_CONF=F   instead, a file of your own defining
#                           $omni_gateway_secret (a mounted Kubernetes Secret)
#   EVENTS_PUBLISH=ADDR     where nginx takes the worker's events (the
#                           worker's OMNI_EVENTS_PUBLISH): unix:/path or
#                           host:port; default unix:events.sock beside OUT
#   EVENTS_REDIS_URL=U      nchan keeps events in this Redis, shared by the
#                           gateways using it (redis://:password@host:port);
#                           unset: in this nginx's shared memory
#   EVENTS_RECHECK=T        a subscriber is disconnected after T (default
#                           60s) and must reconnect with a valid token
#                           (resuming where it left off)
#   EVENTS_CONF=F           instead of the two above, a file of your own
#                           with nchan's http-level settings
#   UI_DIR=/path            the admin page's built files (`make ui`);
#                           default build/ui in this repository
#   Both generated files are written (mode 0600) beside OUT.
set -euo pipefail

template=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/nginx.conf.in

if [ $# -lt 1 ]; then
    echo "usage: bash conf/render.sh OUT KEY=VALUE..." >&2
    exit 2
fi

out=$1
shift

args=()
worker_socket=
worker_addr=
secret=
secret_conf=
events_publish=
events_redis=
events_recheck=60s
events_conf=
ui_dir=
for kv in "$@"; do
    case $kv in
        EVENTS_PUBLISH=*) events_publish=${kv#*=} ;;
        EVENTS_REDIS_URL=*) events_redis=${kv#*=} ;;
        EVENTS_RECHECK=*) events_recheck=${kv#*=} ;;
        EVENTS_CONF=*) events_conf=${kv#*=} ;;
        UI_DIR=*) ui_dir=${kv#*=} ;;
        WORKER_SOCKET=*) worker_socket=${kv#*=} ;;
        WORKER_ADDR=*) worker_addr=${kv#*=} ;;
        GATEWAY_SECRET=*) secret=${kv#*=} ;;
        GATEWAY_SECRET_CONF=*) secret_conf=${kv#*=} ;;
        *) args+=("$kv") ;;
    esac
done
if [ -z "$worker_addr" ] && [ -n "$worker_socket" ]; then
    worker_addr="unix:$worker_socket"
fi
if [ -n "$worker_addr" ]; then
    args+=("WORKER_ADDR=$worker_addr")
fi
secret_file=
if [ -z "$secret_conf" ]; then
    # the worker accepts the same characters (OMNI_GATEWAY_SECRET)
    if [[ ! $secret =~ ^[A-Za-z0-9._~+/=-]*$ ]]; then
        echo "render.sh: GATEWAY_SECRET: only letters, digits and -._~+/=" >&2
        exit 2
    fi
    secret_file=$(cd "$(dirname "$out")" && pwd -P)/gateway-secret.conf
    secret_conf=$secret_file
fi
args+=("GATEWAY_SECRET_CONF=$secret_conf")

args+=("UI_DIR=${ui_dir:-$(dirname "$(dirname "$template")")/build/ui}")

out_dir=$(cd "$(dirname "$out")" && pwd -P)
args+=("EVENTS_PUBLISH=${events_publish:-unix:$out_dir/events.sock}")
events_file=
if [ -z "$events_conf" ]; then
    if [[ ! $events_recheck =~ ^[1-9][0-9]*[sm]?$ ]]; then
        echo "render.sh: EVENTS_RECHECK: expected a time such as 60s" >&2
        exit 2
    fi
    if [ -n "$events_redis" ] \
        && [[ ! $events_redis =~ ^redis://[A-Za-z0-9._~+/=!%:@-]+$ ]]; then
        echo "render.sh: EVENTS_REDIS_URL: expected" \
            "redis://[:password@]host:port[/db]" >&2
        exit 2
    fi
    events_file=$out_dir/events.conf
    events_conf=$events_file
fi
args+=("EVENTS_CONF=$events_conf")

# bash 5.2 would otherwise read '&' in a replacement as the matched text
shopt -u patsub_replacement 2> /dev/null || true

text=$(cat "$template"; echo x)
text=${text%x}

for kv in "${args[@]}"; do
    key=${kv%%=*}
    value=${kv#*=}

    if [ "$key" = "$kv" ] || [[ ! $key =~ ^[A-Z][A-Z0-9_]*$ ]]; then
        echo "render.sh: '$kv' is not KEY=VALUE (KEY in A-Z, 0-9, _)" >&2
        exit 2
    fi

    if [[ $text != *"@$key@"* ]]; then
        echo "render.sh: $template has no @$key@" >&2
        exit 1
    fi

    text=${text//"@$key@"/"$value"}
done

# shellcheck disable=SC2001 # one pass over all lines
left=$(sed 's/#.*//' <<< "$text" | grep -o '@[A-Z][A-Z0-9_]*@' | sort -u \
    | tr '\n' ' ' || true)

if [ -n "$left" ]; then
    echo "render.sh: no value for: $left" >&2
    exit 1
fi

if [ -n "$secret_file" ]; then
    tmp=$(mktemp "$secret_file.XXXXXX")
    # shellcheck disable=SC2016 # nginx variables, not the shell's
    printf 'map $host $omni_gateway_secret { default "%s"; }\n' "$secret" \
        > "$tmp"
    chmod 600 "$tmp"
    mv -f "$tmp" "$secret_file"
fi

if [ -n "$events_file" ]; then
    tmp=$(mktemp "$events_file.XXXXXX")
    {
        echo "# nchan's settings, written by conf/render.sh"
        echo "nchan_subscriber_timeout $events_recheck;"
        if [ -n "$events_redis" ]; then
            echo "upstream omni_events_redis {"
            echo "    nchan_redis_server \"$events_redis\";"
            echo "}"
            # without this nchan 1.3.6 keeps http-level redis_pass from
            # its locations: every channel would stay in this node's memory
            echo "nchan_redis_pass_inheritable on;"
            echo "nchan_redis_pass omni_events_redis;"
        fi
    } > "$tmp"
    chmod 600 "$tmp"
    mv -f "$tmp" "$events_file"
fi

# it holds secrets (the Redis password): only nginx's master reads it, as
# root or as the user who starts nginx
tmp=$(mktemp "$out.XXXXXX")
printf '%s' "$text" > "$tmp"
chmod 600 "$tmp"
mv -f "$tmp" "$out"
