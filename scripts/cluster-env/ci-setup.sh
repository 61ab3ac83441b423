#!/usr/bin/env bash
# CI entry for the cluster test tier: build (or reuse) the control-plane binaries, then prove
# they start (etcd -> kube-apiserver -> kwok, CRD, fake GPU nodes) and stop again.
#
#   bash scripts/cluster-env/ci-setup.sh
#
# After it succeeds, run the tests with DYNAMO_LAB_REQUIRE_CLUSTER=1 so that a missing build
# fails the cluster tier instead of skipping it. Prints timings for the CI log.
# Env: DYNAMO_LAB_K8S_BIN (binary dir), K8S_VERSION / ETCD_VERSION / KWOK_VERSION, GO.
set -euo pipefail
cd "$(dirname "$0")/../.."
t0=$(date +%s)
bash scripts/cluster-env/build.sh >/dev/null
t1=$(date +%s)
echo "cluster-env: binaries ready in $((t1 - t0))s (${DYNAMO_LAB_K8S_BIN:-$HOME/.cache/dynamo-lab/k8s/${K8S_VERSION:-1.36.3}})"
CONTROL_PLANE_EXIT_AFTER_START=1 node --import tsx scripts/cluster-env/control-plane.ts | sed 's/^/cluster-env: /'
t2=$(date +%s)
echo "cluster-env: control plane start+stop smoke test in $((t2 - t1))s"
