# The infra/ module as deployed into LocalStack by localstack/deploy.sh (through tflocal, which
# points the AWS provider at http://localhost:4566). The differences from AWS are the settings
# below, each for a reason in localstack/README.md.

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
  region = "us-east-1"
}

variable "architecture" {
  type        = string
  default     = "x86_64"
  description = "The Docker host's architecture: LocalStack runs the functions in containers on it."
}

variable "lambda_zip_dir" {
  type        = string
  description = "Where cargo lambda put the function zips (deploy.sh sets it)."
}

module "tidemark" {
  source = "../infra"

  backup_id = "payments-local"
  topics    = ["payments.captured"]
  # The compose broker, as the functions see it on the compose network.
  cluster_type      = "self-managed"
  bootstrap_servers = "kafka:9092"
  kafka_auth        = "plaintext"
  # LocalStack's free tier has no Kafka event source mapping: the bridge invokes the writer.
  event_source_mappings  = false
  client_side_encryption = true
  s3_force_path_style    = true
  groups_include         = "payment-.*"
  # The demo backs up in bursts; a quiet topic is no alarm here.
  staleness_minutes = 0
  architecture      = var.architecture
  lambda_zip_dir    = var.lambda_zip_dir
}

output "bucket" {
  value = module.tidemark.backup_bucket_name
}

output "table" {
  value = module.tidemark.index_table_name
}

output "backup_writer" {
  value = module.tidemark.backup_writer_function_name
}

output "offset_snapshotter" {
  value = module.tidemark.offset_snapshotter_function_name
}

output "restore_state_machine_arn" {
  value = module.tidemark.restore_state_machine_arn
}

output "offset_reset_state_machine_arn" {
  value = module.tidemark.offset_reset_state_machine_arn
}

output "validation_state_machine_arn" {
  value = module.tidemark.validation_state_machine_arn
}

output "drill_state_machine_arn" {
  value = module.tidemark.drill_state_machine_arn
}

output "erasure_state_machine_arn" {
  value = module.tidemark.erasure_state_machine_arn
}
