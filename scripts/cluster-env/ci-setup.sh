#!/usr/bin/env bash
# CI entry for the cluster test tier: build (or reuse) the control-plane binaries and a real
# helm (build-helm.sh, cached under ~/.cache/dynamo-lab/helm/<version>), check that the shared
# charts and CRDs are beside the clone, then prove the control plane starts (etcd ->
# kube-apiserver -> kwok, CRD, fake GPU nodes) and stops again.
#
#   bash scripts/cluster-env/ci-setup.sh
#
# After it succeeds, run the tests with DYNAMO_LAB_REQUIRE_CLUSTER=1 so that a missing build
# fails the cluster tier instead of skipping it. Prints timings for the CI log.
# Env: DYNAMO_LAB_K8S_BIN (binary dir), K8S_VERSION / ETCD_VERSION / KWOK_VERSION, GO.
set -euo pipefail
cd "$(dirname "$0")/../.."
t0=$(date +%s)
# helm and the control plane build in parallel (both are mostly Go compiles; the module
# downloads overlap).
bash scripts/cluster-env/build-helm.sh > "${TMPDIR:-/tmp}/dynamo-lab-helm-path" 2> "${TMPDIR:-/tmp}/dynamo-lab-helm-build.log" &
helm_pid=$!
bash scripts/cluster-env/build.sh >/dev/null
if ! wait "$helm_pid"; then
  cat "${TMPDIR:-/tmp}/dynamo-lab-helm-build.log" >&2
  echo "cluster-env: helm build failed" >&2
  exit 1
fi
grep -v '^go: downloading' "${TMPDIR:-/tmp}/dynamo-lab-helm-build.log" | sed 's/^/cluster-env: /' || true
t1=$(date +%s)
echo "cluster-env: binaries ready in $((t1 - t0))s (${DYNAMO_LAB_K8S_BIN:-$HOME/.cache/dynamo-lab/k8s/${K8S_VERSION:-1.36.3}}, helm $(cat "${TMPDIR:-/tmp}/dynamo-lab-helm-path"))"
"$(cat "${TMPDIR:-/tmp}/dynamo-lab-helm-path")" version --short | sed 's/^/cluster-env: helm /'
# The real charts and CRDs the tier installs come from the shared folder beside the clone.
SHARED="${DYNAMO_LAB_SHARED:-../shared}"
for f in data/charts/nats-2.14.2.tgz data/charts/etcd-12.0.20.tgz data/crds/dgd-v0.5.0.yaml.gz data/crds/dgd-main-2026-08.yaml.gz; do
  [[ -f "$SHARED/$f" ]] || { echo "cluster-env: $SHARED/$f is missing (the cluster tier installs the real charts and CRDs from there; set DYNAMO_LAB_SHARED)" >&2; exit 1; }
done
# The smoke test needs node_modules (tsx, the Kubernetes client). CI runs this script before its
# only `npm ci` (the README's `npm ci && npm test`); there the cluster tier's own start is the check.
if [[ -d node_modules/tsx ]]; then
  CONTROL_PLANE_EXIT_AFTER_START=1 node --import tsx scripts/cluster-env/control-plane.ts | sed 's/^/cluster-env: /'
  t2=$(date +%s)
  echo "cluster-env: control plane start+stop smoke test in $((t2 - t1))s"
else
  echo "cluster-env: no node_modules yet: control plane smoke test left to the cluster tier"
fi
