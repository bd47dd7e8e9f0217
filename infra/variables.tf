# Every choice template.yaml offers as a parameter, with the same defaults (docs/deploy.md).

# --- Backup ---------------------------------------------------------------------------------

variable "name_prefix" {
  type        = string
  default     = "tidemark"
  description = "Prefix of every resource name; names are {name_prefix}-{backup_id}-{what}."
}

variable "backup_id" {
  type        = string
  description = "Names this backup lineage (one cluster, one set of settings), e.g. payments-prod."
  validation {
    condition     = can(regex("^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$", var.backup_id))
    error_message = "backup_id must be 1-128 of A-Z a-z 0-9 - _ . and must not start with '.'."
  }
}

variable "topics" {
  type        = list(string)
  description = "Topics to back up, one event source mapping each."
  validation {
    condition     = length(var.topics) > 0
    error_message = "topics must name at least one topic."
  }
}

variable "topics_exclude" {
  type        = string
  default     = ""
  description = "Regular expression of topics the writer skips even if a mapping delivers them."
}

variable "key_prefix" {
  type        = string
  default     = "tidemark"
  description = "Key prefix inside the bucket (TIDEMARK_PREFIX); empty for the bucket root."
  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()/-]{0,200}$", var.key_prefix))
    error_message = "key_prefix may hold up to 200 of A-Z a-z 0-9 ! _ . * ' ( ) / -."
  }
}

variable "compression_level" {
  type        = number
  default     = 3
  description = "zstd level of segments and snapshots."
  validation {
    condition     = var.compression_level >= 1 && var.compression_level <= 19
    error_message = "compression_level must be from 1 to 19."
  }
}

# --- Cluster --------------------------------------------------------------------------------

variable "cluster_type" {
  type        = string
  default     = "msk"
  description = "msk (Amazon MSK, provisioned or serverless) or self-managed."
  validation {
    condition     = contains(["msk", "self-managed"], var.cluster_type)
    error_message = "cluster_type must be msk or self-managed."
  }
}

variable "msk_cluster_arn" {
  type        = string
  default     = ""
  description = "With cluster_type msk, the cluster's ARN."
}

variable "bootstrap_servers" {
  type        = string
  default     = ""
  description = "With cluster_type self-managed, host:port,host:port."
}

variable "kafka_auth" {
  type        = string
  default     = "sasl-scram-sha-512"
  description = "How every function and mapping authenticates: plaintext, tls, mtls, sasl-scram-sha-512, sasl-scram-sha-256 or msk-iam."
  validation {
    condition     = contains(["plaintext", "tls", "mtls", "sasl-scram-sha-512", "sasl-scram-sha-256", "msk-iam"], var.kafka_auth)
    error_message = "kafka_auth must be plaintext, tls, mtls, sasl-scram-sha-512, sasl-scram-sha-256 or msk-iam."
  }
}

variable "sasl_scram_secret_arn" {
  type        = string
  default     = ""
  description = "With sasl-scram-*, the Secrets Manager secret {\"username\", \"password\"} (MSK names these AmazonMSK_*)."
}

variable "client_certificate_secret_arn" {
  type        = string
  default     = ""
  description = "With mtls, the secret {\"certificate\", \"privateKey\", \"privateKeyPassword\"?}."
}

variable "server_root_ca_secret_arn" {
  type        = string
  default     = ""
  description = "Self-managed clusters with a private CA, the secret {\"certificate\"}."
}

variable "secrets_kms_key_arn" {
  type        = string
  default     = ""
  description = "The customer managed KMS key that encrypts the cluster secrets (MSK requires one for SCRAM secrets)."
}

variable "extra_target_secret_arns" {
  type        = list(string)
  default     = []
  description = "Secrets of other clusters that restores and offset resets may target (AmazonMSK_* secrets in this account always are)."
}

variable "subnet_ids" {
  type        = list(string)
  default     = []
  description = "Private subnets that reach the brokers (up to three are passed to self-managed mappings); empty when no VPC is needed."
}

variable "security_group_ids" {
  type        = list(string)
  default     = []
  description = "Security groups the functions and self-managed mappings use (the first is passed to the mappings)."
}

# --- Event source mappings ------------------------------------------------------------------

variable "consumer_group_prefix" {
  type        = string
  default     = "tidemark"
  description = "Each mapping's consumer group is {prefix}.{backup_id}.{topic}."
}

