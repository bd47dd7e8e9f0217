#!/usr/bin/env bash
# Stops LocalStack and Kafka and forgets the deployment (LocalStack keeps no state between runs,
# so the Terraform state goes too).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/env.sh"
docker compose -f "$here/docker-compose.yml" down --volumes
rm -rf "$here/terraform.tfstate" "$here/terraform.tfstate.backup" "$LOCALSTACK_BUILD/outputs.json"
log "LocalStack and Kafka stopped"
