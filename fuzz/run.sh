#!/usr/bin/env bash
# Runs every fuzz target (or those named) for a set number of executions and reports
# executions, time and crashes per target. Used by `make fuzz` (10 M each) and by
# scripts/test.sh (a short run). Stable toolchain: cargo-fuzz with libFuzzer, allowed
# the unstable sanitizer-coverage flags through RUSTC_BOOTSTRAP=1.
#
#   fuzz/run.sh [target...]     FUZZ_RUNS=10000000 (executions per target)
#                               FUZZ_MAX_TOTAL_TIME=0 (seconds per target, 0 = no cap)
#
# The corpus a run grows is kept in fuzz/corpus/<target> (not in git) and reused by
# the next run; fuzz/seeds/<target> (in git) is read as well. A crash leaves its input
# in fuzz/artifacts/<target>/ and makes this script exit non-zero.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
FUZZ="$PWD"
RUNS="${FUZZ_RUNS:-10000000}"
MAX_TIME="${FUZZ_MAX_TOTAL_TIME:-0}"
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
# No sanitizer: the code under test is safe Rust, and a panic (index, overflow,
# failed assertion) is what a crash looks like; -a turns on debug assertions and
# overflow checks in the optimised build.
FLAGS=(--sanitizer none --debug-assertions)
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo fuzz list)
fi
echo "== building ${#TARGETS[@]} fuzz targets"
cargo fuzz build "${FLAGS[@]}"

failed=0
summary=()
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t"
    log="$FUZZ/target/fuzz-$t.log"
    echo "== $t: $RUNS executions"
    start=$(date +%s%N)
    status=0
    cargo fuzz run "${FLAGS[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -runs="$RUNS" -max_total_time="$MAX_TIME" -max_len=8192 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
        >"$log" 2>&1 || status=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    secs="$((ms / 1000)).$((ms % 1000 / 100))"
    # (|| true: a run that died before printing its stats still gets its line)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    corpus=$(find "corpus/$t" -type f | wc -l)
    if [ "$status" -ne 0 ]; then
        failed=1
        verdict="CRASH ($(ls "artifacts/$t" | tr '\n' ' '))"
        grep -m 20 -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" || true
    else
        verdict="0 crashes"
    fi
    line=$(printf '%-18s %12s execs %9s s  cov %6s  corpus %5s  %s' \
        "$t" "${execs:-?}" "$secs" "${cov:-?}" "$corpus" "$verdict")
    echo "$line"
    summary+=("$line")
done
echo "== fuzz summary (FUZZ_RUNS=$RUNS)"
printf '%s\n' "${summary[@]}"
exit "$failed"
