#!/usr/bin/env bash
# Installs what the local stack needs, pinned, into $TIDEMARK_CACHE (default ~/.cache/tidemark):
# a Python venv with the AWS emulator (moto) and independent clients, one with the deployment
# checkers (SAM CLI, cfn-lint, checkov), cargo-machete, and the nisshi
# Kafka-protocol broker (built from crates.io once, ~14 min on 2 cores, then cached).
set -euo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p "$TIDEMARK_CACHE"

if ! command -v cc >/dev/null || ! command -v make >/dev/null || ! command -v python3 >/dev/null; then
  log "installing build tools from Debian"
  apt-get update -qq && apt-get install -y -qq build-essential python3 python3-venv >/dev/null
fi

if [ ! -x "$TIDEMARK_VENV/bin/python" ]; then
  log "creating the Python venv"
  python3 -m venv "$TIDEMARK_VENV"
fi
if ! "$TIDEMARK_VENV/bin/pip" install -q --disable-pip-version-check -r "$TIDEMARK_REPO/local/py/requirements.txt"; then
  die "pip could not install local/py/requirements.txt"
fi

if [ ! -x "$TIDEMARK_IAC_VENV/bin/python" ]; then
  log "creating the deployment checkers' venv"
  python3 -m venv "$TIDEMARK_IAC_VENV"
fi
if ! "$TIDEMARK_IAC_VENV/bin/pip" install -q --disable-pip-version-check -r "$TIDEMARK_REPO/local/py/requirements-iac.txt"; then
  die "pip could not install local/py/requirements-iac.txt"
fi

# libsql: the SCRAM broker keeps its users in SQLite (memory storage cannot hold them).
nisshi_build="$NISSHI_VERSION dynostore,libsql"
if [ "$(cat "$TIDEMARK_TOOLS/nisshi.build" 2>/dev/null)" != "$nisshi_build" ] || [ ! -x "$TIDEMARK_TOOLS/bin/nisshi" ]; then
  log "building the nisshi $NISSHI_VERSION broker (first time only)"
  CARGO_TARGET_DIR=$TIDEMARK_CACHE/build-nisshi cargo install nisshi --version "$NISSHI_VERSION" \
    --no-default-features --features dynostore,libsql --locked --ignore-rust-version --root "$TIDEMARK_TOOLS" --quiet --force
  echo "$nisshi_build" >"$TIDEMARK_TOOLS/nisshi.build"
fi
if [ "$("$TIDEMARK_TOOLS/bin/cargo-machete" --version 2>/dev/null)" != "$CARGO_MACHETE_VERSION" ]; then
  log "installing cargo-machete $CARGO_MACHETE_VERSION (finds unused dependencies)"
  CARGO_TARGET_DIR=$TIDEMARK_CACHE/build-tools cargo install cargo-machete --version "$CARGO_MACHETE_VERSION" \
    --locked --root "$TIDEMARK_TOOLS" --quiet --force
fi
log "tools ready in $TIDEMARK_CACHE"
