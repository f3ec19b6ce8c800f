#!/usr/bin/env bash
# Runs the benchmarks (`make bench`): the forwarding micro-benchmarks and the load
# generator's scenarios, OpenHearing side by side with Janus and the UDP-relay floor in
# one network namespace, several interleaved runs each. Writes bench/results/*.json and
# bench/results/summary.md (medians and ratios); BENCHMARKS.md quotes them by hand.
#
# Needs root (network namespace), janus and ffmpeg: scripts/install-deps.sh --bench.
# Knobs (environment): RUNS (3), WINDOW seconds (20), OBSERVERS ("10 50 100"),
# HEARING_OBSERVERS (20), CONFERENCE (5), JOIN_RATE (10 joins/s, the join-time goal's
# rate), PROFILE (1: perf profile of a frame-pointer build of the server),
# MICRO (1: criterion micro-benchmarks), TARGETS ("openhearing janus floor floor-batch"),
# NETNS (1: run the broadcast runs inside Janus's namespace; 0: on the host, no Janus),
# OBSERVER_KIND (full: webrtc peers, ~100 fit; lite: rtc sans-IO observers on one
# thread, several hundred fit — see BENCHMARKS.md "Lite observers").
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
RUNS=${RUNS:-3}
WINDOW=${WINDOW:-20}
OBSERVERS=${OBSERVERS:-"10 50 100"}
HEARING_OBSERVERS=${HEARING_OBSERVERS:-20}
JOIN_RATE=${JOIN_RATE:-10}
CONFERENCE=${CONFERENCE:-5}
PROFILE=${PROFILE:-1}
MICRO=${MICRO:-1}
TARGETS=${TARGETS:-"openhearing janus floor floor-batch"}
NETNS=${NETNS:-1}
OBSERVER_KIND=${OBSERVER_KIND:-full}
out=$PWD/bench/results
mkdir -p "$out"

cargo build --release --bin openhearing
cargo build --release -p openhearing-loadgen
LG=$CARGO_TARGET_DIR/release/openhearing-loadgen
SERVER=$CARGO_TARGET_DIR/release/openhearing

{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse --short HEAD)"
  echo "uptime at start: $(uptime)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) x $(nproc)"
  echo "kernel: $(uname -r)"
  echo "janus: $(janus --version 2>/dev/null | head -1)"
} > "$out/machine.txt"
cat "$out/machine.txt"

# Broadcast: the three targets interleaved, run by run, inside Janus's namespace.
export LG SERVER RUNS WINDOW OBSERVERS TARGETS JOIN_RATE OBSERVER_KIND out
wrap=(bench/janus-netns.sh)
[ "$NETNS" = 1 ] || wrap=(env JANUS_PID=0)
"${wrap[@]}" bash -c '
set -e
for run in $(seq "$RUNS"); do
  for n in $OBSERVERS; do
    for target in $TARGETS; do
      echo "== broadcast $target n=$n run $run ($(cut -d" " -f1-3 /proc/loadavg))" >&2
      "$LG" run --no-progress --target "$target" --scenario broadcast -n "$n" \
        --window "$WINDOW" --join-rate "$JOIN_RATE" --observers "$OBSERVER_KIND" \
        --server-bin "$SERVER" --server-pid "$JANUS_PID" \
        --json "$out/broadcast-$target-$n-run$run.json" || echo "FAILED: $target $n $run" >&2
    done
  done
done'

# Conference and hearing: OpenHearing only (Janus's streaming plugin has no such mode).
for run in $(seq "$RUNS"); do
  "$LG" run --no-progress --scenario conference -n "$CONFERENCE" --window "$WINDOW" \
    --server-bin "$SERVER" --json "$out/conference-openhearing-$CONFERENCE-run$run.json"
  "$LG" run --no-progress --scenario hearing -n "$HEARING_OBSERVERS" --window "$WINDOW" \
    --server-bin "$SERVER" --json "$out/hearing-openhearing-$HEARING_OBSERVERS-run$run.json"
done

# Where the server's time goes at load: a perf profile (software clock; this machine
# has no hardware counters) of the openhearing process during a broadcast, from a
# build with frame pointers and line tables (`--profile profiling`, its own target
# directory) so call chains resolve.
if [ "$PROFILE" = 1 ] && command -v perf >/dev/null; then
  RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR="$CARGO_TARGET_DIR/fp" \
    cargo build --profile profiling --bin openhearing
  n=$(echo $OBSERVERS | awk '{print $NF}')
  perf record -q -e cpu-clock -F 999 -g -a -o "$out/perf.data" -- \
    "$LG" run --no-progress --scenario broadcast -n "$n" --window "$WINDOW" \
    --server-bin "$CARGO_TARGET_DIR/fp/profiling/openhearing" \
    --json "$out/profile-run.json" 2> "$out/perf-record.log" || true
  # The server's threads are named tokio-runtime-w: select them by the pid the run reports.
  pid=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['runs'][0]['server_pid'])" "$out/profile-run.json")
  report() { perf report -i "$out/perf.data" --pid "$pid" --percentage relative --stdio -g none "$@" 2>/dev/null; }
  report --no-children --sort dso,symbol | grep '%' | head -40 | cut -c1-180 > "$out/profile-openhearing.txt" || true
  report --children --sort symbol | grep '%' | head -80 | cut -c1-200 > "$out/profile-openhearing-inclusive.txt" || true
  report --no-children --sort dso | grep '%' | head -10 > "$out/profile-openhearing-dso.txt" || true
  rm -f "$out/perf.data"
fi

if [ "$MICRO" = 1 ]; then
  cargo bench --bench forward -- --noplot 2>&1 | tee "$out/criterion.txt" | grep -E "time:|^[a-z_]+/" || true
fi

echo "uptime at end: $(uptime)" >> "$out/machine.txt"
python3 bench/summarize.py "$out" | tee "$out/summary.md"
