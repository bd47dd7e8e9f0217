# One log group per function and one for both state machines, with a retention and the data key.

resource "aws_cloudwatch_log_group" "function" {
  for_each          = toset(["backup-writer", "offset-snapshotter", "restore-coordinator", "restore-partition", "offset-reset", "validator", "maintainer", "eraser", "drill"])
  name              = "/tidemark/${var.backup_id}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
}

resource "aws_cloudwatch_log_group" "state_machines" {
  name              = "/tidemark/${var.backup_id}/state-machines"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
}
