# The maintenance state machine from statemachines/maintenance.asl.json, unchanged, and its
# function (retention by tier, compaction); schedules.tf starts it (docs/operations.md#maintenance).

resource "aws_sfn_state_machine" "maintenance" {
  name     = "${local.name}-maintenance"
  role_arn = aws_iam_role.maintenance_state_machine.arn
  type     = "STANDARD"
  definition = templatefile("${path.module}/../statemachines/maintenance.asl.json", {
    MaintainerFunctionArn = aws_lambda_function.maintainer.arn
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

resource "aws_lambda_function" "maintainer" {
  function_name    = "${local.name}-maintainer"
  description      = "Expires segments by tier and compacts small ones, step by step for the maintenance state machine."
  role             = aws_iam_role.maintainer.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${var.lambda_zip_dir}/maintainer/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_zip_dir}/maintainer/bootstrap.zip")
  # A step stops starting partitions a minute before this; one partition must fit in it.
  timeout     = 900
  memory_size = 1024
  kms_key_arn = local.kms_key_arn
  environment {
    variables = merge(local.common_environment, {
      TIDEMARK_BACKUP_ID               = var.backup_id
      TIDEMARK_COMPRESSION_LEVEL       = tostring(var.compression_level)
      TIDEMARK_RETENTION_SHORT_TOPICS  = var.retention_short_topics
      TIDEMARK_RETENTION_LONG_TOPICS   = var.retention_long_topics
      TIDEMARK_RETENTION_SHORT_DAYS    = tostring(var.short_tier_expire_after_days)
      TIDEMARK_RETENTION_STANDARD_DAYS = tostring(var.expire_after_days)
      TIDEMARK_RETENTION_LONG_DAYS     = tostring(var.long_tier_expire_after_days)
      TIDEMARK_MIN_PITR_WINDOW_DAYS    = tostring(var.min_pitr_window_days)
      TIDEMARK_COMPACTION_TARGET_MB    = tostring(var.compaction_target_mb)
      TIDEMARK_COMPACTION_GRACE_HOURS  = tostring(var.compaction_grace_hours)
      TIDEMARK_SEGMENT_ENCRYPTION_KEY  = var.client_side_encryption ? local.kms_key_arn : ""
    })
  }
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function["maintainer"].name
  }
}

resource "aws_iam_role" "maintainer" {
  name               = "${local.name}-maintainer"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

resource "aws_iam_role_policy" "maintainer" {
  role   = aws_iam_role.maintainer.id
  policy = data.aws_iam_policy_document.maintainer.json
}

data "aws_iam_policy_document" "maintainer" {
  statement {
    sid       = "Segments"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.backups.arn}/${local.backup_root}/*"]
  }
  statement {
    sid       = "ListTheBackup"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.backups.arn]
  }
  statement {
    sid       = "Index"
    actions   = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.index.arn]
  }
  statement {
    sid       = "WriteAuditRecords"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.backups.arn}/${local.objects_root}audit/*"]
  }
  statement {
    sid       = "SealAndOpenSegments"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [local.kms_key_arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["maintainer"].arn}:*"]
  }
}

resource "aws_iam_role" "maintenance_state_machine" {
  name               = "${local.name}-maintenance-state-machine"
  assume_role_policy = data.aws_iam_policy_document.states_assume.json
}

resource "aws_iam_role_policy" "maintenance_state_machine" {
  role   = aws_iam_role.maintenance_state_machine.id
  policy = data.aws_iam_policy_document.maintenance_state_machine.json
}

data "aws_iam_policy_document" "maintenance_state_machine" {
  source_policy_documents = [data.aws_iam_policy_document.state_machine_delivery.json]
  statement {
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.maintainer.arn]
  }
}
