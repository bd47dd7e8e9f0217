# The offset-reset state machine from statemachines/offset-reset.asl.json, unchanged, and its
# function. The restore machine runs it as a child execution (restore.tf).

resource "aws_sfn_state_machine" "offset_reset" {
  name     = "${var.name_prefix}-offset-reset"
  role_arn = aws_iam_role.offset_reset_state_machine.arn
  type     = "STANDARD"
  definition = templatefile("${path.module}/../statemachines/offset-reset.asl.json", {
    OffsetResetFunctionArn = aws_lambda_function.offset_reset.arn
  })
}

resource "aws_lambda_function" "offset_reset" {
  function_name = "${var.name_prefix}-offset-reset"
  # Same grants as the restore functions: the bucket (its records under offset-resets/,
  # restores' offset mappings, snapshots), the catalog, and cluster secrets.
  role          = aws_iam_role.restore_function.arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]
  filename      = "${var.lambda_zip_dir}/offset-reset/bootstrap.zip"
  timeout       = 300
  memory_size   = 512
  environment {
    variables = merge(local.restore_environment, {
      TIDEMARK_OFFSET_RESET_CONCURRENCY = tostring(var.offset_reset_concurrency)
    })
  }
}

resource "aws_iam_role" "offset_reset_state_machine" {
  name               = "${var.name_prefix}-offset-reset-state-machine"
  assume_role_policy = data.aws_iam_policy_document.states_assume.json
}

data "aws_iam_policy_document" "offset_reset_state_machine" {
  statement {
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.offset_reset.arn]
  }
}

resource "aws_iam_role_policy" "offset_reset_state_machine" {
  role   = aws_iam_role.offset_reset_state_machine.id
  policy = data.aws_iam_policy_document.offset_reset_state_machine.json
}
