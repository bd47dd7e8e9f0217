# The disaster demo's story, shared by local/demo.sh (no Docker) and localstack/demo.sh: back up
# payment events, snapshot the consumer groups ("14:29"), write garbage ("14:30"), restore to the
# moment before it, put payment-processor back, and reset payment-notifier. Each step checks its
# result and dies with the reason. Sourced, not run; the caller provides:
#   py, log, die        tidemark_local.py run by $TIDEMARK_PYTHON; messages; failure
#   tools_bootstrap     the brokers as this script's tools reach them
#   functions_bootstrap the brokers as the deployed functions reach them (restore/reset target)
#   AWS_ENDPOINT_URL, bucket, table, backup_id, topic, run
#   restore_machine, reset_machine, validation_machine, drill_machine, erasure_machine
#                       the state machines' ARNs
#   snapshot_now        a command that takes a snapshot with the offset-snapshotter, on demand
#   tidemark            the operator CLI, pointed at this backup's bucket, table and prefix
#   show_logs           a command that prints the functions' recent logs (after a failure)
# The backup writer must already be fed by the bridge.

log "producing 5000 payment events"
produced=$(py produce-payments --bootstrap "$tools_bootstrap" --topic "$topic" --count 5000 --partitions 4)
expect=$(echo "$produced" | "$TIDEMARK_PYTHON" -c 'import json,sys; d=json.load(sys.stdin)["last_offsets"]; print(" ".join(f"--expect payments.captured:{p}={o+1}" for p,o in d.items()))')

log "waiting for every partition's checkpoint to reach the end of the topic"
# shellcheck disable=SC2086
py wait-checkpoints --endpoint "$AWS_ENDPOINT_URL" --table "$table" --backup-id "$backup_id" $expect --timeout 120 >/dev/null \
  || { show_logs; die "the backup did not catch up"; }

log "what the backup holds (the operator CLI: tidemark backups describe)"
tidemark backups describe "$backup_id"

log "validating the backup: index against S3, no unrecorded gaps, every segment re-read and decoded"
py run-execution --endpoint "$AWS_ENDPOINT_URL" --machine "$validation_machine" --name validate --input '{"depth": "deep"}' \
  || { show_logs; die "the backup does not validate"; }

log "payment-processor commits its progress: it has handled the first 1000 events of each partition"
for partition in 0 1 2 3; do
  py commit-offsets --bootstrap "$tools_bootstrap" --topic "$topic" --group payment-processor \
    --offset "$partition=1000" >/dev/null
done

log "taking a snapshot of consumer offsets and topology (the offset-snapshotter Lambda, as on demand)"
snapshot_now || { show_logs; die "the snapshot failed"; }

log "the latest snapshot, found through the catalog as a restore to 'now' would find it"
py show-snapshot --endpoint "$AWS_ENDPOINT_URL" --bucket "$bucket" --table "$table" --backup-id "$backup_id"

before=$(py summarize-topic --bootstrap "$tools_bootstrap" --topic "$topic")
expected_records=$(echo "$before" | "$TIDEMARK_PYTHON" -c 'import json,sys; print(sum(json.load(sys.stdin)["records_per_partition"].values()))')
restored=$topic.restored-$run
cut_ms=$("$TIDEMARK_PYTHON" -c 'import time; print(int(time.time() * 1000))')
log "14:30: a bad deploy writes 2000 garbage events; the backup faithfully captures them too"
garbage=$(py produce-garbage --bootstrap "$tools_bootstrap" --topic "$topic" --count 2000 --partitions 4)
expect=$(echo "$garbage" | "$TIDEMARK_PYTHON" -c 'import json,sys; d=json.load(sys.stdin)["last_offsets"]; print(" ".join(f"--expect payments.captured:{p}={o+1}" for p,o in d.items()))')
# shellcheck disable=SC2086
py wait-checkpoints --endpoint "$AWS_ENDPOINT_URL" --table "$table" --backup-id "$backup_id" $expect --timeout 120 >/dev/null \
  || die "the backup did not catch up with the garbage"
py summarize-topic --bootstrap "$tools_bootstrap" --topic "$topic"

log "restore $topic to the moment before the bad deploy and put payment-processor back where it was"
restore_input=$(cat <<JSON
{
  "backup_id": "$backup_id",
  "target": {"bootstrap_servers": "$functions_bootstrap", "auth": "plaintext"},
  "topics": {"mapping": {"$topic": "$restored"}},
  "cut": {"mode": "time", "at": $cut_ms},
  "groups": ["payment-processor"],
  "topic_creation": "create"
}
JSON
)
echo "$restore_input"
py run-execution --endpoint "$AWS_ENDPOINT_URL" --machine "$restore_machine" --name restore --input "$restore_input" \
  || { show_logs; die "the restore failed"; }

