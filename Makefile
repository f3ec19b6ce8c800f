# `make bench`: micro-benchmarks and load-generator runs side by side with Janus and
# the UDP-relay floor (needs root and `scripts/install-deps.sh --bench`).
.PHONY: bench bench-quick
bench:
	scripts/bench.sh

# One short run of each, to check the setup.
bench-quick:
	RUNS=1 WINDOW=5 OBSERVERS=10 HEARING_OBSERVERS=5 CONFERENCE=3 PROFILE=0 MICRO=0 scripts/bench.sh
