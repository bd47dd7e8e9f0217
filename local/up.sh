#!/usr/bin/env bash
# Starts the shared local services: the AWS API emulator (S3, DynamoDB, Step Functions) and a
# Kafka-protocol broker. Waits until each answers; fails loudly, with its log, if one does not.
set -euo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p "$TIDEMARK_STATE"

running() { [ -f "$TIDEMARK_STATE/$1.pid" ] && kill -0 "$(cat "$TIDEMARK_STATE/$1.pid")" 2>/dev/null; }
stop_service() {
  local pid; pid=$(cat "$TIDEMARK_STATE/$1.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$TIDEMARK_STATE/$1.pid"
}
fail_with_log() { echo "---- $TIDEMARK_STATE/$1.log" >&2; tail -n 30 "$TIDEMARK_STATE/$1.log" >&2; die "$2"; }

if ! running moto; then
  log "starting the AWS emulator on 127.0.0.1:$TIDEMARK_MOTO_PORT"
  # MOTO_PORT: where its Step Functions executions send their Lambda and S3 calls.
  MOTO_PORT=$TIDEMARK_GATEWAY_PORT "$TIDEMARK_VENV/bin/python" "$TIDEMARK_REPO/local/moto_server.py" -H 127.0.0.1 -p "$TIDEMARK_MOTO_PORT" \
    >"$TIDEMARK_STATE/moto.log" 2>&1 &
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

[ -x "$TIDEMARK_BIN/tidemark-lambda-gateway" ] || die "$TIDEMARK_BIN/tidemark-lambda-gateway is missing: build with cargo build --workspace --bins"
if ! running gateway; then
  log "starting the Step Functions gateway on 127.0.0.1:$TIDEMARK_GATEWAY_PORT"
  "$TIDEMARK_BIN/tidemark-lambda-gateway" --listen "127.0.0.1:$TIDEMARK_GATEWAY_PORT" --upstream "$AWS_ENDPOINT_URL" \
    >"$TIDEMARK_STATE/gateway.log" 2>&1 &
  echo $! >"$TIDEMARK_STATE/gateway.pid"
fi
for _ in $(seq 100); do
  curl -sf -o /dev/null "$TIDEMARK_GATEWAY/moto-api/" && break
  running gateway || fail_with_log gateway "the gateway exited"
  sleep 0.1
done
curl -sf -o /dev/null "$TIDEMARK_GATEWAY/moto-api/" || fail_with_log gateway "the gateway did not pass a request to the emulator within 10 s"

# start_broker NAME PORT [FLAGS...]: one nisshi broker in its own directory (it reads a .env
# in its working directory, so each gets an empty one of its own; BROKER_DIR overrides it).
start_broker() {
  local name=$1 port=$2 dir=$TIDEMARK_STATE/${BROKER_DIR:-$1}; shift 2
  running "$name" && return 0
  log "starting the $name broker on 127.0.0.1:$port"
  mkdir -p "$dir"
  (cd "$dir" && exec "$TIDEMARK_TOOLS/bin/nisshi" broker \
      --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
      --group-initial-rebalance-delay 0s "$@") >"$TIDEMARK_STATE/$name.log" 2>&1 &
  echo $! >"$TIDEMARK_STATE/$name.pid"
}

# A CA and a broker certificate for 127.0.0.1, made once per state directory.
if [ ! -f "$TIDEMARK_CERTS/broker.pem" ]; then
  "$TIDEMARK_PYTHON" "$TIDEMARK_LOCAL_PY" make-certs --dir "$TIDEMARK_CERTS" >/dev/null
fi
tls_flags=(--cert "$TIDEMARK_CERTS/broker.pem" --key "$TIDEMARK_CERTS/broker.key")

start_broker kafka "$TIDEMARK_KAFKA_PORT" --storage-engine memory://tidemark/
start_broker kafka-tls "$TIDEMARK_KAFKA_TLS_PORT" --storage-engine memory://tidemark-tls/ "${tls_flags[@]}"
# SCRAM users need a storage engine that keeps them (SQLite). The broker only takes logged-in
# clients, so the user is created first through a short-lived broker on the same file (the
# path is relative to the broker's directory).
scram_db="sqlite://scram.db"
if ! running kafka-scram; then
  rm -rf "$TIDEMARK_STATE/kafka-scram" && mkdir -p "$TIDEMARK_STATE/kafka-scram"
  BROKER_DIR=kafka-scram start_broker kafka-scram-setup "$TIDEMARK_KAFKA_SCRAM_PORT" --storage-engine "$scram_db"
  "$TIDEMARK_PYTHON" "$TIDEMARK_LOCAL_PY" wait-kafka --bootstrap "$TIDEMARK_KAFKA_SCRAM_BOOTSTRAP" --timeout 60 >/dev/null \
    || fail_with_log kafka-scram-setup "the SCRAM setup broker did not answer within 60 s"
  # The user the tests log in as (tests/src/lib.rs: SCRAM_USER, SCRAM_PASSWORD).
  (cd "$TIDEMARK_STATE/kafka-scram" && "$TIDEMARK_TOOLS/bin/nisshi" user create \
      --broker "tcp://$TIDEMARK_KAFKA_SCRAM_BOOTSTRAP" tidemark tidemark-local-secret) >>"$TIDEMARK_STATE/kafka-scram-setup.log" 2>&1 \
    || fail_with_log kafka-scram-setup "could not create the SCRAM user"
  stop_service kafka-scram-setup
fi
start_broker kafka-scram "$TIDEMARK_KAFKA_SCRAM_PORT" --storage-engine "$scram_db" --authentication "${tls_flags[@]}"

wait_broker() {
  "$TIDEMARK_PYTHON" "$TIDEMARK_LOCAL_PY" wait-kafka --bootstrap "$2" --timeout 60 "${@:3}" >/dev/null \
    || fail_with_log "$1" "the $1 broker did not answer within 60 s"
}
wait_broker kafka "$TIDEMARK_KAFKA_BOOTSTRAP"
wait_broker kafka-tls "$TIDEMARK_KAFKA_TLS_BOOTSTRAP" --ca "$TIDEMARK_CERTS/ca.pem"
wait_broker kafka-scram "$TIDEMARK_KAFKA_SCRAM_BOOTSTRAP" --ca "$TIDEMARK_CERTS/ca.pem" \
  --username tidemark --password tidemark-local-secret

cat >"$TIDEMARK_STATE/env" <<ENV
export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
export TIDEMARK_KAFKA_BOOTSTRAP=$TIDEMARK_KAFKA_BOOTSTRAP
export TIDEMARK_KAFKA_TLS_BOOTSTRAP=$TIDEMARK_KAFKA_TLS_BOOTSTRAP
export TIDEMARK_KAFKA_SCRAM_BOOTSTRAP=$TIDEMARK_KAFKA_SCRAM_BOOTSTRAP
export TIDEMARK_GATEWAY=$TIDEMARK_GATEWAY
ENV
log "local stack up: AWS APIs at $AWS_ENDPOINT_URL, Kafka at $TIDEMARK_KAFKA_BOOTSTRAP"
