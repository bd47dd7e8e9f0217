# The recovery drill state machine from statemachines/drill.asl.json, unchanged: templatefile()
# fills in the drill function and restore machine ARNs, as SAM's DefinitionSubstitutions does.
# The drill function shares the restore functions' role: it reads backups, reaches the target
# cluster (the source by default) and deletes the scratch topics its restore created.

resource "aws_sfn_state_machine" "drill" {
  name     = "${local.name}-drill"
  role_arn = aws_iam_role.drill_state_machine.arn
  type     = "STANDARD"
  definition = templatefile("${path.module}/../statemachines/drill.asl.json", {
    DrillFunctionArn       = aws_lambda_function.drill.arn
    RestoreStateMachineArn = aws_sfn_state_machine.restore.arn
  })
  logging_configuration {
    level                  = "ERROR"
    include_execution_data = false
    log_destination        = "${aws_cloudwatch_log_group.state_machines.arn}:*"
  }
  tracing_configuration {
    enabled = true
  }
}

resource "aws_lambda_function" "drill" {
  function_name    = "${local.name}-drill"
  description      = "Prepares a recovery drill, verifies restored partitions, cleans up and reports."
  role             = aws_iam_role.restore_function.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${var.lambda_zip_dir}/drill/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_zip_dir}/drill/bootstrap.zip")
  timeout          = 900
  memory_size      = 1024
  kms_key_arn      = local.kms_key_arn
  environment {
    # The source cluster: the drill's target when a request names none.
    variables = merge(local.common_environment, local.source_cluster_environment)
  }
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function["drill"].name
  }
  dynamic "vpc_config" {
    for_each = local.uses_vpc ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }
}

resource "aws_iam_role" "drill_state_machine" {
  name               = "${local.name}-drill-state-machine"
  assume_role_policy = data.aws_iam_policy_document.states_assume.json
}

resource "aws_iam_role_policy" "drill_state_machine" {
  role   = aws_iam_role.drill_state_machine.id
  policy = data.aws_iam_policy_document.drill_state_machine.json
}

data "aws_iam_policy_document" "drill_state_machine" {
  source_policy_documents = [data.aws_iam_policy_document.state_machine_delivery.json]
  statement {
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.drill.arn]
  }
  # Restore runs the restore machine and waits for it (startExecution.sync:2).
  statement {
    actions   = ["states:StartExecution"]
    resources = [aws_sfn_state_machine.restore.arn]
  }
  statement {
    actions   = ["states:DescribeExecution", "states:StopExecution"]
    resources = ["arn:${local.partition}:states:${local.region}:${local.account}:execution:${local.name}-restore:*"]
  }
  statement {
    actions   = ["events:PutTargets", "events:PutRule", "events:DescribeRule"]
    resources = ["arn:${local.partition}:events:${local.region}:${local.account}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"]
  }
  # Verify is a Distributed Map over the restore's partition list in the bucket.
  statement {
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.backups.arn}/${local.objects_root}*"]
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = [local.kms_key_arn]
  }
  statement {
    actions   = ["states:StartExecution"]
    resources = ["arn:${local.partition}:states:${local.region}:${local.account}:stateMachine:${local.name}-drill"]
  }
  statement {
    actions   = ["states:DescribeExecution", "states:StopExecution"]
    resources = ["arn:${local.partition}:states:${local.region}:${local.account}:execution:${local.name}-drill/*"]
  }
}

resource "aws_cloudwatch_metric_alarm" "drill_failed" {
  alarm_name          = "${local.name}-drill-failed"
  alarm_description   = "A recovery drill did not prove the backup (a record differed or was unreadable, the restore failed, or scratch topics were left) or missed its tier's RTO/RPO targets. The drill's report (drills/{id}/report.json) names the partition and the first offset."
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  metric_query {
    id          = "failed"
    expression  = "failures + missed"
    return_data = true
  }
  dynamic "metric_query" {
    for_each = { failures = "DrillsFailed", missed = "DrillTargetsMissed" }
    content {
      id = metric_query.key
      metric {
        namespace   = var.metrics_namespace
        metric_name = metric_query.value
        dimensions  = { BackupId = var.backup_id }
        period      = 300
        stat        = "Sum"
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "drill_overdue" {
  alarm_name          = "${local.name}-drill-overdue"
  alarm_description   = "No recovery drill finished within ${var.drill_interval_hours} hours (the snapshotter checks the backup's health record on every run). Run `tidemark drill start`."
  namespace           = var.metrics_namespace
  metric_name         = "DrillOverdue"
  dimensions          = { BackupId = var.backup_id }
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
}
