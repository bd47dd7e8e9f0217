# The backup writer and one event source mapping per topic (a Kafka mapping takes one topic).
# The mapping uses the writer's role to reach the cluster, so that role carries its grants too.

resource "aws_lambda_function" "backup_writer" {
  function_name    = "${local.name}-backup-writer"
  description      = "Writes each partition's batch as one immutable segment, then advances its checkpoint."
  role             = aws_iam_role.backup_writer.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${var.lambda_zip_dir}/backup-writer/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_zip_dir}/backup-writer/bootstrap.zip")
  timeout          = 120
  memory_size      = 1024
  kms_key_arn      = local.kms_key_arn
  environment {
    variables = merge(local.common_environment, {
      TIDEMARK_BACKUP_ID               = var.backup_id
      TIDEMARK_TOPICS_EXCLUDE          = var.topics_exclude
      TIDEMARK_COMPRESSION_LEVEL       = tostring(var.compression_level)
      TIDEMARK_RETENTION_SHORT_TOPICS  = var.retention_short_topics
      TIDEMARK_RETENTION_LONG_TOPICS   = var.retention_long_topics
      TIDEMARK_SEGMENT_ENCRYPTION_KEY  = var.client_side_encryption ? local.kms_key_arn : ""
      TIDEMARK_SHREDDING_KMS_KEY_ID    = var.crypto_shredding ? local.kms_key_arn : ""
      TIDEMARK_MASKING_RULES           = var.masking_rules
      TIDEMARK_MASKING_HASH_SECRET_ARN = var.masking_hash_secret_arn
      # One malloc arena: each event's compressing threads otherwise keep arenas of their
      # own resident (docs/benchmarks.md: peak RSS 54-59 MiB, 37-38 MiB with one).
      MALLOC_ARENA_MAX = "1"
      # Topic ids for each batch: a recreated topic becomes a new generation at once.
    }, var.writer_reads_topic_ids ? local.source_cluster_environment : {})
  }
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function["backup-writer"].name
  }
  dynamic "vpc_config" {
    for_each = var.writer_reads_topic_ids && local.uses_vpc ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }

  lifecycle {
    precondition {
      condition     = var.cluster_type != "msk" || var.msk_cluster_arn != ""
      error_message = "cluster_type msk needs msk_cluster_arn."
    }
    precondition {
      condition     = var.cluster_type != "self-managed" || var.bootstrap_servers != ""
      error_message = "cluster_type self-managed needs bootstrap_servers (host:port,host:port)."
    }
    precondition {
      condition     = var.cluster_type == "msk" || var.kafka_auth != "msk-iam"
      error_message = "kafka_auth msk-iam works only with cluster_type msk."
    }
    precondition {
      condition     = !startswith(var.kafka_auth, "sasl-scram") || var.sasl_scram_secret_arn != ""
      error_message = "kafka_auth sasl-scram-* needs sasl_scram_secret_arn."
    }
    precondition {
      condition     = var.kafka_auth != "mtls" || var.client_certificate_secret_arn != ""
      error_message = "kafka_auth mtls needs client_certificate_secret_arn."
    }
  }
}

resource "aws_lambda_event_source_mapping" "topic" {
  for_each          = var.event_source_mappings ? toset(var.topics) : toset([])
  function_name     = aws_lambda_function.backup_writer.arn
  topics            = [each.value]
  event_source_arn  = local.is_msk ? var.msk_cluster_arn : null
  starting_position = var.starting_position
  batch_size        = var.batch_size
  # Seconds the mapping gathers records before invoking.
  maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds

  dynamic "amazon_managed_kafka_event_source_config" {
    for_each = local.is_msk ? [1] : []
    content {
      consumer_group_id = "${var.consumer_group_prefix}.${var.backup_id}.${each.value}"
    }
  }
  dynamic "self_managed_event_source" {
    for_each = local.is_msk ? [] : [1]
    content {
      endpoints = { KAFKA_BOOTSTRAP_SERVERS = var.bootstrap_servers }
    }
  }
  dynamic "self_managed_kafka_event_source_config" {
    for_each = local.is_msk ? [] : [1]
    content {
      consumer_group_id = "${var.consumer_group_prefix}.${var.backup_id}.${each.value}"
    }
  }
  dynamic "source_access_configuration" {
    for_each = local.esm_access
    content {
      type = source_access_configuration.value.type
      uri  = source_access_configuration.value.uri
    }
  }

  dynamic "provisioned_poller_config" {
    for_each = var.minimum_pollers > 0 ? [1] : []
    content {
      minimum_pollers = var.minimum_pollers
      maximum_pollers = var.maximum_pollers
    }
  }
  maximum_retry_attempts         = var.minimum_pollers > 0 ? var.maximum_retry_attempts : null
  maximum_record_age_in_seconds  = var.minimum_pollers > 0 ? var.maximum_record_age_in_seconds : null
  bisect_batch_on_function_error = var.minimum_pollers > 0 ? var.bisect_batch_on_function_error : null

  dynamic "destination_config" {
    for_each = var.failed_batch_queue ? [1] : []
    content {
      on_failure {
        destination_arn = aws_sqs_queue.failed_batches[0].arn
      }
    }
  }
}

