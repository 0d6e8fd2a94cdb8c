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
for kv in "$@"; do
    case $kv in
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

# it holds secrets (the Redis password): only nginx's master reads it, as
# root or as the user who starts nginx
tmp=$(mktemp "$out.XXXXXX")
printf '%s' "$text" > "$tmp"
chmod 600 "$tmp"
mv -f "$tmp" "$out"
