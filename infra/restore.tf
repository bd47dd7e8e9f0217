# The restore state machine from statemachines/restore.asl.json, unchanged: templatefile() fills
# in the function and offset-reset machine ARNs, as SAM's DefinitionSubstitutions does.

resource "aws_sfn_state_machine" "restore" {
  name     = "${var.name_prefix}-restore"
  role_arn = aws_iam_role.restore_state_machine.arn
  type     = "STANDARD"
  definition = templatefile("${path.module}/../statemachines/restore.asl.json", {
    RestoreCoordinatorArn      = aws_lambda_function.restore_coordinator.arn
    RestorePartitionArn        = aws_lambda_function.restore_partition.arn
    OffsetResetFunctionArn     = aws_lambda_function.offset_reset.arn
    OffsetResetStateMachineArn = aws_sfn_state_machine.offset_reset.arn
  })
}

resource "aws_lambda_function" "restore_coordinator" {
  function_name = "${var.name_prefix}-restore-coordinator"
  role          = aws_iam_role.restore_function.arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]
  filename      = "${var.lambda_zip_dir}/restore-coordinator/bootstrap.zip"
  timeout       = 300
  memory_size   = 512
  environment {
    variables = local.restore_environment
  }
}

resource "aws_lambda_function" "restore_partition" {
  function_name = "${var.name_prefix}-restore-partition"
  role          = aws_iam_role.restore_function.arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]
  filename      = "${var.lambda_zip_dir}/restore-partition/bootstrap.zip"
  timeout       = 900
  memory_size   = 512
  environment {
    variables = local.restore_environment
  }
}

locals {
  restore_environment = {
    TIDEMARK_BUCKET = var.backup_bucket_name
    TIDEMARK_TABLE  = var.index_table_name
    TIDEMARK_PREFIX = var.key_prefix
  }
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "states_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "restore_function" {
  name               = "${var.name_prefix}-restore-function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "restore_function" {
  statement {
    actions   = ["s3:GetObject", "s3:PutObject", "s3:ListBucket"]
    resources = ["arn:aws:s3:::${var.backup_bucket_name}", "arn:aws:s3:::${var.backup_bucket_name}/*"]
  }
  statement {
    actions   = ["dynamodb:GetItem", "dynamodb:Query"]
    resources = ["arn:aws:dynamodb:*:*:table/${var.index_table_name}"]
  }
  statement {
    actions   = ["kafka:GetBootstrapBrokers", "secretsmanager:GetSecretValue"]
    resources = ["*"]
  }
  statement {
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "restore_function" {
  role   = aws_iam_role.restore_function.id
  policy = data.aws_iam_policy_document.restore_function.json
}

resource "aws_iam_role" "restore_state_machine" {
  name               = "${var.name_prefix}-restore-state-machine"
  assume_role_policy = data.aws_iam_policy_document.states_assume.json
}

data "aws_iam_policy_document" "restore_state_machine" {
  statement {
    actions = ["lambda:InvokeFunction"]
    resources = [
      aws_lambda_function.restore_coordinator.arn,
      aws_lambda_function.restore_partition.arn,
      # A failed report undoes the offset reset with that function's rollback steps.
      aws_lambda_function.offset_reset.arn,
    ]
  }
  # ResetOffsets runs the offset-reset machine and waits for it (startExecution.sync:2).
  statement {
    actions = ["events:PutTargets", "events:PutRule", "events:DescribeRule"]
    resources = [
      "arn:aws:events:*:*:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule",
    ]
  }
  # The Distributed Map reads the partition list from the bucket and runs child executions.
  statement {
    actions   = ["s3:GetObject"]
    resources = ["arn:aws:s3:::${var.backup_bucket_name}/*"]
  }
  statement {
    actions   = ["states:StartExecution", "states:DescribeExecution", "states:StopExecution"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "restore_state_machine" {
  role   = aws_iam_role.restore_state_machine.id
  policy = data.aws_iam_policy_document.restore_state_machine.json
}
