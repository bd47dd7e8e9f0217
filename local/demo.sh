#!/usr/bin/env bash
# The local demo, the whole disaster: payment events are produced to `payments.captured` and
# backed up by the real backup-writer Lambda binary (fed by the event-source bridge); the
# consumer group `payment-processor` commits its progress and the real offset-snapshotter takes
# a snapshot ("14:29"); then a bad deploy writes garbage ("14:30"), which is backed up too.
# The restore state machine (the repository's ASL, run by the emulator's Step Functions with
# the real restore binaries) restores the topic to the moment before the garbage into
# `payments.captured.restored` and puts `payment-processor` back where it stood.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$TIDEMARK_REPO"

local/install.sh
log "building the functions and local tools"
cargo build --workspace --bins --locked --quiet

if [ -f "$TIDEMARK_STATE/moto.pid" ] && kill -0 "$(cat "$TIDEMARK_STATE/moto.pid")" 2>/dev/null; then
  trap 'local/down-demo.sh' EXIT
else
  trap 'local/down.sh' EXIT
fi
local/up.sh

run=$(date +%Y%m%d%H%M%S)
bucket=tidemark-demo-$run
table=tidemark-demo-$run
backup_id=payments-prod
topic=payments.captured
lambda_port=${TIDEMARK_LAMBDA_PORT:-19001}
py() { "$TIDEMARK_PYTHON" "$TIDEMARK_LOCAL_PY" "$@"; }

log "creating bucket and index table $bucket, topic $topic (4 partitions)"
py create-storage --endpoint "$AWS_ENDPOINT_URL" --bucket "$bucket" --table "$table" >/dev/null
# A running stack may still hold the topic of an earlier run: the story starts from an empty one.
py delete-topic --bootstrap "$TIDEMARK_KAFKA_BOOTSTRAP" --topic "$topic" --if-exists >/dev/null
py create-topic --bootstrap "$TIDEMARK_KAFKA_BOOTSTRAP" --topic "$topic" --partitions 4 >/dev/null
log "creating a KMS key: segments are sealed client-side (AES-256-GCM) on top of the bucket's encryption"
kms_key=$(py create-kms-key --endpoint "$AWS_ENDPOINT_URL" --description "tidemark demo $run" \
  | "$TIDEMARK_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["arn"])')

log "starting the backup-writer and offset-snapshotter Lambdas (local Lambda host on 127.0.0.1:$lambda_port)"
TIDEMARK_BUCKET=$bucket TIDEMARK_TABLE=$table TIDEMARK_BACKUP_ID=$backup_id TIDEMARK_PREFIX=tidemark \
TIDEMARK_S3_FORCE_PATH_STYLE=true TIDEMARK_TOPICS_INCLUDE='payments\..*' TIDEMARK_SEGMENT_ENCRYPTION_KEY=$kms_key \
TIDEMARK_KAFKA_BOOTSTRAP_SERVERS=$TIDEMARK_KAFKA_BOOTSTRAP TIDEMARK_KAFKA_AUTH=plaintext \
TIDEMARK_GROUPS_INCLUDE='payment-.*' \
  "$TIDEMARK_BIN/tidemark-lambda-host" --listen "127.0.0.1:$lambda_port" \
  --function "backup-writer=$TIDEMARK_BIN/backup-writer" \
  --function "offset-snapshotter=$TIDEMARK_BIN/offset-snapshotter" \
  --function "restore-coordinator=$TIDEMARK_BIN/restore-coordinator" \
  --function "restore-partition=$TIDEMARK_BIN/restore-partition" \
  --function "offset-reset=$TIDEMARK_BIN/offset-reset" \
  --function "validator=$TIDEMARK_BIN/validator" \
  --function "drill=$TIDEMARK_BIN/drill" \
  --function "eraser=$TIDEMARK_BIN/eraser" >"$TIDEMARK_STATE/lambda-host.log" 2>&1 &
echo $! >"$TIDEMARK_STATE/lambda-host.pid"
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$lambda_port/" && break
  sleep 0.1
done
# Step Functions reaches the functions through the gateway (local/up.sh).
for function in restore-coordinator restore-partition offset-reset validator drill eraser; do
  curl -sf -X PUT --data "http://127.0.0.1:$lambda_port" "$TIDEMARK_GATEWAY/_tidemark/functions/$function" \
    || die "could not register $function with the gateway at $TIDEMARK_GATEWAY"
done

log "starting the event-source bridge (the local stand-in for the MSK event source mapping)"
AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:$lambda_port \
  "$TIDEMARK_BIN/tidemark-bridge" --bootstrap-servers "$TIDEMARK_KAFKA_BOOTSTRAP" --topics "$topic" \
  --function-name backup-writer --group-id "tidemark-demo-$run" --batch-size 500 \
  >"$TIDEMARK_STATE/bridge.log" 2>&1 &
echo $! >"$TIDEMARK_STATE/bridge.pid"

machines=$(py create-machines --endpoint "$AWS_ENDPOINT_URL" --definitions statemachines \
  --coordinator restore-coordinator --partition restore-partition --offset-reset offset-reset --validator validator \
  --drill drill --eraser eraser)
machine() { echo "$machines" | "$TIDEMARK_PYTHON" -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
restore_machine=$(machine restore)
reset_machine=$(machine offset_reset)
validation_machine=$(machine validation)
drill_machine=$(machine drill)
erasure_machine=$(machine erasure)
tools_bootstrap=$TIDEMARK_KAFKA_BOOTSTRAP
functions_bootstrap=$TIDEMARK_KAFKA_BOOTSTRAP
show_logs() { tail -n 30 "$TIDEMARK_STATE/bridge.log" "$TIDEMARK_STATE/lambda-host.log" >&2; }
snapshot_now() {
  local response
  response=$(curl -sS -D "$TIDEMARK_STATE/snapshot-headers" -X POST -d '{}' \
    "http://127.0.0.1:$lambda_port/2015-03-31/functions/offset-snapshotter/invocations")
  ! grep -qi '^x-amz-function-error' "$TIDEMARK_STATE/snapshot-headers" || { echo "$response" >&2; return 1; }
}

tidemark() {
  TIDEMARK_BUCKET=$bucket TIDEMARK_TABLE=$table TIDEMARK_PREFIX=tidemark TIDEMARK_S3_FORCE_PATH_STYLE=true \
    "$TIDEMARK_BIN/tidemark" "$@"
}

source local/demo-scenario.sh