locals {
  # MSK mappings only speak SCRAM-SHA-512.
  scram_type = !local.is_msk && var.kafka_auth == "sasl-scram-sha-256" ? "SASL_SCRAM_256_AUTH" : "SASL_SCRAM_512_AUTH"
  esm_access = concat(
    startswith(var.kafka_auth, "sasl-scram") ? [{ type = local.scram_type, uri = var.sasl_scram_secret_arn }] : [],
    var.kafka_auth == "mtls" ? [{ type = "CLIENT_CERTIFICATE_TLS_AUTH", uri = var.client_certificate_secret_arn }] : [],
    # The rest are for self-managed clusters; MSK mappings find their own network.
    !local.is_msk && var.server_root_ca_secret_arn != "" ? [{ type = "SERVER_ROOT_CA_CERTIFICATE", uri = var.server_root_ca_secret_arn }] : [],
    !local.is_msk ? [for id in slice(var.subnet_ids, 0, min(3, length(var.subnet_ids))) : { type = "VPC_SUBNET", uri = "subnet:${id}" }] : [],
    !local.is_msk && local.uses_vpc ? [{ type = "VPC_SECURITY_GROUP", uri = "security_group:${var.security_group_ids[0]}" }] : [],
  )
}

resource "aws_sqs_queue" "failed_batches" {
  count                     = var.failed_batch_queue ? 1 : 0
  name                      = "${local.name}-failed-batches"
  message_retention_seconds = 1209600
  kms_master_key_id         = local.kms_key_arn
}

resource "aws_iam_role" "backup_writer" {
  name               = "${local.name}-backup-writer"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

resource "aws_iam_role_policy" "backup_writer" {
  role   = aws_iam_role.backup_writer.id
  policy = data.aws_iam_policy_document.backup_writer.json
}

data "aws_iam_policy_document" "backup_writer" {
  statement {
    sid       = "Segments"
    actions   = ["s3:PutObject", "s3:PutObjectTagging", "s3:GetObject"]
    resources = ["${aws_s3_bucket.backups.arn}/${local.backup_root}/*"]
  }
  statement {
    sid       = "IndexAndCheckpoints"
    actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem", "dynamodb:Query"]
    resources = [aws_dynamodb_table.index.arn]
  }
  statement {
    sid       = "EncryptWithTheDataKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [local.kms_key_arn]
  }
  dynamic "statement" {
    for_each = var.masking_hash_secret_arn != "" ? [1] : []
    content {
      sid       = "MaskingHashKey"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [var.masking_hash_secret_arn]
    }
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["backup-writer"].arn}:*"]
  }
  # What the event source mapping does with this role: reach the cluster, read the topic,
  # commit its own group.
  statement {
    sid = "EventSourceNetwork"
    actions = [
      "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs",
    ]
    resources = ["*"]
  }
  dynamic "statement" {
    for_each = local.is_msk ? [1] : []
    content {
      sid       = "EventSourceCluster"
      actions   = ["kafka:DescribeCluster", "kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers"]
      resources = [var.msk_cluster_arn]
    }
  }
  dynamic "statement" {
    for_each = var.kafka_auth == "msk-iam" ? [1] : []
    content {
      sid = "EventSourceReadsTopics"
      actions = [
        "kafka-cluster:Connect", "kafka-cluster:DescribeClusterDynamicConfiguration", "kafka-cluster:DescribeGroup",
        "kafka-cluster:AlterGroup", "kafka-cluster:DescribeTopic", "kafka-cluster:ReadData",
      ]
      resources = [
        var.msk_cluster_arn,
        local.msk_topics,
        replace(local.msk_groups, "/*", "/${var.consumer_group_prefix}.*"),
      ]
    }
  }
  dynamic "statement" {
    for_each = length(local.cluster_secret_arns) > 0 ? [1] : []
    content {
      sid       = "EventSourceSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.cluster_secret_arns
    }
  }
  dynamic "statement" {
    for_each = var.secrets_kms_key_arn != "" ? [1] : []
    content {
      sid       = "EventSourceSecretsKey"
      actions   = ["kms:Decrypt"]
      resources = [var.secrets_kms_key_arn]
    }
  }
  dynamic "statement" {
    for_each = var.failed_batch_queue ? [1] : []
    content {
      sid       = "FailedBatches"
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.failed_batches[0].arn]
    }
  }
}

# Who may read this backup: attach to the people and roles that restore or inspect it. For a
# masked backup (masking_rules) that can be a wide group; the unmasked backup's stays narrow.
resource "aws_iam_policy" "backup_reader" {
  name        = "${local.name}-reader"
  description = "Read Tidemark backup ${var.backup_id} (segments, index, snapshots, reports)"
  policy      = data.aws_iam_policy_document.backup_reader.json
}

data "aws_iam_policy_document" "backup_reader" {
  statement {
    sid       = "ReadTheBackup"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.backups.arn}/${local.backup_root}/*"]
  }
  statement {
    sid       = "ListTheBackup"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.backups.arn]
  }
  statement {
    sid       = "ReadTheIndex"
    actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan"]
    resources = [aws_dynamodb_table.index.arn]
  }
  statement {
    sid       = "DecryptWithTheBackupsKey"
    actions   = ["kms:Decrypt"]
    resources = [local.kms_key_arn]
  }
}
