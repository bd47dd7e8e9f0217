#!/usr/bin/env bash
# Stops the demo's Lambda host and bridge, leaving a stack that was already running as it was.
set -uo pipefail
source "$(dirname "$0")/env.sh"
for name in bridge lambda-host; do
  pidfile="$TIDEMARK_STATE/$name.pid"
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
  rm -f "$pidfile"
done
