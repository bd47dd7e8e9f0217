# Shared settings of the local stack; sourced by the other scripts. Every value can be
# overridden from the environment.
TIDEMARK_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TIDEMARK_CACHE=${TIDEMARK_CACHE:-$HOME/.cache/tidemark}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$TIDEMARK_CACHE/target}
TIDEMARK_VENV=$TIDEMARK_CACHE/venv
# The deployment checkers (SAM CLI, cfn-lint, checkov) pin their own boto3: a venv of their own.
TIDEMARK_IAC_VENV=$TIDEMARK_CACHE/venv-iac
TIDEMARK_TOOLS=$TIDEMARK_CACHE/tools
export TIDEMARK_STATE=${TIDEMARK_STATE:-$TIDEMARK_REPO/.local-stack}
TIDEMARK_MOTO_PORT=${TIDEMARK_MOTO_PORT:-14566}
TIDEMARK_KAFKA_PORT=${TIDEMARK_KAFKA_PORT:-19092}
# Two more brokers for the secure connection paths: TLS only, and SASL/SCRAM over TLS.
TIDEMARK_KAFKA_TLS_PORT=${TIDEMARK_KAFKA_TLS_PORT:-19093}
TIDEMARK_KAFKA_SCRAM_PORT=${TIDEMARK_KAFKA_SCRAM_PORT:-19094}
# Step Functions (in the emulator) sends its Lambda and S3 calls here: the gateway routes
# invokes to the Lambda hosts that registered each function and the rest to the emulator.
TIDEMARK_GATEWAY_PORT=${TIDEMARK_GATEWAY_PORT:-14567}
TIDEMARK_BIN=${TIDEMARK_BIN:-$CARGO_TARGET_DIR/debug}
NISSHI_VERSION=0.8.1
CARGO_MACHETE_VERSION=0.9.2

# The emulator accepts any credentials; the SDKs only need some to sign with.
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_DEFAULT_REGION=$AWS_REGION
export AWS_ENDPOINT_URL=http://127.0.0.1:$TIDEMARK_MOTO_PORT
export TIDEMARK_KAFKA_BOOTSTRAP=127.0.0.1:$TIDEMARK_KAFKA_PORT
export TIDEMARK_KAFKA_TLS_BOOTSTRAP=127.0.0.1:$TIDEMARK_KAFKA_TLS_PORT
export TIDEMARK_KAFKA_SCRAM_BOOTSTRAP=127.0.0.1:$TIDEMARK_KAFKA_SCRAM_PORT
export TIDEMARK_CERTS=$TIDEMARK_STATE/certs
export TIDEMARK_GATEWAY=http://127.0.0.1:$TIDEMARK_GATEWAY_PORT
# Tests start brokers of their own (e.g. behind a fault-injecting proxy).
export TIDEMARK_NISSHI=$TIDEMARK_TOOLS/bin/nisshi
export TIDEMARK_PYTHON=$TIDEMARK_VENV/bin/python
export TIDEMARK_IAC_PYTHON=$TIDEMARK_IAC_VENV/bin/python
export TIDEMARK_LOCAL_PY=$TIDEMARK_REPO/local/py/tidemark_local.py
export TIDEMARK_BIN

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
