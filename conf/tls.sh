#!/usr/bin/env bash
# A self-signed TLS certificate for the local stack: DIR/cert.pem, DIR/key.pem
# for localhost and 127.0.0.1. Kept when both files already exist.
#
#   bash conf/tls.sh DIR
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: bash conf/tls.sh DIR" >&2
    exit 2
fi

dir=$1

if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ]; then
    exit 0
fi

mkdir -p "$dir"
umask 077

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -days 825 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$dir/key.pem.tmp" -out "$dir/cert.pem.tmp" 2> "$dir/tls.err" \
    || { cat "$dir/tls.err" >&2; rm -f "$dir"/*.tmp; exit 1; }

rm -f "$dir/tls.err"
chmod 644 "$dir/cert.pem.tmp"
mv -f "$dir/key.pem.tmp" "$dir/key.pem"
mv -f "$dir/cert.pem.tmp" "$dir/cert.pem"
