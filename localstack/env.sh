# Shared settings of the LocalStack scripts. Sourced.
# shellcheck shell=bash
LOCALSTACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TIDEMARK_REPO=$(dirname "$LOCALSTACK_DIR")
LOCALSTACK_VENV=${LOCALSTACK_VENV:-$LOCALSTACK_DIR/.venv}
LOCALSTACK_BUILD=${LOCALSTACK_BUILD:-$LOCALSTACK_DIR/.build}
TIDEMARK_PYTHON=$LOCALSTACK_VENV/bin/python
TIDEMARK_LOCAL_PY=$TIDEMARK_REPO/local/py/tidemark_local.py
# LocalStack's edge port; the Kafka broker's host listener (docker-compose.yml).
export AWS_ENDPOINT_URL=http://localhost:4566
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
KAFKA_FROM_HOST=localhost:9094
KAFKA_FROM_FUNCTIONS=kafka:9092
mkdir -p "$LOCALSTACK_BUILD"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
py() { "$TIDEMARK_PYTHON" "$TIDEMARK_LOCAL_PY" "$@"; }
