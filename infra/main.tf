# Tidemark: backup and point-in-time recovery for Apache Kafka and Amazon MSK. The same system as
# template.yaml (local/py/check_deploy.py compares them): one file per concern.
#   kms.tf         the data key          storage.tf   bucket and index table
#   backup.tf      writer and mappings   snapshots.tf scheduled offset snapshotter
#   restore.tf     restore machine       offset_reset.tf offset-reset machine
#   validation.tf  validation machine    maintenance.tf retention and compaction
#   schedules.tf   validation and maintenance schedules
#   logs.tf        log groups            alarms.tf    alarms, alarm topic, dashboard

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  name      = "${var.name_prefix}-${var.backup_id}"
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id

  kms_key_arn = var.kms_key_arn != "" ? var.kms_key_arn : aws_kms_key.data[0].arn
  # Where this backup's objects live, and everything Tidemark writes (restores, offset resets).
  backup_root  = var.key_prefix != "" ? "${var.key_prefix}/${var.backup_id}" : var.backup_id
  objects_root = var.key_prefix != "" ? "${var.key_prefix}/" : ""

  is_msk   = var.cluster_type == "msk"
  uses_vpc = length(var.subnet_ids) > 0
  cluster_secret_arns = compact([
    var.sasl_scram_secret_arn, var.client_certificate_secret_arn, var.server_root_ca_secret_arn,
  ])
  # MSK IAM resource ARNs: cluster/NAME/UUID -> topic/NAME/UUID/*, group/NAME/UUID/*.
  msk_arn_parts = split(":cluster/", var.msk_cluster_arn)
  msk_topics    = local.is_msk ? "${local.msk_arn_parts[0]}:topic/${try(local.msk_arn_parts[1], "")}/*" : ""
  msk_groups    = local.is_msk ? "${local.msk_arn_parts[0]}:group/${try(local.msk_arn_parts[1], "")}/*" : ""

  # How the functions that talk to the source cluster reach it.
  source_cluster_environment = {
    TIDEMARK_MSK_CLUSTER_ARN                  = local.is_msk ? var.msk_cluster_arn : ""
    TIDEMARK_KAFKA_BOOTSTRAP_SERVERS          = local.is_msk ? "" : var.bootstrap_servers
    TIDEMARK_KAFKA_AUTH                       = var.kafka_auth
    TIDEMARK_KAFKA_SASL_SCRAM_SECRET_ARN      = var.sasl_scram_secret_arn
    TIDEMARK_KAFKA_TLS_CLIENT_CERT_SECRET_ARN = var.client_certificate_secret_arn
    TIDEMARK_KAFKA_TLS_CA_SECRET_ARN          = var.server_root_ca_secret_arn
  }

  # Every function gets these; template.yaml's Globals.
  common_environment = {
    TIDEMARK_BUCKET              = aws_s3_bucket.backups.id
    TIDEMARK_TABLE               = aws_dynamodb_table.index.name
    TIDEMARK_PREFIX              = var.key_prefix
    TIDEMARK_METRICS_NAMESPACE   = var.metrics_namespace
    TIDEMARK_LOG_FORMAT          = "json"
    TIDEMARK_S3_FORCE_PATH_STYLE = tostring(var.s3_force_path_style)
    RUST_LOG                     = "info"
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

# Both state machines deliver their logs and traces; these actions take no resource narrower
# than *.
data "aws_iam_policy_document" "state_machine_delivery" {
  statement {
    actions = [
      "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
      "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    ]
    resources = ["*"]
  }
}
