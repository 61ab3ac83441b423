# ---- GPU check (kubectl and awk; stands in for dynamo-lab check gpu) ----
# lab_gpu_check NEED DGD: allocatable nvidia.com/gpu per node, the pods holding GPUs, and whether
# NEED are free (the lab's own DGD's GPUs count as free: redeploying it reuses them).
lab_gpu_check() {
  local need=$1 dgd=$2 alloc pods used
  kubectl get nodes -o 'custom-columns=NODE:.metadata.name,GPUS:.status.allocatable.nvidia\.com/gpu'
  alloc=$(kubectl get nodes -o 'jsonpath={range .items[*]}{.status.allocatable.nvidia\.com/gpu}{"\n"}{end}' | awk '{ s += $1 } END { print s + 0 }')
  pods=$(kubectl get pods --all-namespaces --field-selector=status.phase!=Succeeded,status.phase!=Failed \
    -o 'jsonpath={range .items[*]}{.metadata.namespace}{"/"}{.metadata.name}{"|"}{.metadata.labels.nvidia\.com/dynamo-graph-deployment-name}{"|"}{range .spec.containers[*]}{.resources.limits.nvidia\.com/gpu}{" "}{end}{"\n"}{end}')
  echo "Pods holding GPUs:"
  awk -F'|' -v dgd="$dgd" '{ n = split($3, g, " "); s = 0; for (i = 1; i <= n; i++) s += g[i]; if (s > 0) printf "  %s  %d GPU(s)%s\n", $1, s, ($2 == dgd ? "  (this lab)" : "") }' <<<"$pods"
  used=$(awk -F'|' -v dgd="$dgd" '$2 != dgd { n = split($3, g, " "); for (i = 1; i <= n; i++) s += g[i] } END { print s + 0 }' <<<"$pods")
  echo "Free GPUs: $((alloc - used)) of $alloc; the lab needs $need"
  (( alloc - used >= need )) || { echo "Not enough free GPUs: delete the deployments listed above (kubectl delete dynamographdeployment <name> -n <namespace>) or deploy fewer workers." >&2; return 1; }
}
