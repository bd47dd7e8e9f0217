#!/usr/bin/env bash
# The throughput benchmark of docs/benchmarks.md, in one command: release binaries (as
# deployed), a freshly started local stack of its own (its own ports and state, so a running
# stack is left alone), the handler's CPU path and the end-to-end paths on one data set, then
# the raw results in benches/results/ and the table in docs/benchmarks.md.
#
#   local/bench.sh [MEGABYTES] [SEED]        # default: 1000 MB of payment records, seed 1
set -euo pipefail
MEGABYTES=${1:-1000}
SEED=${2:-1}
# A stack of its own: other ports, other state directory.
export TIDEMARK_STATE=${TIDEMARK_BENCH_STATE:-$(cd "$(dirname "$0")/.." && pwd)/.local-stack-bench}
export TIDEMARK_MOTO_PORT=${TIDEMARK_BENCH_MOTO_PORT:-14666}
export TIDEMARK_GATEWAY_PORT=${TIDEMARK_BENCH_GATEWAY_PORT:-14667}
export TIDEMARK_KAFKA_PORT=${TIDEMARK_BENCH_KAFKA_PORT:-19192}
export TIDEMARK_KAFKA_TLS_PORT=${TIDEMARK_BENCH_KAFKA_TLS_PORT:-19193}
export TIDEMARK_KAFKA_SCRAM_PORT=${TIDEMARK_BENCH_KAFKA_SCRAM_PORT:-19194}
source "$(dirname "$0")/env.sh"
cd "$TIDEMARK_REPO"

local/install.sh
# A faster S3-compatible store (s3s-fs, in a crate of the bench's own, outside the workspace):
# the backup and restore paths are measured again with S3 on it, to show how much of their
# time is the emulator's.
log "building the benchmark's S3-compatible store"
CARGO_TARGET_DIR=$TIDEMARK_CACHE/build-tools cargo build --release --locked --quiet \
  --manifest-path benches/fast-s3/Cargo.toml
export TIDEMARK_FAST_S3=$TIDEMARK_CACHE/build-tools/release/tidemark-bench-fast-s3

log "building the release binaries and the bench binaries"
# Every binary: the test stack checks for each function it may start, and the restore state
# machine's host registers all of its functions (the drill's too). --workspace keeps one
# feature resolution, so these builds share their dependencies with `cargo bench --workspace`.
cargo build --release --workspace --locked --quiet --bins --bench handler_cpu --bench throughput
# The stack and the bench run the release builds of every function, host and bridge.
export TIDEMARK_BIN=$CARGO_TARGET_DIR/release

local/down.sh >/dev/null 2>&1 || true
trap 'local/down.sh' EXIT
local/up.sh

# Date and commit in the names: a later run, even on the same day, keeps the earlier results.
run=$(date -u +%Y-%m-%d)-$(git rev-parse --short=7 HEAD)
results=benches/results
mkdir -p "$results"
log "handler CPU path on one 6 MB event"
cargo bench --locked --quiet --workspace --bench handler_cpu -- --json "$PWD/$results/$run-handler-cpu.json"
log "end to end: $MEGABYTES MB, seed $SEED"
cargo bench --locked --quiet --workspace --bench throughput -- "$MEGABYTES" "$SEED" --json "$PWD/$results/$run-throughput.json" >/dev/null

log "writing the table into docs/benchmarks.md"
"$TIDEMARK_PYTHON" local/py/bench_table.py --handler "$results/$run-handler-cpu.json" \
  --throughput "$results/$run-throughput.json" --doc docs/benchmarks.md
log "results: $results/$run-handler-cpu.json, $results/$run-throughput.json"
