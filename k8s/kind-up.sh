#!/usr/bin/env bash
# Create the kind cluster and install the add-ons the chart plugs into: Traefik (ingress),
# KEDA and kube-prometheus-stack (Prometheus Operator, Prometheus, Grafana). Idempotent.
# Needs Docker and kind; helm/kubectl come from PATH or .tools/bin (make tools).
# Chart versions: latest unless pinned, e.g. KEDA_CHART_VERSION=2.17.2 make kind-up.
set -euo pipefail
cd "$(dirname "$0")/.."
KIND_CLUSTER="${KIND_CLUSTER:-jobengine}"
HELM="${HELM:-helm}"
KUBECTL="${KUBECTL:-kubectl}"
version() { [[ -n "${1:-}" ]] && echo "--version $1" || true; }

if ! kind get clusters | grep -qx "$KIND_CLUSTER"; then
  kind create cluster --name "$KIND_CLUSTER" --config k8s/kind-config.yaml --wait 120s
fi
"$KUBECTL" config use-context "kind-$KIND_CLUSTER"

"$HELM" repo add traefik https://traefik.github.io/charts --force-update >/dev/null
"$HELM" repo add kedacore https://kedacore.github.io/charts --force-update >/dev/null
"$HELM" repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
"$HELM" repo update >/dev/null

# shellcheck disable=SC2046
"$HELM" upgrade --install traefik traefik/traefik -n traefik --create-namespace \
  -f k8s/traefik-values.yaml $(version "${TRAEFIK_CHART_VERSION:-}") --wait
# shellcheck disable=SC2046
"$HELM" upgrade --install keda kedacore/keda -n keda --create-namespace \
  -f k8s/keda-values.yaml $(version "${KEDA_CHART_VERSION:-}") --wait
# shellcheck disable=SC2046
"$HELM" upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack -n monitoring \
  --create-namespace -f k8s/kube-prometheus-stack-values.yaml $(version "${KPS_CHART_VERSION:-}") --wait --timeout 10m

echo "kind cluster $KIND_CLUSTER is ready: next make images deploy e2e (or tilt up)"
"$HELM" list -A
