# The data key: bucket, index table, queue, alarm topic, log groups and function environments.
# Created unless kms_key_arn names one.

resource "aws_kms_key" "data" {
  count               = var.kms_key_arn == "" ? 1 : 0
  description         = "Tidemark ${var.backup_id} backups"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.data_key.json
  # Backups outlive the stack; a destroyed key would make them unreadable.
  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_kms_alias" "data" {
  count         = var.kms_key_arn == "" ? 1 : 0
  name          = "alias/tidemark/${var.backup_id}"
  target_key_id = aws_kms_key.data[0].key_id
}

data "aws_iam_policy_document" "data_key" {
  # Administration and use stay with IAM policies in this account; each role gets only what it needs.
  statement {
    sid       = "AccountIamPolicies"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/tidemark/${var.backup_id}/*"]
    }
  }
  statement {
    sid       = "AlarmsToEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
  }
}
