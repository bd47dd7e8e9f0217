# Example root module: back up two topics of an MSK cluster with SASL/SCRAM, functions in the
# cluster's private subnets. `terraform init && terraform apply` after building the functions
# (docs/deploy.md).

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  type        = string
  default     = "eu-west-1"
  description = "Region of the cluster and the backups."
}

variable "msk_cluster_arn" {
  type        = string
  description = "The cluster to back up."
}

variable "sasl_scram_secret_arn" {
  type        = string
  description = "An AmazonMSK_* secret the cluster has associated."
}

variable "secrets_kms_key_arn" {
  type        = string
  description = "The customer managed key that encrypts that secret."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets that reach the brokers, with S3 and DynamoDB gateway endpoints."
}

variable "security_group_ids" {
  type        = list(string)
  description = "A security group the brokers accept."
}

variable "alarm_email" {
  type        = string
  default     = ""
  description = "Who hears about alarms."
}

module "tidemark" {
  source = "../.."

  backup_id      = "payments-prod"
  topics         = ["payments.captured", "payments.refunded"]
  lambda_zip_dir = "${path.root}/../../../target/lambda"

  cluster_type          = "msk"
  msk_cluster_arn       = var.msk_cluster_arn
  kafka_auth            = "sasl-scram-sha-512"
  sasl_scram_secret_arn = var.sasl_scram_secret_arn
  secrets_kms_key_arn   = var.secrets_kms_key_arn
  subnet_ids            = var.subnet_ids
  security_group_ids    = var.security_group_ids

  retention_short_topics = "payments\\.refunded"
  rpo_minutes            = 15
  alarm_email            = var.alarm_email
}

output "restore_state_machine_arn" {
  value       = module.tidemark.restore_state_machine_arn
  description = "Start restores here."
}

output "offset_reset_state_machine_arn" {
  value       = module.tidemark.offset_reset_state_machine_arn
  description = "Start offset resets here."
}

output "dashboard_url" {
  value       = module.tidemark.dashboard_url
  description = "The CloudWatch dashboard."
}
