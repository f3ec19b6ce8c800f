# `make bench`: micro-benchmarks and load-generator runs side by side with Janus and
# the UDP-relay floor (needs root and `scripts/install-deps.sh --bench`).
.PHONY: bench bench-quick
bench:
	scripts/bench.sh

# One short run of each, to check the setup.
bench-quick:
	RUNS=1 WINDOW=5 OBSERVERS=10 HEARING_OBSERVERS=5 CONFERENCE=3 PROFILE=0 MICRO=0 scripts/bench.sh

# `make netbench`: impaired-link scenarios (loss, a 600 kbit/s downlink, a 5 s cut),
# OpenHearing beside a direct browser call over the same link (needs root; see
# bench/netbench.sh and BENCHMARKS.md "Impaired links").
.PHONY: netbench
netbench:
	bench/netbench.sh

# `make fuzz`: every fuzz target for FUZZ_RUNS executions (default 10 M each), on
# the stable toolchain (cargo-fuzz + libFuzzer; see FUZZING.md). `make fuzz
# FUZZ_TARGETS="sdp_offer rtcp"` runs only those.
.PHONY: fuzz soak
FUZZ_RUNS ?= 10000000
fuzz:
	FUZZ_RUNS=$(FUZZ_RUNS) fuzz/run.sh $(FUZZ_TARGETS)

# `make soak`: a 30-minute hearing with participants leaving and rejoining, checked
# for leaks (SOAK_SECS to change; see scripts/soak.sh and BENCHMARKS.md "Soak").
soak:
	scripts/soak.sh
