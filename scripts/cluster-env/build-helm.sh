#!/usr/bin/env bash
# Builds a real `helm` (Helm 3) from the Go module proxy for the cluster test tier.
#
#   scripts/cluster-env/build-helm.sh          # build if missing; prints the binary's path
#   HELM_VERSION=3.22.0 build-helm.sh          # another 3.x (>= 3.13: `uninstall --ignore-not-found`)
#
# Output: ${DYNAMO_LAB_HELM_DIR:-$HOME/.cache/dynamo-lab/helm/<HELM_VERSION>}/helm, reused when its
# .version stamp matches. `go install helm.sh/helm/v3/cmd/helm@vX` (no replace directives in
# helm's go.mod from 3.7 on); the exact version string is set with -ldflags so that
# `helm version` prints it (a go-installed helm would otherwise print only "v3.22").
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-3.22.0}"
GO="${GO:-}"
if [[ -z "$GO" ]]; then
  if [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; else GO="$(command -v go || true)"; fi
fi
[[ -n "$GO" ]] || { echo "build-helm.sh: Go >= 1.25 is required (set GO=/path/to/go)" >&2; exit 1; }
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0

OUT="${DYNAMO_LAB_HELM_DIR:-$HOME/.cache/dynamo-lab/helm/$HELM_VERSION}"
mkdir -p "$OUT"
log() { printf '[cluster-env helm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ -x "$OUT/helm" && -f "$OUT/helm.version" && "$(cat "$OUT/helm.version")" == "$HELM_VERSION" ]]; then
  log "helm v$HELM_VERSION already built"
else
  log "building helm v$HELM_VERSION (go install helm.sh/helm/v3/cmd/helm)"
  t0=$(date +%s)
  LDF="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
  GOBIN="$OUT" nice -n 19 "$GO" install -trimpath -ldflags "$LDF" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  "$OUT/helm" version --short >/dev/null
  echo "$HELM_VERSION" > "$OUT/helm.version"
  log "helm built in $(( $(date +%s) - t0 ))s"
fi
echo "$OUT/helm"
