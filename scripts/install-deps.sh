#!/usr/bin/env bash
# Installs what OpenHearing needs on Debian/Ubuntu. Idempotent.
#   scripts/install-deps.sh          build and run the server
#   scripts/install-deps.sh --test   also what the tests need (ffmpeg, chromium, nftables)
#   scripts/install-deps.sh --bench  also what `make bench` needs (ffmpeg, janus, perf)
set -euo pipefail

want_test=0
want_bench=0
[ "${1:-}" = "--test" ] && want_test=1
[ "${1:-}" = "--bench" ] && want_bench=1

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install-deps: run as root (or install sudo)" >&2; exit 1
  fi
fi

pkgs=(ca-certificates curl pkg-config build-essential iproute2 util-linux)
# FFmpeg development files and libclang: the recorder (ffmpeg-next) builds against them.
pkgs+=(libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libavdevice-dev
       libswscale-dev libswresample-dev libclang-dev)
# A font for the name/role labels and gap slates of `openhearing archive render`.
pkgs+=(fonts-dejavu-core)
if [ "$want_test" = 1 ]; then
  # ffmpeg encodes the real VP8/Opus clips test participants send; chromium runs
  # the browser end-to-end test; nftables impairs the link of its network test
  # (e2e/netns.mjs: loss, UDP-blocking firewall; with iproute2's tc and the kernel's
  # veth and ifb devices).
  # systemd: systemd-analyze verifies the packaged unit (tests/packaging.rs)
  pkgs+=(ffmpeg chromium nftables systemd)
fi
if [ "$want_bench" = 1 ]; then
  # ffmpeg encodes the load generator's clips; Janus 1.1 is the reference server the
  # benchmarks compare with; perf profiles the server at load.
  pkgs+=(ffmpeg janus linux-perf python3)
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "install-deps: Node.js >= 20 is needed for the web client build (found $(node --version 2>/dev/null || echo none))." >&2
  echo "  Install Node.js 20 or newer (e.g. from your distribution's backports or nodejs.org) and run again." >&2
  exit 1
fi

if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "install-deps: installing the Rust toolchain with rustup"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
# The test command checks formatting and lints: rustup's minimal profile lacks both.
if [ "$want_test" = 1 ] && command -v rustup >/dev/null; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
fi
echo "install-deps: ok (cargo $(cargo --version | cut -d' ' -f2), node $(node --version))"