log "the restored topic: every event up to the cut, none of the garbage"
summary=$(py summarize-topic --bootstrap "$tools_bootstrap" --topic "$restored")
echo "$summary"
echo "$summary" | "$TIDEMARK_PYTHON" -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if s['garbage_records'] == 0 and sum(s['records_per_partition'].values()) == $expected_records else 1)" \
  || die "the restored topic is not exactly the $expected_records events before the cut"

log "payment-processor on the restored topic resumes where it stood at the cut"
offsets=$(py group-offsets --bootstrap "$tools_bootstrap" --topic "$restored" --group payment-processor --partitions 4)
echo "$offsets"
[ "$offsets" = '{"0": 1000, "1": 1000, "2": 1000, "3": 1000}' ] || die "payment-processor is not at 1000 on every partition"
log "payment-notifier read the garbage on $topic too; plan putting it back to the cut (dry run)"
for partition in 0 1 2 3; do
  py commit-offsets --bootstrap "$tools_bootstrap" --topic "$topic" --group payment-notifier \
    --offset "$partition=$((1750 + partition))" >/dev/null
done
reset_input() { cat <<JSON
{
  "target": {"bootstrap_servers": "$functions_bootstrap", "auth": "plaintext"},
  "groups": {"names": ["payment-notifier"]},
  "strategy": {"type": "timestamp", "at": $cut_ms},
  "topics": ["$topic"],
  "dry_run": $1
}
JSON
}
py run-execution --endpoint "$AWS_ENDPOINT_URL" --machine "$reset_machine" --name plan --input "$(reset_input true)" \
  || die "the offset reset plan failed"
log "reset it: the first event at or after the cut on every partition, all or nothing"
py run-execution --endpoint "$AWS_ENDPOINT_URL" --machine "$reset_machine" --name reset --input "$(reset_input false)" \
  || { show_logs; die "the offset reset failed"; }
offsets=$(py group-offsets --bootstrap "$tools_bootstrap" --topic "$topic" --group payment-notifier --partitions 4)
echo "$offsets"
# Where the garbage starts on each partition: the end of the topic before the bad deploy.
echo "$before" | "$TIDEMARK_PYTHON" -c "import json,sys; ends=json.load(sys.stdin)['records_per_partition']; sys.exit(0 if json.loads('$offsets') == ends else 1)" \
  || die "payment-notifier is not at the first garbage event on every partition ($before)"
log "the backup, read back by the operator CLI (tidemark validate --deep): the garbage is in it too, every segment sound"
tidemark validate "$backup_id" --deep || die "the backup does not validate"

log "prove recovery: a DR drill restores $topic into a scratch topic, compares every record with the backup, checks where payment-processor would land, and cleans up"
tidemark drill start "$backup_id" --topic 'payments\.captured' --group payment-processor \
  --tier gold --rto-target-seconds 600 --rpo-target-seconds 3600 --machine "$drill_machine" --watch \
  || { show_logs; die "the drill did not prove the backup"; }
log "the drill's evidence report (tidemark drill list): RTO measured from start to verified, RPO from the cut to the newest record"
tidemark drill list "$backup_id"
log "privacy: merchant m-042 leaves and asks for its payments to be erased. First a dry run (tidemark erase): what would go"
tidemark erase --topic "$topic" --json-field /merchant=m-042 --machine "$erasure_machine" --watch \
  || { show_logs; die "the erasure's dry run failed"; }
log "then for real: every record of m-042 goes from every segment and every object version, the offsets are recorded as erased, and a final read proves none is left"
tidemark erase --topic "$topic" --json-field /merchant=m-042 --execute --grace-seconds 0 --machine "$erasure_machine" --watch \
  || { show_logs; die "the erasure did not complete"; }
log "the backup still validates deeply, the erased offsets counted as facts"
py run-execution --endpoint "$AWS_ENDPOINT_URL" --machine "$validation_machine" --name validate-after-erasure --input '{"depth": "deep"}' \
  || { show_logs; die "the backup does not validate after the erasure"; }
tidemark backups describe "$backup_id"

log "who did what (tidemark audit list)"
tidemark audit list --since 1h
log "the deployment at a glance (tidemark status)"
tidemark status || die "the deployment is red"
log "done: backed up, broken, restored to a point in time, consumers repositioned, recovery drilled, a merchant erased"
