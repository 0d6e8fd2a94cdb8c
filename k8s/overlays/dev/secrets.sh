#!/usr/bin/env bash
# Creates the Secrets the dev overlay mounts, with fresh values: a
# self-signed TLS certificate, the gateway<->worker secret, an RS256
# signing key pair, the Redis and Postgres passwords. For a dev cluster
# only: production Secrets come from your secret store (README
# "Deployment"). Keeps existing Secrets unless --force.
#
#   bash k8s/overlays/dev/secrets.sh [--force]
set -euo pipefail

ns=${OMNI_NAMESPACE:-omni}
force=${1:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

have() {
    [ "$force" != --force ] && kubectl -n "$ns" get secret "$1" > /dev/null 2>&1
}

apply() {
    kubectl -n "$ns" create secret "$@" --dry-run=client -o yaml \
        | kubectl -n "$ns" apply -f -
}

kubectl get namespace "$ns" > /dev/null 2>&1 || kubectl create namespace "$ns"

if ! have omni-tls; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=localhost \
        -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2> /dev/null
    apply tls omni-tls --cert="$tmp/tls.crt" --key="$tmp/tls.key"
fi

# one value, two forms: raw for the worker, an nginx map for the gateway
if ! have omni-gateway-secret; then
    s=$(openssl rand -hex 32)
    printf '%s\n' "$s" > "$tmp/gateway-secret"
    # shellcheck disable=SC2016 # nginx variables, not the shell's
    printf 'map $host $omni_gateway_secret { default "%s"; }\n' "$s" \
        > "$tmp/gateway-secret.conf"
    apply generic omni-gateway-secret \
        --from-file=gateway-secret="$tmp/gateway-secret" \
        --from-file=gateway-secret.conf="$tmp/gateway-secret.conf"
fi

if ! have omni-jwt; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
        -out "$tmp/jwt-private.pem" 2> /dev/null
    openssl pkey -in "$tmp/jwt-private.pem" -pubout -out "$tmp/jwt-public.pem"
    apply generic omni-jwt \
        --from-file=jwt-private.pem="$tmp/jwt-private.pem" \
        --from-file=jwt-public.pem="$tmp/jwt-public.pem"
fi

if ! have omni-redis; then
    apply generic omni-redis --from-literal=password="$(openssl rand -hex 24)"
fi

if ! have omni-postgres; then
    apply generic omni-postgres --type=kubernetes.io/basic-auth \
        --from-literal=username=omni \
        --from-literal=password="$(openssl rand -hex 24)"
fi
