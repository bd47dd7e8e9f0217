#!/usr/bin/env bash
# Starts LocalStack and a Kafka broker (docker-compose.yml), builds the five functions with
# cargo lambda, and deploys the infra/ Terraform module into LocalStack with tflocal. Needs
# Docker with Compose, Rust, Python 3 and a terraform binary (>= 1.5) on PATH; installs the rest
# (cargo-lambda, terraform-local, the demo's Python tools) into localstack/.venv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/env.sh"

for tool in docker cargo python3 terraform; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH (see localstack/README.md)"
done
docker compose version >/dev/null 2>&1 || die "docker compose (v2) is missing"

if [ ! -x "$LOCALSTACK_VENV/bin/tflocal" ]; then
  log "installing cargo-lambda, terraform-local and the demo's Python tools into $LOCALSTACK_VENV"
  python3 -m venv "$LOCALSTACK_VENV"
  "$LOCALSTACK_VENV/bin/pip" install --quiet cargo-lambda==1.9.2 terraform-local==0.27.0 \
    -r "$TIDEMARK_REPO/local/py/requirements.txt"
fi

log "starting LocalStack 4.14.0 and Kafka (docker compose)"
docker compose -f "$here/docker-compose.yml" up --detach --wait

case "$(uname -m)" in
  x86_64 | amd64) architecture=x86_64 build_flag=--x86-64 ;;
  aarch64 | arm64) architecture=arm64 build_flag=--arm64 ;;
  *) die "LocalStack runs Lambda containers on this host's architecture, $(uname -m), which Lambda does not have" ;;
esac
log "building the functions for $architecture (cargo lambda; the first build takes ~15 min)"
(cd "$TIDEMARK_REPO" && "$LOCALSTACK_VENV/bin/cargo-lambda" lambda build --release "$build_flag" \
  --output-format zip --lambda-dir "$LOCALSTACK_BUILD/lambda" \
  --bin backup-writer --bin offset-snapshotter --bin restore-coordinator --bin restore-partition --bin offset-reset \
  --bin validator --bin maintainer --bin eraser --bin drill)

log "deploying infra/ into LocalStack (tflocal apply)"
cd "$here"
"$LOCALSTACK_VENV/bin/tflocal" init -input=false >/dev/null
"$LOCALSTACK_VENV/bin/tflocal" apply -input=false -auto-approve \
  -var "architecture=$architecture" -var "lambda_zip_dir=$LOCALSTACK_BUILD/lambda"
"$LOCALSTACK_VENV/bin/tflocal" output -json >"$LOCALSTACK_BUILD/outputs.json"
log "deployed: outputs in $LOCALSTACK_BUILD/outputs.json; run localstack/demo.sh"
