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
py create-topic --bootstrap "$TIDEMARK_KAFKA_BOOTSTRAP" --topic "$topic" --partitions 4 --if-not-exists >/dev/null
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
  --function "offset-reset=$TIDEMARK_BIN/offset-reset" >"$TIDEMARK_STATE/lambda-host.log" 2>&1 &
echo $! >"$TIDEMARK_STATE/lambda-host.pid"
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$lambda_port/" && break
  sleep 0.1
done
# Step Functions reaches the functions through the gateway (local/up.sh).
for function in restore-coordinator restore-partition offset-reset; do
  curl -sf -X PUT --data "http://127.0.0.1:$lambda_port" "$TIDEMARK_GATEWAY/_tidemark/functions/$function" \
    || die "could not register $function with the gateway at $TIDEMARK_GATEWAY"
done

log "starting the event-source bridge (the local stand-in for the MSK event source mapping)"
AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:$lambda_port \
  "$TIDEMARK_BIN/tidemark-bridge" --bootstrap-servers "$TIDEMARK_KAFKA_BOOTSTRAP" --topics "$topic" \
  --function-name backup-writer --group-id "tidemark-demo-$run" --batch-size 500 \
  >"$TIDEMARK_STATE/bridge.log" 2>&1 &
echo $! >"$TIDEMARK_STATE/bridge.pid"

log "producing 5000 payment events"
produced=$(py produce-payments --bootstrap "$TIDEMARK_KAFKA_BOOTSTRAP" --topic "$topic" --count 5000 --partitions 4)
expect=$(echo "$produced" | "$TIDEMARK_PYTHON" -c 'import json,sys; d=json.load(sys.stdin)["last_offsets"]; print(" ".join(f"--expect payments.captured:{p}={o+1}" for p,o in d.items()))')

log "waiting for every partition's checkpoint to reach the end of the topic"
# shellcheck disable=SC2086
py wait-checkpoints --endpoint "$AWS_ENDPOINT_URL" --table "$table" --backup-id "$backup_id" $expect --timeout 120 >/dev/null \
  || { tail -n 20 "$TIDEMARK_STATE/bridge.log" "$TIDEMARK_STATE/lambda-host.log" >&2; die "the backup did not catch up"; }

log "what the backup holds"
py show-backup --endpoint "$AWS_ENDPOINT_URL" --bucket "$bucket" --table "$table" --backup-id "$backup_id" --prefix tidemark

log "payment-processor commits its progress: it has handled the first 1000 events of each partition"
for partition in 0 1 2 3; do
  py commit-offsets --bootstrap "$TIDEMARK_KAFKA_BOOTSTRAP" --topic "$topic" --group payment-processor \
    --offset "$partition=1000" >/dev/null
done

log "taking a snapshot of consumer offsets and topology (the offset-snapshotter Lambda, as on demand)"
snapshot_response=$(curl -sS -D "$TIDEMARK_STATE/snapshot-headers" -X POST -d '{}' \
  "http://127.0.0.1:$lambda_port/2015-03-31/functions/offset-snapshotter/invocations")
if grep -qi '^x-amz-function-error' "$TIDEMARK_STATE/snapshot-headers"; then
  tail -n 20 "$TIDEMARK_STATE/lambda-host.log" >&2
  die "the snapshot failed: $snapshot_response"
fi

log "the latest snapshot, found through the catalog as a restore to 'now' would find it"
py show-snapshot --endpoint "$AWS_ENDPOINT_URL" --bucket "$bucket" --table "$table" --backup-id "$backup_id"

before=$(py summarize-topic --bootstrap "$TIDEMARK_KAFKA_BOOTSTRAP" --topic "$topic")
expected_records=$(echo "$before" | "$TIDEMARK_PYTHON" -c 'import json,sys; print(sum(json.load(sys.stdin)["records_per_partition"].values()))')
restored=$topic.restored-$run
cut_ms=$("$TIDEMARK_PYTHON" -c 'import time; print(int(time.time() * 1000))')
log "14:30: a bad deploy writes 2000 garbage events; the backup faithfully captures them too"
garbage=$(py produce-garbage --bootstrap "$TIDEMARK_KAFKA_BOOTSTRAP" --topic "$topic" --count 2000 --partitions 4)
expect=$(echo "$garbage" | "$TIDEMARK_PYTHON" -c 'import json,sys; d=json.load(sys.stdin)["last_offsets"]; print(" ".join(f"--expect payments.captured:{p}={o+1}" for p,o in d.items()))')
# shellcheck disable=SC2086
py wait-checkpoints --endpoint "$AWS_ENDPOINT_URL" --table "$table" --backup-id "$backup_id" $expect --timeout 120 >/dev/null \
  || die "the backup did not catch up with the garbage"
