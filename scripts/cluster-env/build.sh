#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, etcd, kwok) from the Go module proxy only.
#
#   scripts/cluster-env/build.sh            # build what is missing, skip what is already built
#   DYNAMO_LAB_K8S_BIN=/some/dir build.sh   # build into another directory
#
# Output directory: ${DYNAMO_LAB_K8S_BIN:-$HOME/.cache/dynamo-lab/k8s/<K8S_VERSION>}
# It also writes kwok-stages.yaml there (assembled from the kwok module in GOMODCACHE at build
# time; nothing from upstream is committed to this repository).
# The heavy compiles run under `nice -n 19`: CI machines are small and shared.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-3.6.10}"
KWOK_VERSION="${KWOK_VERSION:-0.8.0}"
GO="${GO:-}"
if [[ -z "$GO" ]]; then
  if [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; else GO="$(command -v go || true)"; fi
fi
[[ -n "$GO" ]] || { echo "build.sh: Go >= 1.26 is required (set GO=/path/to/go)" >&2; exit 1; }
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0

OUT="${DYNAMO_LAB_K8S_BIN:-$HOME/.cache/dynamo-lab/k8s/$K8S_VERSION}"
mkdir -p "$OUT"
NICE=(nice -n 19)
log() { printf '[cluster-env build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stamp_ok() { # name version
  [[ -x "$OUT/$1" && -f "$OUT/$1.version" && "$(cat "$OUT/$1.version")" == "$2" ]]
}

WORKROOT="$(mktemp -d "${TMPDIR:-/tmp}/dynamo-lab-k8s-build.XXXXXX")"
trap 'rm -rf "$WORKROOT"' EXIT

START=$(date +%s)

# ---- etcd (wrapper module around etcdmain) -------------------------------------------------
if stamp_ok etcd "$ETCD_VERSION"; then
  log "etcd v$ETCD_VERSION already built"
else
  log "building etcd v$ETCD_VERSION"
  t0=$(date +%s)
  mkdir -p "$WORKROOT/etcd" && cd "$WORKROOT/etcd"
  "$GO" mod init etcd-bin.local >/dev/null 2>&1
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  "$GO" get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null
  "$GO" mod tidy >/dev/null
  "${NICE[@]}" "$GO" build -trimpath -ldflags "-s -w" -o "$OUT/etcd" .
  echo "$ETCD_VERSION" > "$OUT/etcd.version"
  log "etcd built in $(( $(date +%s) - t0 ))s"
fi

# ---- kwok ----------------------------------------------------------------------------------
if stamp_ok kwok "$KWOK_VERSION" && [[ -s "$OUT/kwok-stages.yaml" ]]; then
  log "kwok v$KWOK_VERSION already built"
else
  log "building kwok v$KWOK_VERSION"
  t0=$(date +%s)
  GOBIN="$OUT" "${NICE[@]}" "$GO" install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  # Default stages, read from the module cache at build time (not committed to the repo).
  MODDIR="$("$GO" env GOMODCACHE)/sigs.k8s.io/kwok@v$KWOK_VERSION/kustomize/stage"
  : > "$OUT/kwok-stages.yaml.tmp"
  for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [[ -f "$MODDIR/$f" ]] || { log "missing kwok stage $MODDIR/$f"; exit 1; }
    { echo "---"; cat "$MODDIR/$f"; echo; } >> "$OUT/kwok-stages.yaml.tmp"
  done
  mv "$OUT/kwok-stages.yaml.tmp" "$OUT/kwok-stages.yaml"
  echo "$KWOK_VERSION" > "$OUT/kwok.version"
  log "kwok built in $(( $(date +%s) - t0 ))s"
fi

# ---- kube-apiserver (wrapper module mapping staging modules to published tags) ---------------
if stamp_ok kube-apiserver "$K8S_VERSION"; then
  log "kube-apiserver v$K8S_VERSION already built"
else
  log "building kube-apiserver v$K8S_VERSION (the long one: 10-30 min on 2 cores)"
  t0=$(date +%s)
  mkdir -p "$WORKROOT/k8s" && cd "$WORKROOT/k8s"
  "$GO" mod init kube-bins.local >/dev/null 2>&1
  STAGING="v0.${K8S_VERSION#1.}"
  GOMODFILE="$("$GO" mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')"
  mapfile -t STAGED < <("$GO" mod edit -json "$GOMODFILE" | python3 -c '
import json,sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"]["Path"].startswith("./staging/"): print(r["Old"]["Path"])')
  [[ ${#STAGED[@]} -gt 0 ]] || { log "no staging replaces found in $GOMODFILE"; exit 1; }
  args=()
  for m in "${STAGED[@]}"; do args+=("-replace=${m}=${m}@${STAGING}"); done
  "$GO" mod edit "${args[@]}"
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  "$GO" get "k8s.io/kubernetes@v$K8S_VERSION" >/dev/null 2>&1
  "$GO" mod tidy >/dev/null 2>&1 || true
  MINOR="$(cut -d. -f2 <<<"$K8S_VERSION")"
  LDF="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$MINOR -X k8s.io/component-base/version.gitTreeState=clean"
  "${NICE[@]}" "$GO" build -trimpath -ldflags "$LDF" -o "$OUT/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  echo "$K8S_VERSION" > "$OUT/kube-apiserver.version"
  log "kube-apiserver built in $(( $(date +%s) - t0 ))s"
fi

log "done in $(( $(date +%s) - START ))s; binaries in $OUT"
echo "$OUT"
