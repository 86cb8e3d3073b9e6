#!/usr/bin/env bash
# Build localhost/python-base:3.11-bookworm (podman) from Debian packages when it is missing: the
# base of both images on machines that reach Debian's mirror but no image registry (CI here).
# Elsewhere use the official python image (the Dockerfiles' default PYTHON_IMAGE).
#
# debootstrap --variant=minbase with python3 (Debian 12: 3.11, the same site-packages paths as the
# python:3.11 images), python3-venv and ca-certificates; the mirror is read from apt's own sources,
# the host's CA bundle is copied in (the registries are reached through a proxy whose CA it holds).
# Cached: does nothing when the image exists (FORCE=1 rebuilds). About 2 minutes, needs root.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
IMAGE="${BASE_IMAGE:-localhost/python-base:3.11-bookworm}"
SUITE=bookworm
# shellcheck source=scripts/container-engine.sh
source "$ROOT/scripts/container-engine.sh"

if [ "$ENGINE" != podman ]; then
  echo "bootstrap-base-image: needs podman (found $ENGINE); with docker use the official python image" >&2
  exit 1
fi
if [ "${FORCE:-0}" != 1 ] && podman image exists "$IMAGE"; then
  echo "$IMAGE"
  exit 0
fi

mirror() {
  # First bookworm (not -security/-updates) URI of apt's sources: deb822 files, then one-line lists.
  local uri
  uri="$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ && u {print u; exit}' \
         /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  if [ -z "$uri" ]; then
    uri="$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' \
           /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)"
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

command -v debootstrap >/dev/null 2>&1 || { echo "bootstrap-base-image: debootstrap missing" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
MIRROR="$(mirror)"
echo "bootstrap-base-image: debootstrap $SUITE from $MIRROR (about 2 minutes)" >&2
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$work/root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
ln -sf python3 "$work/root/usr/bin/python"
cp /etc/ssl/certs/ca-certificates.crt "$work/root/etc/ssl/certs/ca-certificates.crt"
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
tar -C "$work/root" -c . | podman import -q \
  --change "ENV LANG=C.UTF-8" \
  --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt" \
  --change 'CMD ["python3"]' \
  - "$IMAGE" >/dev/null
echo "$IMAGE"