variable "starting_position" {
  type        = string
  default     = "TRIM_HORIZON"
  description = "Where a new mapping starts; TRIM_HORIZON backs up what the topic still holds."
  validation {
    condition     = contains(["TRIM_HORIZON", "LATEST"], var.starting_position)
    error_message = "starting_position must be TRIM_HORIZON or LATEST."
  }
}

variable "batch_size" {
  type        = number
  default     = 10000
  description = "Records per invocation at most (the 6 MB payload cap applies first)."
  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "batch_size must be from 1 to 10000."
  }
}

variable "maximum_batching_window_in_seconds" {
  type        = number
  default     = 10
  description = "How long a mapping gathers records before invoking; larger means fewer, bigger segments."
  validation {
    condition     = var.maximum_batching_window_in_seconds >= 0 && var.maximum_batching_window_in_seconds <= 300
    error_message = "maximum_batching_window_in_seconds must be from 0 to 300."
  }
}

variable "minimum_pollers" {
  type        = number
  default     = 0
  description = "0 runs the mappings in on-demand mode; 1 or more uses provisioned mode, which the retry, age and bisect settings need."
  validation {
    condition     = var.minimum_pollers >= 0 && var.minimum_pollers <= 200
    error_message = "minimum_pollers must be from 0 to 200."
  }
}

variable "maximum_pollers" {
  type        = number
  default     = 10
  description = "Provisioned mode's upper bound of pollers per mapping."
  validation {
    condition     = var.maximum_pollers >= 1 && var.maximum_pollers <= 2000
    error_message = "maximum_pollers must be from 1 to 2000."
  }
}

variable "maximum_retry_attempts" {
  type        = number
  default     = -1
  description = "Provisioned mode; -1 retries a failed batch until it succeeds, so nothing is skipped."
  validation {
    condition     = var.maximum_retry_attempts >= -1 && var.maximum_retry_attempts <= 10000
    error_message = "maximum_retry_attempts must be from -1 to 10000."
  }
}

variable "maximum_record_age_in_seconds" {
  type        = number
  default     = -1
  description = "Provisioned mode; -1 never gives up on old records, otherwise 60-604800."
  validation {
    condition     = var.maximum_record_age_in_seconds == -1 || (var.maximum_record_age_in_seconds >= 60 && var.maximum_record_age_in_seconds <= 604800)
    error_message = "maximum_record_age_in_seconds must be -1 or from 60 to 604800."
  }
}

variable "bisect_batch_on_function_error" {
  type        = bool
  default     = true
  description = "Provisioned mode; split a failing batch in two (segments are keyed by offset range, so halves are safe)."
}

variable "event_source_mappings" {
  type        = bool
  default     = true
  description = "false creates no event source mapping: something else invokes the writer with the same events (the event-source bridge on LocalStack, whose free tier has no Kafka trigger)."
}

variable "failed_batch_queue" {
  type        = bool
  default     = false
  description = "Send the description of a batch Lambda gives up on to an SQS queue (and alarm); Lambda then caps retries at 10."
}

# --- Storage --------------------------------------------------------------------------------

variable "bucket_name" {
  type        = string
  default     = ""
  description = "Name of the backup bucket to create; empty derives one from name_prefix and backup_id."
}

variable "kms_key_arn" {
  type        = string
  default     = ""
  description = "KMS key for the bucket, table, queue, alarm topic and logs; empty creates one (rotated yearly)."
}

variable "client_side_encryption" {
  type        = bool
  default     = false
  description = "Also seal every segment body in the writer (AES-256-GCM, a data key from the KMS key above, bound to the backup id), so S3 holds ciphertext even to a principal allowed to read the bucket. About one kms:GenerateDataKey per warm writer per 5 minutes, and one kms:Decrypt per writer batch a restore reads."
}

variable "crypto_shredding" {
  type        = bool
  default     = false
  description = "Seal each keyed record under a data key of its record key's own, kept in the index table, so an erasure destroys the key instead of rewriting locked objects (the way to erase under Object Lock; docs/privacy.md#crypto-shredding). Erasure then matches exact keys only. Costs one kms:GenerateDataKey per backup, one kms:Decrypt per cold start, a DynamoDB item per distinct key, and storage: sealed records do not compress."
}

variable "masking_rules" {
  type        = string
  default     = ""
  description = "Makes this deployment a masked backup: JSON rules the writer applies to every record before it is stored, e.g. {\"rules\": [{\"json_pointer\": \"/card/number\", \"action\": \"redact\"}, {\"key\": true, \"action\": \"hash\"}], \"unparsable\": \"fail\"} (docs/privacy.md#masked-backups). Deploy it as a second module beside the unmasked one, with its own backup_id and key_prefix."
}

