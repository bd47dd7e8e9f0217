variable "name_prefix" {
  type        = string
  default     = "tidemark"
  description = "Prefix of every resource name."
}

variable "backup_bucket_name" {
  type        = string
  description = "Bucket holding the backups (the writer's TIDEMARK_BUCKET)."
}

variable "index_table_name" {
  type        = string
  description = "DynamoDB index, checkpoint and snapshot catalog table (the writer's TIDEMARK_TABLE)."
}

variable "key_prefix" {
  type        = string
  default     = ""
  description = "Key prefix inside the bucket (the writer's TIDEMARK_PREFIX)."
}

variable "architecture" {
  type        = string
  default     = "x86_64"
  description = "Lambda architecture of the function builds."
  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "lambda_zip_dir" {
  type        = string
  description = "Directory of `cargo lambda build --release --output-format zip` output (target/lambda)."
}

variable "offset_reset_concurrency" {
  type        = number
  default     = 32
  description = "Consumer groups an offset reset commits or reads at once (TIDEMARK_OFFSET_RESET_CONCURRENCY)."
  validation {
    condition     = var.offset_reset_concurrency >= 1 && var.offset_reset_concurrency <= 256
    error_message = "offset_reset_concurrency must be from 1 to 256."
  }
}
