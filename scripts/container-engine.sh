#!/usr/bin/env bash
# Source me: sets ENGINE to docker or podman (CONTAINER_ENGINE overrides) and, for podman, exports
# CONTAINERS_CONF=scripts/containers.conf (runc and the ulimits these VMs need).
# When no docker answers (or CONTAINER_ENGINE=podman) and we are root on Debian, installs podman,
# runc and debootstrap with apt-get (idempotent: nothing happens when they are present), as CI does
# on a fresh clone.
#
#   source scripts/container-engine.sh && "$ENGINE" images
#   bash scripts/container-engine.sh            # install if needed, print the engine
_ce_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

install_podman() {
  local missing=()
  for pkg in podman runc debootstrap; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "container-engine: ${missing[*]} missing (needs root and apt-get to install)" >&2
    return 1
  fi
  apt-cache show "${missing[@]}" >/dev/null 2>&1 || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if [ -n "${CONTAINER_ENGINE:-}" ]; then
  ENGINE="$CONTAINER_ENGINE"
  [ "$ENGINE" = podman ] && { install_podman || true; }
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  ENGINE=docker
else
  install_podman || true
  ENGINE=podman
fi
if [ "$ENGINE" = podman ]; then
  export CONTAINERS_CONF="${CONTAINERS_CONF:-$_ce_root/scripts/containers.conf}"
fi
export ENGINE
if ! command -v "$ENGINE" >/dev/null 2>&1; then
  echo "container-engine: no docker or podman found" >&2
  # shellcheck disable=SC2317  # exit when executed, return when sourced
  return 1 2>/dev/null || exit 1
fi
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "$ENGINE"
fi
