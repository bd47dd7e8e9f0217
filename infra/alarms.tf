# Alarms (backup errors, lag over the RPO, staleness, failed executions), their topic, and the
# dashboard (docs/operations.md explains each).

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  display_name      = "Tidemark ${var.backup_id}"
  kms_master_key_id = local.kms_key_arn
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count     = var.alarm_email != "" ? 1 : 0
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  alarm_actions = [aws_sns_topic.alarms.arn]
  function_errors = {
    backup-errors   = { function = aws_lambda_function.backup_writer.function_name, period = 300, description = "The backup writer failed invocations; the mapping retries, but the partition is not advancing." }
    snapshot-errors = { function = aws_lambda_function.offset_snapshotter.function_name, period = 900, description = "The offset snapshotter failed; restores would position groups from an older snapshot." }
  }
  machine_failures = {
    restore-failed      = { arn = aws_sfn_state_machine.restore.arn, description = "A restore execution failed, timed out or was aborted (its cause says what was rolled back)." }
    offset-reset-failed = { arn = aws_sfn_state_machine.offset_reset.arn, description = "An offset reset execution failed, timed out or was aborted (its cause says what was rolled back)." }
    maintenance-failed  = { arn = aws_sfn_state_machine.maintenance.arn, description = "A maintenance run (retention, compaction) failed, timed out or was aborted: segments are not expiring or compacting. The execution's cause and the maintainer's log say why." }
    erasure-failed      = { arn = aws_sfn_state_machine.erasure.arn, description = "An erasure failed, timed out or was aborted, or its verification found matching records still stored: the records asked to be erased may still be readable. Its report (erasures/{id}/report.json) and the eraser's log say where; run it again (docs/privacy.md)." }
    validation-failed   = { arn = aws_sfn_state_machine.validation.arn, description = "A validation found errors in the backup (a missing or damaged segment, an unrecorded gap, an index that disagrees), or could not finish. The execution's cause names the first errors and the report in S3." }
  }
}

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each            = local.function_errors
  alarm_name          = "${local.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value.function }
  statistic           = "Sum"
  period              = each.value.period
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "backup_lag" {
  alarm_name          = "${local.name}-backup-lag"
  alarm_description   = "Records reach the backup more than ${var.rpo_minutes} minutes after they were produced (lag over the RPO)."
  evaluation_periods  = 1
  threshold           = var.rpo_minutes
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  metric_query {
    id          = "lagMinutes"
    expression  = "lag / 60000"
    return_data = true
  }
  metric_query {
    id = "lag"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "LagMs"
      dimensions  = { BackupId = var.backup_id }
      period      = 300
      stat        = "Maximum"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "backup_stalled" {
  alarm_name          = "${local.name}-backup-stalled"
  alarm_description   = "A partition's backup stopped at an offset for ${var.stall_after_seconds} s while its topic went on (a record too large for any invocation, or a batch failing for good); the snapshotter's log names topic, partition and offset."
  namespace           = var.metrics_namespace
  metric_name         = "StalledPartitions"
  dimensions          = { BackupId = var.backup_id }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "backup_stale" {
  count               = var.staleness_minutes > 0 ? 1 : 0
  alarm_name          = "${local.name}-backup-stale"
  alarm_description   = "No segment was written for ${var.staleness_minutes} minutes."
  namespace           = var.metrics_namespace
  metric_name         = "Records"
  dimensions          = { BackupId = var.backup_id }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = var.staleness_minutes
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "execution_failed" {
  for_each            = local.machine_failures
  alarm_name          = "${local.name}-${each.key}"
  alarm_description   = each.value.description
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  metric_query {
    id          = "failed"
    expression  = "failures + timeouts + aborts"
    return_data = true
  }
  dynamic "metric_query" {
    for_each = { failures = "ExecutionsFailed", timeouts = "ExecutionsTimedOut", aborts = "ExecutionsAborted" }
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/States"
        metric_name = metric_query.value
        dimensions  = { StateMachineArn = each.value.arn }
        period      = 300
        stat        = "Sum"
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "failed_batches" {
  count               = var.failed_batch_queue ? 1 : 0
  alarm_name          = "${local.name}-failed-batches"
  alarm_description   = "Lambda gave up on a batch; its offsets are a gap in the backup until re-driven (docs/deploy.md)."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.failed_batches[0].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
}

resource "aws_cloudwatch_dashboard" "backup" {
  dashboard_name = local.name
  dashboard_body = jsonencode({
    widgets = [
      { type = "metric", x = 0, y = 0, width = 12, height = 6, properties = {
        title = "Records and bytes backed up", region = local.region, stat = "Sum", period = 300,
        metrics = [
          [var.metrics_namespace, "Records", "BackupId", var.backup_id],
          [".", "BytesIn", ".", ".", { yAxis = "right" }],
          [".", "BytesOut", ".", ".", { yAxis = "right" }],
        ]
      } },
      { type = "metric", x = 12, y = 0, width = 12, height = 6, properties = {
        title = "Backup lag (minutes) against the RPO", region = local.region, stat = "Maximum", period = 60,
        metrics = [
          [{ expression = "lag / 60000", label = "lag", id = "minutes" }],
          [var.metrics_namespace, "LagMs", "BackupId", var.backup_id, { id = "lag", visible = false }],
        ]
        annotations = { horizontal = [{ label = "RPO", value = var.rpo_minutes }] }
      } },
      { type = "metric", x = 0, y = 6, width = 12, height = 6, properties = {
        title = "Writer invocations, errors, throttles", region = local.region, stat = "Sum", period = 300,
        metrics = [
          ["AWS/Lambda", "Invocations", "FunctionName", aws_lambda_function.backup_writer.function_name],
          [".", "Errors", ".", "."], [".", "Throttles", ".", "."],
        ]
      } },
      { type = "metric", x = 12, y = 6, width = 12, height = 6, properties = {
        title = "Segment write latency (ms) and gaps", region = local.region, period = 300,
        metrics = [
          [var.metrics_namespace, "SegmentWriteLatency", "BackupId", var.backup_id, { stat = "p99" }],
          [".", "GapOffsets", ".", ".", { stat = "Sum", yAxis = "right" }],
        ]
      } },
      { type = "metric", x = 0, y = 12, width = 12, height = 6, properties = {
        title = "Snapshots", region = local.region, stat = "Sum", period = 300,
        metrics = [
          [var.metrics_namespace, "GroupsCaptured", "BackupId", var.backup_id],
          [".", "GroupsFailed", ".", "."],
          ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.offset_snapshotter.function_name],
        ]
      } },
      { type = "metric", x = 12, y = 12, width = 12, height = 6, properties = {
        title = "Restores and offset resets", region = local.region, stat = "Sum", period = 300,
        metrics = [
          ["AWS/States", "ExecutionsSucceeded", "StateMachineArn", aws_sfn_state_machine.restore.arn],
          [".", "ExecutionsFailed", ".", "."],
          [".", "ExecutionsSucceeded", ".", aws_sfn_state_machine.offset_reset.arn],
          [".", "ExecutionsFailed", ".", "."],
        ]
      } },
      { type = "metric", x = 0, y = 18, width = 12, height = 6, properties = {
        title = "Health: stalled partitions, failed validations and drills, drill overdue", region = local.region, stat = "Maximum", period = 3600,
        metrics = [
          [var.metrics_namespace, "StalledPartitions", "BackupId", var.backup_id],
          [".", "ValidationErrors", ".", "."],
          [".", "DrillsFailed", ".", "."],
          [".", "DrillTargetsMissed", ".", "."],
          [".", "DrillOverdue", ".", "."],
        ]
      } },
      { type = "metric", x = 12, y = 18, width = 12, height = 6, properties = {
        title = "Drills: measured RTO and RPO (seconds) against the targets", region = local.region, stat = "Maximum", period = 86400,
        metrics = [
          [{ expression = "rto / 1000", label = "RTO", id = "rto_s" }],
          [{ expression = "rpo / 1000", label = "RPO", id = "rpo_s" }],
          [var.metrics_namespace, "DrillRto", "BackupId", var.backup_id, { id = "rto", visible = false }],
          [".", "DrillRpo", ".", ".", { id = "rpo", visible = false }],
        ]
        annotations = { horizontal = [
          { label = "RTO target", value = var.drill_rto_target_seconds },
          { label = "RPO target", value = var.drill_rpo_target_seconds },
        ] }
      } },
    ]
  })
}
