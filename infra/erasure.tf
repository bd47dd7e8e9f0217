# The erasure state machine from statemachines/erasure.asl.json, unchanged, and its function
# (docs/privacy.md). The eraser is the only function that may delete object versions: an
# erasure must leave no earlier copy of what it removed.

resource "aws_sfn_state_machine" "erasure" {
  name     = "${local.name}-erasure"
  role_arn = aws_iam_role.erasure_state_machine.arn
  type     = "STANDARD"
  definition = templatefile("${path.module}/../statemachines/erasure.asl.json", {
    EraserFunctionArn = aws_lambda_function.eraser.arn
  })
  logging_configuration {
    level = "ERROR"
    # The input names what to erase: it stays out of the logs.
    include_execution_data = false
    log_destination        = "${aws_cloudwatch_log_group.state_machines.arn}:*"
  }
  tracing_configuration {
    enabled = true
  }
}

resource "aws_lambda_function" "eraser" {
  function_name    = "${local.name}-eraser"
  description      = "Erases records by key, header or JSON field from the backup, step by step for the erasure state machine."
  role             = aws_iam_role.eraser.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${var.lambda_zip_dir}/eraser/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_zip_dir}/eraser/bootstrap.zip")
  timeout          = 900
  memory_size      = 1024
  kms_key_arn      = local.kms_key_arn
  environment {
    variables = merge(local.common_environment, {
      TIDEMARK_BACKUP_ID              = var.backup_id
      TIDEMARK_COMPRESSION_LEVEL      = tostring(var.compression_level)
      TIDEMARK_RETENTION_SHORT_TOPICS = var.retention_short_topics
      TIDEMARK_RETENTION_LONG_TOPICS  = var.retention_long_topics
      TIDEMARK_SEGMENT_ENCRYPTION_KEY = var.client_side_encryption ? local.kms_key_arn : ""
    })
  }
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function["eraser"].name
  }
}

resource "aws_iam_role" "eraser" {
  name               = "${local.name}-eraser"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

resource "aws_iam_role_policy" "eraser" {
  role   = aws_iam_role.eraser.id
  policy = data.aws_iam_policy_document.eraser.json
}

data "aws_iam_policy_document" "eraser" {
  statement {
    sid       = "RewriteAndPurgeSegments"
    actions   = ["s3:GetObject", "s3:GetObjectRetention", "s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject", "s3:DeleteObjectVersion"]
    resources = ["${aws_s3_bucket.backups.arn}/${local.backup_root}/*"]
  }
  statement {
    sid       = "ListTheBackupAndItsVersions"
    actions   = ["s3:ListBucket", "s3:ListBucketVersions"]
    resources = [aws_s3_bucket.backups.arn]
  }
  statement {
    sid       = "Index"
    actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"]
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
    resources = ["${aws_cloudwatch_log_group.function["eraser"].arn}:*"]
  }
}

resource "aws_iam_role" "erasure_state_machine" {
  name               = "${local.name}-erasure-state-machine"
  assume_role_policy = data.aws_iam_policy_document.states_assume.json
}

resource "aws_iam_role_policy" "erasure_state_machine" {
  role   = aws_iam_role.erasure_state_machine.id
  policy = data.aws_iam_policy_document.erasure_state_machine.json
}

data "aws_iam_policy_document" "erasure_state_machine" {
  source_policy_documents = [data.aws_iam_policy_document.state_machine_delivery.json]
  statement {
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.eraser.arn]
  }
}
