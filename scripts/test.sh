#!/usr/bin/env bash
# One command that installs what the tests need and runs every test: formatting and
# clippy (warnings are errors), a short run of every fuzz target, Rust unit +
# integration tests (real webrtc peers, real SQLite), the web client's unit tests, and
# the browser end-to-end test (Chromium, loopback-only netns).
#   sudo ./scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/install-deps.sh --test
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"

# tests/connection_limits.rs holds ~1,600 connections at once: give the tests room
# (root may raise the hard limit; otherwise the soft one goes up to it).
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "== web client: install and build"
npm --prefix web-client ci --no-audit --no-fund --loglevel=error
npm --prefix web-client run build --silent

echo "== rust: format and lints"
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings

echo "== rust: build"
cargo build --locked --workspace --all-targets

echo "== web client: unit tests"
npm --prefix web-client run test:unit --silent

echo "== browser end-to-end (Chromium, loopback-only network namespace)"
OPENHEARING_BIN="$PWD/target/debug/openhearing" npm --prefix web-client test --silent

echo "== fuzz: a short run of every target (make fuzz runs 10 M each; FUZZING.md)"
FUZZ_RUNS="${CI_FUZZ_RUNS:-30000}" fuzz/run.sh

echo "== rust: unit and integration tests"
# --all-targets: unit and integration tests (there are no doc-tests to run)
cargo test --locked --workspace --all-targets
