#!/usr/bin/env bash
# Stops what up.sh (and the demo) started. Memory storage: the next start is empty.
set -uo pipefail
source "$(dirname "$0")/env.sh"
for name in bridge lambda-host gateway kafka kafka-tls kafka-scram kafka-scram-setup moto; do
  pidfile="$TIDEMARK_STATE/$name.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
done
log "local stack stopped"
