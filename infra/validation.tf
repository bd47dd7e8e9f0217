# The validation state machine from statemachines/validation.asl.json, unchanged, and its function;
# schedules.tf starts it (docs/operations.md#validation).

resource "aws_sfn_state_machine" "validation" {
  name     = "${local.name}-validation"
  role_arn = aws_iam_role.validation_state_machine.arn
  type     = "STANDARD"
  definition = templatefile("${path.module}/../statemachines/validation.asl.json", {
    ValidatorFunctionArn = aws_lambda_function.validator.arn
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

resource "aws_lambda_function" "validator" {
  function_name    = "${local.name}-validator"
  description      = "Validates the backup step by step for the validation state machine."
  role             = aws_iam_role.validator.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${var.lambda_zip_dir}/validator/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_zip_dir}/validator/bootstrap.zip")
  # A step stops starting partitions a minute before this; one partition must fit in it.
  timeout     = 900
  memory_size = 1024
  kms_key_arn = local.kms_key_arn
  environment {
    variables = merge(local.common_environment, {
      TIDEMARK_BACKUP_ID = var.backup_id
    })
  }
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function["validator"].name
  }
}

resource "aws_iam_role" "validator" {
  name               = "${local.name}-validator"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

resource "aws_iam_role_policy" "validator" {
  role   = aws_iam_role.validator.id
  policy = data.aws_iam_policy_document.validator.json
}

data "aws_iam_policy_document" "validator" {
  statement {
    sid       = "ReadTheBackup"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.backups.arn}/${local.backup_root}/*"]
  }
  statement {
    sid       = "WriteReports"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.backups.arn}/${local.backup_root}/validations/*"]
  }
  statement {
    sid       = "ListTheBackup"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.backups.arn]
  }
  statement {
    sid       = "Index"
    actions   = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"]
    resources = [aws_dynamodb_table.index.arn]
  }
  statement {
    sid       = "AuditAndHealthItems"
    actions   = ["dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.index.arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["audit#*", "*#health"]
    }
  }
  statement {
    sid       = "WriteAuditRecords"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.backups.arn}/${local.objects_root}audit/*"]
  }
  statement {
    sid       = "OpenSealedSegments"
    actions   = ["kms:Decrypt"]
    resources = [local.kms_key_arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["validator"].arn}:*"]
  }
}

resource "aws_iam_role" "validation_state_machine" {
  name               = "${local.name}-validation-state-machine"
  assume_role_policy = data.aws_iam_policy_document.states_assume.json
}

resource "aws_iam_role_policy" "validation_state_machine" {
  role   = aws_iam_role.validation_state_machine.id
  policy = data.aws_iam_policy_document.validation_state_machine.json
}

data "aws_iam_policy_document" "validation_state_machine" {
  source_policy_documents = [data.aws_iam_policy_document.state_machine_delivery.json]
  statement {
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.validator.arn]
  }
}
