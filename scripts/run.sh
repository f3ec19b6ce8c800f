#!/usr/bin/env bash
# One command from a fresh Debian/Ubuntu machine to a running server on embedded
# defaults: HTTPS with a self-signed certificate, SQLite and keys in ./data.
#   sudo ./scripts/run.sh [extra `openhearing serve` arguments, e.g. --config FILE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/install-deps.sh
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"

echo "run: building the web client"
npm --prefix web-client ci --no-audit --no-fund --loglevel=error
npm --prefix web-client run build --silent
echo "run: building the server (release)"
cargo build --release --locked --bin openhearing
echo "run: starting; stop with Ctrl-C"
exec ./target/release/openhearing serve "$@"