py summarize-topic --bootstrap "$TIDEMARK_KAFKA_BOOTSTRAP" --topic "$topic"

log "restore $topic to the moment before the bad deploy and put payment-processor back where it was"
restore_input=$(cat <<JSON
{
  "backup_id": "$backup_id",
  "target": {"bootstrap_servers": "$TIDEMARK_KAFKA_BOOTSTRAP", "auth": "plaintext"},
  "topics": {"mapping": {"$topic": "$restored"}},
  "cut": {"mode": "time", "at": $cut_ms},
  "groups": ["payment-processor"],
  "topic_creation": "create"
}
JSON
)
echo "$restore_input"
machines=$(py create-machines --endpoint "$AWS_ENDPOINT_URL" --definitions statemachines \
  --coordinator restore-coordinator --partition restore-partition --offset-reset offset-reset)
machine() { echo "$machines" | "$TIDEMARK_PYTHON" -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
py run-execution --endpoint "$AWS_ENDPOINT_URL" --machine "$(machine restore)" --name restore --input "$restore_input" \
  || { tail -n 30 "$TIDEMARK_STATE/lambda-host.log" >&2; die "the restore failed"; }

log "the restored topic: every event up to the cut, none of the garbage"
summary=$(py summarize-topic --bootstrap "$TIDEMARK_KAFKA_BOOTSTRAP" --topic "$restored")
echo "$summary"
echo "$summary" | "$TIDEMARK_PYTHON" -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if s['garbage_records'] == 0 and sum(s['records_per_partition'].values()) == $expected_records else 1)" \
  || die "the restored topic is not exactly the $expected_records events before the cut"

log "payment-processor on the restored topic resumes where it stood at the cut"
offsets=$(py group-offsets --bootstrap "$TIDEMARK_KAFKA_BOOTSTRAP" --topic "$restored" --group payment-processor --partitions 4)
echo "$offsets"
[ "$offsets" = '{"0": 1000, "1": 1000, "2": 1000, "3": 1000}' ] || die "payment-processor is not at 1000 on every partition"
log "payment-notifier read the garbage on $topic too; plan putting it back to the cut (dry run)"
for partition in 0 1 2 3; do
  py commit-offsets --bootstrap "$TIDEMARK_KAFKA_BOOTSTRAP" --topic "$topic" --group payment-notifier \
    --offset "$partition=$((1750 + partition))" >/dev/null
done
reset_input() { cat <<JSON
{
  "target": {"bootstrap_servers": "$TIDEMARK_KAFKA_BOOTSTRAP", "auth": "plaintext"},
  "groups": {"names": ["payment-notifier"]},
  "strategy": {"type": "timestamp", "at": $cut_ms},
  "topics": ["$topic"],
  "dry_run": $1
}
JSON
}
py run-execution --endpoint "$AWS_ENDPOINT_URL" --machine "$(machine offset_reset)" --name plan --input "$(reset_input true)" \
  || die "the offset reset plan failed"
log "reset it: the first event at or after the cut on every partition, all or nothing"
py run-execution --endpoint "$AWS_ENDPOINT_URL" --machine "$(machine offset_reset)" --name reset --input "$(reset_input false)" \
  || { tail -n 30 "$TIDEMARK_STATE/lambda-host.log" >&2; die "the offset reset failed"; }
offsets=$(py group-offsets --bootstrap "$TIDEMARK_KAFKA_BOOTSTRAP" --topic "$topic" --group payment-notifier --partitions 4)
echo "$offsets"
# Where the garbage starts on each partition: the end of the topic before the bad deploy.
echo "$before" | "$TIDEMARK_PYTHON" -c "import json,sys; ends=json.load(sys.stdin)['records_per_partition']; sys.exit(0 if json.loads('$offsets') == ends else 1)" \
  || die "payment-notifier is not at the first garbage event on every partition ($before)"
log "done: backed up, broken, restored to a point in time, consumers repositioned"
