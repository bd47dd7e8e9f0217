# The offset snapshotter: consumer group offsets, watermarks and topic configs on a schedule.

resource "aws_lambda_function" "offset_snapshotter" {
  function_name    = "${local.name}-offset-snapshotter"
  description      = "Snapshots consumer group offsets, watermarks and topic configs on a schedule."
  role             = aws_iam_role.offset_snapshotter.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${var.lambda_zip_dir}/offset-snapshotter/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_zip_dir}/offset-snapshotter/bootstrap.zip")
  # Samples × interval plus the cluster requests of the last sample.
  timeout     = 900
  memory_size = 512
  kms_key_arn = local.kms_key_arn
  environment {
    variables = merge(local.common_environment, {
      TIDEMARK_BACKUP_ID                 = var.backup_id
      TIDEMARK_TOPICS_INCLUDE            = join("|", var.topics)
      TIDEMARK_TOPICS_EXCLUDE            = var.topics_exclude
      TIDEMARK_GROUPS_INCLUDE            = var.groups_include
      TIDEMARK_GROUPS_EXCLUDE            = var.groups_exclude
      TIDEMARK_COMPRESSION_LEVEL         = tostring(var.compression_level)
      TIDEMARK_SNAPSHOT_SAMPLES          = tostring(var.snapshot_samples)
      TIDEMARK_SNAPSHOT_INTERVAL_SECONDS = tostring(var.snapshot_interval_seconds)
      TIDEMARK_STALL_AFTER_SECONDS       = tostring(var.stall_after_seconds)
      TIDEMARK_DRILL_INTERVAL_HOURS      = tostring(var.drill_interval_hours)
    }, local.source_cluster_environment)
  }
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function["offset-snapshotter"].name
  }
  dynamic "vpc_config" {
    for_each = local.uses_vpc ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }
}

resource "aws_cloudwatch_event_rule" "snapshot" {
  name                = "${local.name}-offset-snapshot"
  description         = "Tidemark offset snapshot"
  schedule_expression = var.snapshot_schedule
}

resource "aws_cloudwatch_event_target" "snapshot" {
  rule = aws_cloudwatch_event_rule.snapshot.name
  arn  = aws_lambda_function.offset_snapshotter.arn
}

resource "aws_lambda_permission" "snapshot_schedule" {
  statement_id  = "AllowSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.offset_snapshotter.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.snapshot.arn
}

resource "aws_iam_role" "offset_snapshotter" {
  name               = "${local.name}-offset-snapshotter"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

resource "aws_iam_role_policy" "offset_snapshotter" {
  role   = aws_iam_role.offset_snapshotter.id
  policy = data.aws_iam_policy_document.offset_snapshotter.json
}

resource "aws_iam_role_policy_attachment" "offset_snapshotter_vpc" {
  count      = local.uses_vpc ? 1 : 0
  role       = aws_iam_role.offset_snapshotter.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

data "aws_iam_policy_document" "offset_snapshotter" {
  statement {
    sid       = "ReadBackup"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.backups.arn}/${local.backup_root}/*"]
  }
  statement {
    sid       = "Snapshots"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.backups.arn}/${local.backup_root}/snapshots/*"]
  }
  statement {
    sid       = "Catalog"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]
    resources = [aws_dynamodb_table.index.arn]
  }
  # The freshness aspect of the backup's health record.
  statement {
    sid       = "HealthRecord"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.index.arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["*#health"]
    }
  }
  statement {
    sid       = "EncryptWithTheDataKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [local.kms_key_arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["offset-snapshotter"].arn}:*"]
  }
  dynamic "statement" {
    for_each = local.is_msk ? [1] : []
    content {
      sid       = "Cluster"
      actions   = ["kafka:GetBootstrapBrokers"]
      resources = [var.msk_cluster_arn]
    }
  }
  dynamic "statement" {
    for_each = var.kafka_auth == "msk-iam" ? [1] : []
    content {
      sid = "DescribesGroupsAndTopics"
      actions = [
        "kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka-cluster:DescribeClusterDynamicConfiguration",
        "kafka-cluster:DescribeGroup", "kafka-cluster:DescribeTopic", "kafka-cluster:DescribeTopicDynamicConfiguration",
      ]
      resources = [var.msk_cluster_arn, local.msk_topics, local.msk_groups]
    }
  }
  dynamic "statement" {
    for_each = length(local.cluster_secret_arns) > 0 ? [1] : []
    content {
      sid       = "ClusterSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.cluster_secret_arns
    }
  }
  dynamic "statement" {
    for_each = var.secrets_kms_key_arn != "" ? [1] : []
    content {
      sid       = "ClusterSecretsKey"
      actions   = ["kms:Decrypt"]
      resources = [var.secrets_kms_key_arn]
    }
  }
}
