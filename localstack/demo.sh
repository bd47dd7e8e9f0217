#!/usr/bin/env bash
# The disaster demo on LocalStack (after localstack/deploy.sh): the same story as local/demo.sh,
# against the deployed Lambda functions and state machines. The event-source bridge, built here
# and run on the host, plays the Kafka event source mapping LocalStack's free tier lacks.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/env.sh"
[ -f "$LOCALSTACK_BUILD/outputs.json" ] || die "nothing deployed yet: run localstack/deploy.sh first"
output() { "$TIDEMARK_PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]['value'])" "$LOCALSTACK_BUILD/outputs.json" "$1"; }

run=$(date +%Y%m%d%H%M%S)
bucket=$(output bucket)
table=$(output table)
backup_id=payments-local
topic=payments.captured
restore_machine=$(output restore_state_machine_arn)
reset_machine=$(output offset_reset_state_machine_arn)
validation_machine=$(output validation_state_machine_arn)
drill_machine=$(output drill_state_machine_arn)
erasure_machine=$(output erasure_state_machine_arn)
snapshotter=$(output offset_snapshotter)
tools_bootstrap=$KAFKA_FROM_HOST
functions_bootstrap=$KAFKA_FROM_FUNCTIONS

log "building the event-source bridge and the operator CLI"
(cd "$TIDEMARK_REPO" && cargo build --release --locked --quiet -p tidemark-bridge -p tidemark-cli)
target_dir=$(cd "$TIDEMARK_REPO" && cargo metadata --format-version 1 --no-deps \
  | "$TIDEMARK_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

py wait-kafka --bootstrap "$tools_bootstrap" --timeout 60 >/dev/null || die "Kafka does not answer on $tools_bootstrap"
# An earlier run's topic would mix into this one's story: start from an empty one.
py delete-topic --bootstrap "$tools_bootstrap" --topic "$topic" --if-exists >/dev/null
py create-topic --bootstrap "$tools_bootstrap" --topic "$topic" --partitions 4 >/dev/null

log "starting the event-source bridge: $topic → the deployed $(output backup_writer)"
"$target_dir/release/tidemark-bridge" --bootstrap-servers "$tools_bootstrap" --topics "$topic" \
  --function-name "$(output backup_writer)" --group-id "tidemark-demo-$run" --batch-size 500 \
  --event-source self-managed >"$LOCALSTACK_BUILD/bridge.log" 2>&1 &
bridge=$!
trap 'kill $bridge 2>/dev/null || true' EXIT

show_logs() {
  tail -n 30 "$LOCALSTACK_BUILD/bridge.log" >&2
  docker compose -f "$here/docker-compose.yml" logs --tail 60 localstack >&2
}
snapshot_now() { py invoke --endpoint "$AWS_ENDPOINT_URL" --function "$snapshotter" --payload '{}' >/dev/null; }
tidemark() {
  TIDEMARK_BUCKET=$bucket TIDEMARK_TABLE=$table TIDEMARK_PREFIX=tidemark TIDEMARK_S3_FORCE_PATH_STYLE=true \
    "$target_dir/release/tidemark" "$@"
}

cd "$TIDEMARK_REPO"
source local/demo-scenario.sh
