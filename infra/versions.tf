terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source = "hashicorp/aws"
      # provisioned_poller_config and Kafka error-handling settings on event source mappings.
      version = ">= 5.80, < 7.0"
    }
  }
}
