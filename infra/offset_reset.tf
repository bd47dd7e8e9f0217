# The offset-reset state machine from statemachines/offset-reset.asl.json, unchanged, and its
# function (restore.tf's role). The restore machine runs it as a child execution.

resource "aws_sfn_state_machine" "offset_reset" {
  name     = "${local.name}-offset-reset"
  role_arn = aws_iam_role.offset_reset_state_machine.arn
  type     = "STANDARD"
  definition = templatefile("${path.module}/../statemachines/offset-reset.asl.json", {
    OffsetResetFunctionArn = aws_lambda_function.offset_reset.arn
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

resource "aws_lambda_function" "offset_reset" {
  function_name    = "${local.name}-offset-reset"
  description      = "Plans, applies, verifies and rolls back consumer group offset resets."
  role             = aws_iam_role.restore_function.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${var.lambda_zip_dir}/offset-reset/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_zip_dir}/offset-reset/bootstrap.zip")
  timeout          = 300
  memory_size      = 512
  kms_key_arn      = local.kms_key_arn
  environment {
    variables = merge(local.common_environment, {
      TIDEMARK_OFFSET_RESET_CONCURRENCY = tostring(var.offset_reset_concurrency)
    })
  }
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function["offset-reset"].name
  }
  dynamic "vpc_config" {
    for_each = local.uses_vpc ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }
}

resource "aws_iam_role" "offset_reset_state_machine" {
  name               = "${local.name}-offset-reset-state-machine"
  assume_role_policy = data.aws_iam_policy_document.states_assume.json
}

resource "aws_iam_role_policy" "offset_reset_state_machine" {
  role   = aws_iam_role.offset_reset_state_machine.id
  policy = data.aws_iam_policy_document.offset_reset_state_machine.json
}

data "aws_iam_policy_document" "offset_reset_state_machine" {
  source_policy_documents = [data.aws_iam_policy_document.state_machine_delivery.json]
  statement {
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.offset_reset.arn]
  }
}
