#!/usr/bin/env bash
# Make sure `prometheus` and `promtool` are on PATH: Debian's `prometheus` package (2.42 on Debian 12),
# installed with apt-get when missing. Idempotent; needs root (or sudo) only when it installs.
# The package ships a systemd unit: on a machine with systemd it may also start a Prometheus on :9090;
# jobengine's tests and `make run-observed` run their own on 127.0.0.1 with explicit flags and ignore it.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "prometheus is not installed and installing it needs root: apt-get install --no-install-recommends prometheus" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "prometheus is not installed and there is no apt-get: install Prometheus >= 2.42 (prometheus, promtool) on PATH" >&2
  exit 1
fi
# update the package lists only when the package is unknown (a fresh image has none)
if ! apt-cache show prometheus >/dev/null 2>&1; then
  $SUDO apt-get update -qq
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v prometheus >/dev/null && command -v promtool >/dev/null
echo "installed: $(prometheus --version 2>&1 | head -n 1)"
