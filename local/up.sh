#!/usr/bin/env bash
# Starts the shared local services: the AWS API emulator (S3, DynamoDB, Step Functions) and a
# Kafka-protocol broker. Waits until each answers; fails loudly, with its log, if one does not.
set -euo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p "$TIDEMARK_STATE"

running() { [ -f "$TIDEMARK_STATE/$1.pid" ] && kill -0 "$(cat "$TIDEMARK_STATE/$1.pid")" 2>/dev/null; }
fail_with_log() { echo "---- $TIDEMARK_STATE/$1.log" >&2; tail -n 30 "$TIDEMARK_STATE/$1.log" >&2; die "$2"; }

if ! running moto; then
  log "starting the AWS emulator on 127.0.0.1:$TIDEMARK_MOTO_PORT"
  "$TIDEMARK_VENV/bin/moto_server" -H 127.0.0.1 -p "$TIDEMARK_MOTO_PORT" >"$TIDEMARK_STATE/moto.log" 2>&1 &
  echo $! >"$TIDEMARK_STATE/moto.pid"
fi
for _ in $(seq 150); do
  curl -sf -o /dev/null "$AWS_ENDPOINT_URL/moto-api/" && break
  running moto || fail_with_log moto "the AWS emulator exited"
  sleep 0.2
done
curl -sf -o /dev/null "$AWS_ENDPOINT_URL/moto-api/" || fail_with_log moto "the AWS emulator did not answer within 30 s"
# Step Functions executions run their ASL for real instead of only being recorded.
curl -sf -o /dev/null -X POST "$AWS_ENDPOINT_URL/moto-api/config" \
  -H 'content-type: application/json' -d '{"stepfunctions": {"execute_state_machine": true}}'

if ! running kafka; then
  log "starting the Kafka broker on $TIDEMARK_KAFKA_BOOTSTRAP"
  # nisshi reads a .env in its working directory: give it an empty one of its own.
  mkdir -p "$TIDEMARK_STATE/kafka"
  (cd "$TIDEMARK_STATE/kafka" && exec "$TIDEMARK_TOOLS/bin/nisshi" broker \
      --listener-url "tcp://127.0.0.1:$TIDEMARK_KAFKA_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$TIDEMARK_KAFKA_PORT" \
      --storage-engine memory://tidemark/ --group-initial-rebalance-delay 0s) >"$TIDEMARK_STATE/kafka.log" 2>&1 &
  echo $! >"$TIDEMARK_STATE/kafka.pid"
fi
"$TIDEMARK_PYTHON" "$TIDEMARK_LOCAL_PY" wait-kafka --bootstrap "$TIDEMARK_KAFKA_BOOTSTRAP" --timeout 60 >/dev/null \
  || fail_with_log kafka "the Kafka broker did not answer within 60 s"

cat >"$TIDEMARK_STATE/env" <<ENV
export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
export TIDEMARK_KAFKA_BOOTSTRAP=$TIDEMARK_KAFKA_BOOTSTRAP
ENV
log "local stack up: AWS APIs at $AWS_ENDPOINT_URL, Kafka at $TIDEMARK_KAFKA_BOOTSTRAP"
