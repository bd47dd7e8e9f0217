output "backup_bucket_name" {
  value       = aws_s3_bucket.backups.id
  description = "The backup bucket (TIDEMARK_BUCKET)."
}

output "index_table_name" {
  value       = aws_dynamodb_table.index.name
  description = "The index, checkpoint and snapshot catalog table (TIDEMARK_TABLE)."
}

output "data_key_arn" {
  value       = local.kms_key_arn
  description = "The KMS key of the bucket, table, queue, alarm topic and logs."
}

output "backup_writer_function_name" {
  value       = aws_lambda_function.backup_writer.function_name
  description = "The function the event source mappings invoke."
}

output "restore_state_machine_arn" {
  value       = aws_sfn_state_machine.restore.arn
  description = "Start restores here (docs/restore.md)."
}

output "drill_state_machine_arn" {
  value       = aws_sfn_state_machine.drill.arn
  description = "Start recovery drills here (tidemark drill start; docs/operations.md)."
}

output "offset_reset_state_machine_arn" {
  value       = aws_sfn_state_machine.offset_reset.arn
  description = "Start offset resets here (docs/offset-reset.md)."
}

output "alarm_topic_arn" {
  value       = aws_sns_topic.alarms.arn
  description = "Every alarm notifies this topic."
}

output "dashboard_url" {
  value       = "https://${local.region}.console.aws.amazon.com/cloudwatch/home?region=${local.region}#dashboards:name=${local.name}"
  description = "The CloudWatch dashboard."
}

output "offset_snapshotter_function_name" {
  value       = aws_lambda_function.offset_snapshotter.function_name
  description = "Invoke it with {} for a snapshot on demand (a restore plan to 'now' wants a fresh one)."
}

output "validation_state_machine_arn" {
  value       = aws_sfn_state_machine.validation.arn
  description = "Start it with {\"depth\":\"deep\"|\"listing\",\"topics\":[...]} to validate on demand."
}

output "backup_reader_policy_arn" {
  value       = aws_iam_policy.backup_reader.arn
  description = "Attach to whoever may read this backup (a masked backup's readers; docs/privacy.md)."
}

output "erasure_state_machine_arn" {
  value       = aws_sfn_state_machine.erasure.arn
  description = "Erase records by key (tidemark erase; docs/privacy.md)."
}

output "maintenance_state_machine_arn" {
  value       = aws_sfn_state_machine.maintenance.arn
  description = "Start it with {} to expire and compact now."
}
