#!/usr/bin/env bash
# Development JWT signing keys (RS256: RSA 2048): DIR/jwt-private.pem (mode
# 600) and DIR/jwt-public.pem. An existing private key is kept.
#
#   bash conf/keys.sh DIR
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: bash conf/keys.sh DIR" >&2
    exit 2
fi

dir=$1
private=$dir/jwt-private.pem
public=$dir/jwt-public.pem

mkdir -p "$dir"
umask 077

if [ ! -s "$private" ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
        -out "$private.tmp" 2> /dev/null \
        || { rm -f "$private.tmp"; echo "keys.sh: openssl genpkey failed" >&2;
             exit 1; }
    mv -f "$private.tmp" "$private"
    rm -f "$public"
fi

chmod 600 "$private"

if [ ! -s "$public" ]; then
    openssl pkey -in "$private" -pubout -out "$public.tmp"
    chmod 644 "$public.tmp"
    mv -f "$public.tmp" "$public"
fi
