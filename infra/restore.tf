# The restore state machine from statemachines/restore.asl.json, unchanged: templatefile() fills
# in the function and offset-reset machine ARNs, as SAM's DefinitionSubstitutions does. Its
# functions and the offset-reset function share one role: the target cluster comes with each
# request, so they may read any MSK cluster's brokers and AmazonMSK_* secret in this account,
# plus extra_target_secret_arns.

resource "aws_sfn_state_machine" "restore" {
  name     = "${local.name}-restore"
  role_arn = aws_iam_role.restore_state_machine.arn
  type     = "STANDARD"
  definition = templatefile("${path.module}/../statemachines/restore.asl.json", {
    RestoreCoordinatorArn      = aws_lambda_function.restore_coordinator.arn
    RestorePartitionArn        = aws_lambda_function.restore_partition.arn
    OffsetResetFunctionArn     = aws_lambda_function.offset_reset.arn
    OffsetResetStateMachineArn = aws_sfn_state_machine.offset_reset.arn
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

resource "aws_lambda_function" "restore_coordinator" {
  function_name    = "${local.name}-restore-coordinator"
  description      = "Plans a restore, creates and validates its topics, reports and rolls back."
  role             = aws_iam_role.restore_function.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${var.lambda_zip_dir}/restore-coordinator/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_zip_dir}/restore-coordinator/bootstrap.zip")
  timeout          = 300
  memory_size      = 512
  kms_key_arn      = local.kms_key_arn
  environment {
    variables = local.common_environment
  }
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function["restore-coordinator"].name
  }
  dynamic "vpc_config" {
    for_each = local.uses_vpc ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }
}

resource "aws_lambda_function" "restore_partition" {
  function_name    = "${local.name}-restore-partition"
  description      = "Restores one partition's records, resuming at the next record after a timeout."
  role             = aws_iam_role.restore_function.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${var.lambda_zip_dir}/restore-partition/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_zip_dir}/restore-partition/bootstrap.zip")
  timeout          = 900
  memory_size      = 1024
  kms_key_arn      = local.kms_key_arn
  environment {
    variables = local.common_environment
  }
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function["restore-partition"].name
  }
  dynamic "vpc_config" {
    for_each = local.uses_vpc ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }
}

resource "aws_iam_role" "restore_function" {
  name               = "${local.name}-restore-function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

resource "aws_iam_role_policy" "restore_function" {
  role   = aws_iam_role.restore_function.id
  policy = data.aws_iam_policy_document.restore_function.json
}

resource "aws_iam_role_policy_attachment" "restore_function_vpc" {
  count      = local.uses_vpc ? 1 : 0
  role       = aws_iam_role.restore_function.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

data "aws_iam_policy_document" "restore_function" {
  statement {
    sid       = "ReadBackups"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.backups.arn}/${local.objects_root}*"]
  }
  # A restore writes only its own records (plans, progress, offset maps, reports) and an offset
  # reset its own; never a backup's segments.
  statement {
    sid     = "WriteRestoreRecords"
    actions = ["s3:PutObject"]
    resources = [
      "${aws_s3_bucket.backups.arn}/${local.objects_root}*/restores/*",
      "${aws_s3_bucket.backups.arn}/${local.objects_root}offset-resets/*",
    ]
  }
  # `*/restores/*` would also match a topic named "restores": segments stay out of reach.
  statement {
    sid       = "NeverWriteSegments"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.backups.arn}/${local.objects_root}*/topics/*"]
  }
  statement {
    sid       = "ListBackups"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.backups.arn]
  }
  statement {
    sid       = "Catalog"
    actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
    resources = [aws_dynamodb_table.index.arn]
  }
  # Drills write their evidence; every operation its audit record (docs/operations.md).
  statement {
    sid     = "WriteDrillAndAuditRecords"
    actions = ["s3:PutObject"]
    resources = [
      "${aws_s3_bucket.backups.arn}/${local.objects_root}*/drills/*",
      "${aws_s3_bucket.backups.arn}/${local.objects_root}audit/*",
    ]
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
    sid       = "DecryptBackups"
    actions   = ["kms:Decrypt"]
    resources = [local.kms_key_arn]
  }
  # Data keys only for S3's own encryption of the records above: no sealed segments.
  statement {
    sid       = "EncryptRecordsInS3"
    actions   = ["kms:GenerateDataKey"]
    resources = [local.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
  statement {
    sid     = "Logs"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [
      for name in ["restore-coordinator", "restore-partition", "offset-reset", "drill"] :
      "${aws_cloudwatch_log_group.function[name].arn}:*"
    ]
  }
  statement {
    sid       = "TargetClusters"
    actions   = ["kafka:GetBootstrapBrokers"]
    resources = ["arn:${local.partition}:kafka:${local.region}:${local.account}:cluster/*"]
  }
  statement {
    sid     = "TargetClusterSecrets"
    actions = ["secretsmanager:GetSecretValue"]
    resources = concat(
      ["arn:${local.partition}:secretsmanager:${local.region}:${local.account}:secret:AmazonMSK_*"],
      local.cluster_secret_arns,
      var.extra_target_secret_arns,
    )
  }
  dynamic "statement" {
    for_each = var.secrets_kms_key_arn != "" ? [1] : []
    content {
      sid       = "TargetClusterSecretsKey"
      actions   = ["kms:Decrypt"]
      resources = [var.secrets_kms_key_arn]
    }
  }
  statement {
    sid = "TargetClustersWithIam"
    actions = [
      "kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka-cluster:DescribeClusterDynamicConfiguration",
      "kafka-cluster:CreateTopic", "kafka-cluster:DeleteTopic", "kafka-cluster:DescribeTopic",
      "kafka-cluster:DescribeTopicDynamicConfiguration", "kafka-cluster:WriteData", "kafka-cluster:ReadData",
      "kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup", "kafka-cluster:DeleteGroup",
    ]
    resources = [
      "arn:${local.partition}:kafka:${local.region}:${local.account}:cluster/*",
      "arn:${local.partition}:kafka:${local.region}:${local.account}:topic/*",
      "arn:${local.partition}:kafka:${local.region}:${local.account}:group/*",
    ]
  }
}

resource "aws_iam_role" "restore_state_machine" {
  name               = "${local.name}-restore-state-machine"
  assume_role_policy = data.aws_iam_policy_document.states_assume.json
}

resource "aws_iam_role_policy" "restore_state_machine" {
  role   = aws_iam_role.restore_state_machine.id
  policy = data.aws_iam_policy_document.restore_state_machine.json
}

data "aws_iam_policy_document" "restore_state_machine" {
  source_policy_documents = [data.aws_iam_policy_document.state_machine_delivery.json]
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
    actions   = ["states:StartExecution"]
    resources = [aws_sfn_state_machine.offset_reset.arn]
  }
  statement {
    actions   = ["states:DescribeExecution", "states:StopExecution"]
    resources = ["arn:${local.partition}:states:${local.region}:${local.account}:execution:${local.name}-offset-reset:*"]
  }
  statement {
    actions   = ["events:PutTargets", "events:PutRule", "events:DescribeRule"]
    resources = ["arn:${local.partition}:events:${local.region}:${local.account}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"]
  }
  # The Distributed Map reads the partition list from the bucket and runs child executions of
  # this same machine.
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
    resources = ["arn:${local.partition}:states:${local.region}:${local.account}:stateMachine:${local.name}-restore"]
  }
  statement {
    actions   = ["states:DescribeExecution", "states:StopExecution"]
    resources = ["arn:${local.partition}:states:${local.region}:${local.account}:execution:${local.name}-restore/*"]
  }
}
