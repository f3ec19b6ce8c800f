#!/usr/bin/env bash
# `make soak`: a realistic hearing held for SOAK_SECS (default 30 min) — 6 publishers,
# SOAK_OBSERVERS observers (default 20), recording on, one participant leaving and
# rejoining every 2 s — then checked: RSS growth after the warm-up (goal < 5 %),
# descriptors and media ports back at their baseline after everyone left, one audit
# `join`/`leave` per session, 0 sessions dropped. Exits non-zero when a goal is missed.
#
#   make soak                       30 minutes, release build
#   SOAK_SECS=600 make soak         10 minutes
#   SOAK_PROFILE=dev make soak      debug build (no release build needed; slower server)
#   extra options go to `openhearing-loadgen soak` (see --help): SOAK_ARGS="--observers 10"
#
# The report is printed and written with every sample to target/soak/soak-<time>.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
PROFILE="${SOAK_PROFILE:-release}"
case "$PROFILE" in
    release) DIR=release ;;
    dev | debug) PROFILE=dev DIR=debug ;;
    *) DIR="$PROFILE" ;;
esac
echo "== building openhearing and openhearing-loadgen ($PROFILE)"
cargo build --locked --profile "$PROFILE" -p openhearing --bin openhearing -p openhearing-loadgen --bin openhearing-loadgen
mkdir -p target/soak
out="target/soak/soak-$(date -u +%Y%m%dT%H%M%SZ).json"
echo "== soak: ${SOAK_SECS:-1800} s, report in $out"
# shellcheck disable=SC2086 # SOAK_ARGS is a list of options
"target/$DIR/openhearing-loadgen" soak \
    --secs "${SOAK_SECS:-1800}" \
    --observers "${SOAK_OBSERVERS:-20}" \
    --server-bin "target/$DIR/openhearing" \
    --json "$out" ${SOAK_ARGS:-}
