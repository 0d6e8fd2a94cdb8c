#!/usr/bin/env bash
# Renders the nginx configuration template conf/nginx.conf.in.
#
#   bash conf/render.sh OUT KEY=VALUE...
#
# Every @KEY@ in the template is replaced by VALUE. Fails, writing nothing,
# when a KEY is not in the template or a placeholder outside a comment is
# left unfilled.
set -euo pipefail

template=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/nginx.conf.in

if [ $# -lt 1 ]; then
    echo "usage: bash conf/render.sh OUT KEY=VALUE..." >&2
    exit 2
fi

out=$1
shift

# bash 5.2 would otherwise read '&' in a replacement as the matched text
shopt -u patsub_replacement 2> /dev/null || true

text=$(cat "$template"; echo x)
text=${text%x}

for kv in "$@"; do
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

# it holds secrets (the Redis password): only nginx's master reads it, as
# root or as the user who starts nginx
tmp=$(mktemp "$out.XXXXXX")
printf '%s' "$text" > "$tmp"
chmod 600 "$tmp"
mv -f "$tmp" "$out"
