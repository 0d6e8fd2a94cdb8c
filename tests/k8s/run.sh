#!/usr/bin/env bash
# Offline checks of k8s/ (tests/k8s/check.mjs): `make k8s-check` installs
# the pinned npm tools (tests/k8s/package-lock.json) into build/k8s and
# builds the module first. Arguments select checks or variants by name.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

node_dir=${OMNI_K8S_NODE_DIR:-build/k8s}
if [ ! -d "$node_dir/node_modules/kubernetes-models" ]; then
    echo "tests/k8s/run.sh: no npm tools in $node_dir: run make k8s-check" >&2
    exit 1
fi
# beside node_modules, so that the ES modules find their packages
cp tests/k8s/check.mjs tests/k8s/policy.mjs "$node_dir/"
exec node "$node_dir/check.mjs" "$@"