variable "masking_hash_secret_arn" {
  type        = string
  default     = ""
  description = "With hash rules, the Secrets Manager secret (32 bytes or more) that keys the HMAC."
}

variable "object_lock_retention_days" {
  type        = number
  default     = 0
  description = "0 leaves Object Lock off; N locks every object version in compliance mode for N days (set at creation only)."
  validation {
    condition     = var.object_lock_retention_days >= 0 && var.object_lock_retention_days <= 36500
    error_message = "object_lock_retention_days must be from 0 to 36500."
  }
}

variable "infrequent_access_after_days" {
  type        = number
  default     = 30
  description = "Days before segments move to S3 Standard-IA."
  validation {
    condition     = var.infrequent_access_after_days >= 30
    error_message = "infrequent_access_after_days must be at least 30 (S3's minimum for Standard-IA)."
  }
}

variable "archive_after_days" {
  type        = number
  default     = 90
  description = "Days before segments move to the archive class."
  validation {
    condition     = var.archive_after_days >= 31
    error_message = "archive_after_days must be at least 31."
  }
}

variable "archive_storage_class" {
  type        = string
  default     = "GLACIER_IR"
  description = "GLACIER_IR restores directly; GLACIER and DEEP_ARCHIVE need the objects brought back before a restore."
  validation {
    condition     = contains(["GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"], var.archive_storage_class)
    error_message = "archive_storage_class must be GLACIER_IR, GLACIER or DEEP_ARCHIVE."
  }
}

variable "expire_after_days" {
  type        = number
  default     = 365
  description = "Standard tier: days before segments of topics without a tier expire."
  validation {
    condition     = var.expire_after_days >= 1
    error_message = "expire_after_days must be at least 1."
  }
}

variable "short_tier_expire_after_days" {
  type        = number
  default     = 35
  description = "Days before segments of topics in the short tier (retention_short_topics) expire."
  validation {
    condition     = var.short_tier_expire_after_days >= 1
    error_message = "short_tier_expire_after_days must be at least 1."
  }
}

variable "long_tier_expire_after_days" {
  type        = number
  default     = 2557
  description = "Days before segments of topics in the long tier (retention_long_topics) expire (2557 = 7 years)."
  validation {
    condition     = var.long_tier_expire_after_days >= 1
    error_message = "long_tier_expire_after_days must be at least 1."
  }
}

# --- Snapshots ------------------------------------------------------------------------------

variable "snapshot_schedule" {
  type        = string
  default     = "rate(5 minutes)"
  description = "EventBridge schedule of the offset snapshotter."
}

variable "snapshot_samples" {
  type        = number
  default     = 4
  description = "Snapshots per invocation."
  validation {
    condition     = var.snapshot_samples >= 1 && var.snapshot_samples <= 60
    error_message = "snapshot_samples must be from 1 to 60."
  }
}

variable "snapshot_interval_seconds" {
  type        = number
  default     = 15
  description = "Seconds between an invocation's snapshots."
  validation {
    condition     = var.snapshot_interval_seconds >= 1 && var.snapshot_interval_seconds <= 900
    error_message = "snapshot_interval_seconds must be from 1 to 900."
  }
}

variable "stall_after_seconds" {
  type        = number
  default     = 1800
  description = "The snapshotter reports a partition stalled (metric and alarm) when records wait past its checkpoint and the checkpoint has not moved for this long; 0 turns the check off."
  validation {
    condition     = var.stall_after_seconds >= 0 && var.stall_after_seconds <= 604800
    error_message = "stall_after_seconds must be from 0 to 604800."
  }
}

variable "groups_include" {
  type        = string
  default     = ""
  description = "Regular expression of consumer groups to snapshot; empty for all."
}

variable "groups_exclude" {
  type        = string
  default     = ""
  description = "Regular expression of consumer groups to leave out."
}

# --- Operations -----------------------------------------------------------------------------

variable "validation_schedule" {
  type        = string
  default     = "rate(1 day)"
  description = "When the validation state machine checks the backup (an EventBridge schedule expression); \"\" runs it only on demand."
}

variable "drill_schedule" {
  type        = string
  default     = "rate(7 days)"
  description = "When the recovery drill restores drill_topics into scratch topics on the source cluster and verifies them (an EventBridge schedule expression); \"\" runs drills only on demand."
}

variable "drill_topics" {
  type        = string
  default     = ".*"
  description = "The scheduled drill's topics (a regular expression matched against whole names)."
}

variable "drill_tier" {
  type        = string
  default     = "standard"
  description = "The scheduled drill's tier name, reported with its targets."
}

