#!/usr/bin/env bash
# Browser end-to-end test of the web client against the real server.
# Runs everything inside a network namespace that has only loopback, so every
# packet (HTTP, WebSocket, ICE/RTP) stays on 127.0.0.0/8.
#
# Expects (builds nothing):
#   OPENHEARING_BIN  path to the built server (default ../target/debug/openhearing,
#                    relative to web-client/)
#   dist/            the built client (npm run build)
set -euo pipefail

WEB="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$WEB/e2e/run.sh"
cd "$WEB"

if [ -z "${OPENHEARING_E2E_NETNS:-}" ]; then
  export OPENHEARING_E2E_NETNS=1
  if unshare -n true 2>/dev/null; then
    exec unshare -n -- bash "$SELF" "$@"
  else
    # Not root: a user namespace maps us to root inside it.
    exec unshare -r -n -- bash "$SELF" "$@"
  fi
fi

ip link set lo up

export OPENHEARING_BIN="$(realpath -m "${OPENHEARING_BIN:-../target/debug/openhearing}")"
if [ ! -x "$OPENHEARING_BIN" ]; then
  echo "run.sh: server binary not found or not executable: $OPENHEARING_BIN (set OPENHEARING_BIN)" >&2
  exit 2
fi
if [ ! -f dist/index.html ]; then
  echo "run.sh: dist/index.html missing; run 'npm run build' first" >&2
  exit 2
fi
if [ -n "$(ip -o addr show | grep -v ' lo ' || true)" ]; then
  echo "run.sh: refusing to run: interfaces other than loopback are present" >&2
  exit 2
fi

mkdir -p e2e/artifacts
# Arguments, when given, name test files to run instead of all of e2e/.
[ $# -gt 0 ] || set -- e2e/
exec node --test --test-concurrency=1 --test-reporter=spec "$@"
