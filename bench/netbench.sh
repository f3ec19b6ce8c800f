#!/usr/bin/env bash
# `make netbench`: the impaired-link scenarios of issue 13, OpenHearing beside a direct
# Chromium-to-Chromium call over the same link (web-client/e2e/netbench.mjs). Runs in
# a network namespace of its own with only loopback (every address is 127.x), as root.
# Builds the release server and the web client first. RUNS, WINDOW_S, WARMUP_S and
# SCENARIOS (clean,loss3,loss10,down600,cut5) are passed through.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${OPENHEARING_NETBENCH_NETNS:-}" ]; then
  cd "$REPO"
  cargo build --release --bin openhearing
  npm --prefix web-client ci --no-audit --no-fund >/dev/null
  npm --prefix web-client run build >/dev/null
  export OPENHEARING_NETBENCH_NETNS=1
  exec unshare -n -- bash "$REPO/bench/netbench.sh" "$@"
fi
ip link set lo up
export OPENHEARING_BIN="${OPENHEARING_BIN:-$REPO/target/release/openhearing}"
cd "$REPO/web-client"
exec node e2e/netbench.mjs