variable "drill_rto_target_seconds" {
  type        = number
  default     = 3600
  description = "The scheduled drill fails (metric DrillTargetsMissed) when restoring and verifying takes longer."
}

variable "drill_rpo_target_seconds" {
  type        = number
  default     = 900
  description = "The scheduled drill fails when the newest restored record is older than this at the cut."
}

variable "drill_interval_hours" {
  type        = number
  default     = 192
  description = "The snapshotter reports a drill overdue (metric DrillOverdue, alarm) when the last one finished longer ago; 0 turns the check off."
}

variable "validation_depth" {
  type        = string
  default     = "deep"
  description = "deep re-reads every segment (checksums, records, sealed bodies opened); listing compares the index with S3 and the offsets with the recorded gaps, reading no segment."
  validation {
    condition     = contains(["deep", "listing"], var.validation_depth)
    error_message = "validation_depth must be deep or listing."
  }
}

variable "maintenance_schedule" {
  type        = string
  default     = "rate(1 day)"
  description = "When the maintenance state machine expires segments by tier and compacts small ones (an EventBridge schedule expression); \"\" runs it only on demand (nothing then expires)."
}

variable "min_pitr_window_days" {
  type        = number
  default     = 7
  description = "Never expire what a restore to any moment of the last N days needs, whatever the tier says."
  validation {
    condition     = var.min_pitr_window_days >= 0
    error_message = "min_pitr_window_days must be 0 or more."
  }
}

variable "compaction_target_mb" {
  type        = number
  default     = 64
  description = "Merge runs of small adjacent segments into segments of about this size; 0 turns compaction off."
  validation {
    condition     = var.compaction_target_mb >= 0
    error_message = "compaction_target_mb must be 0 or more."
  }
}

variable "compaction_grace_hours" {
  type        = number
  default     = 24
  description = "How long segments a compaction replaced stay readable (longer than your longest restore)."
  validation {
    condition     = var.compaction_grace_hours >= 0
    error_message = "compaction_grace_hours must be 0 or more."
  }
}

variable "s3_force_path_style" {
  type        = bool
  default     = false
  description = "Address the bucket as endpoint/bucket (S3-compatible endpoints such as LocalStack); AWS needs false."
}

variable "architecture" {
  type        = string
  default     = "arm64"
  description = "Lambda architecture of the function builds (docs/deploy.md)."
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
  description = "Consumer groups an offset reset rolls back at once (TIDEMARK_OFFSET_RESET_CONCURRENCY); apply and verify batch every group per coordinator."
  validation {
    condition     = var.offset_reset_concurrency >= 1 && var.offset_reset_concurrency <= 256
    error_message = "offset_reset_concurrency must be from 1 to 256."
  }
}

variable "rpo_minutes" {
  type        = number
  default     = 15
  description = "Alarm when records reach the backup more than this long after they were produced."
  validation {
    condition     = var.rpo_minutes >= 1
    error_message = "rpo_minutes must be at least 1."
  }
}

variable "staleness_minutes" {
  type        = number
  default     = 60
  description = "Alarm when no segment was written for this long; 0 turns the alarm off."
  validation {
    condition     = var.staleness_minutes >= 0 && var.staleness_minutes <= 1440
    error_message = "staleness_minutes must be from 0 to 1440."
  }
}

variable "alarm_email" {
  type        = string
  default     = ""
  description = "Address subscribed to the alarm topic; empty subscribes nobody."
}

variable "log_retention_days" {
  type        = number
  default     = 30
  description = "Retention of the functions' and state machines' log groups."
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch Logs' retention values (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "metrics_namespace" {
  type        = string
  default     = "Tidemark"
  description = "CloudWatch namespace of the functions' metrics."
}

variable "retention_short_topics" {
  type        = string
  default     = ""
  description = "Regular expression of topics in the short retention tier (TIDEMARK_RETENTION_SHORT_TOPICS)."
}

variable "retention_long_topics" {
  type        = string
  default     = ""
  description = "Regular expression of topics in the long retention tier (TIDEMARK_RETENTION_LONG_TOPICS)."
}

variable "writer_reads_topic_ids" {
  type        = bool
  default     = true
  description = "The backup writer asks the cluster for each batch's topic ids (Metadata), so a topic deleted and recreated under its name is backed up as a new generation from its first batch. Puts the writer in subnet_ids when set. false: the writer needs no cluster access and follows the generations the offset snapshotter records; until its next run a recreated topic's batches are refused (Tidemark.TopicRecreated) and retried."
}
