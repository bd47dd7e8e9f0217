#!/usr/bin/env bash
# Runs every check and test: formatting, lints, unit tests, and the integration suite against
# the local stack (started here if it is not running, and stopped again afterwards).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$TIDEMARK_REPO"

local/install.sh

log "checking formatting and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
log "checking that every crate uses each dependency it declares"
"$TIDEMARK_TOOLS/bin/cargo-machete"

log "checking the deployment descriptions: SAM and Terraform agree; cfn-lint, sam validate, checkov, HCL, terraform fmt"
"$TIDEMARK_IAC_PYTHON" local/py/check_deploy.py
"$TIDEMARK_IAC_PYTHON" local/py/test_check_deploy.py
log "checking the emulator's patch: DynamoDB transactions stay all or nothing"
"$TIDEMARK_PYTHON" local/py/test_moto_server.py
log "checking the independent segment reader against both format versions"
"$TIDEMARK_PYTHON" local/py/test_tidemark_segment.py

log "building the workspace"
cargo build --workspace --all-targets --locked --quiet

if [ -f "$TIDEMARK_STATE/moto.pid" ] && kill -0 "$(cat "$TIDEMARK_STATE/moto.pid")" 2>/dev/null; then
  log "using the local stack that is already running"
else
  trap 'local/down.sh' EXIT
fi
local/up.sh

log "running the tests"
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$TIDEMARK_STATE/test-output.log" || status=$?
# cargo prints one summary per test binary and ends on (empty) doc-test summaries: add them up.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' \
  "$TIDEMARK_STATE/test-output.log"
exit "$status"
