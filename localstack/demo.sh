#!/usr/bin/env bash
# The whole recipe 4.3 against a local emulator, from a fresh machine:
# start (or reuse) the emulator (moto + awsrules), seed the preconditions,
# build the CLI, then
# plan / run / status / run again (the second run must change nothing).
# Works from any directory. Leaves the emulator running.
#
#   localstack/demo.sh [--port N]     # the emulator's port (default: $MOTO_PORT or 4566)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
USAGE="usage: localstack/demo.sh [--port N]"

# The port goes to start.sh (which starts or reuses the emulator there) and
# to the hint for stop.sh; nothing else is taken.
PORT_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port)
      [ $# -ge 2 ] || { echo "demo.sh: --port needs a value; $USAGE" >&2; exit 2; }
      PORT_ARGS=(--port "$2"); shift 2 ;;
    --port=*) PORT_ARGS=(--port "${1#--port=}"); shift ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) echo "demo.sh: unknown argument: $1; $USAGE" >&2; exit 2 ;;
  esac
done
if [ ${#PORT_ARGS[@]} -gt 0 ]; then
  case "${PORT_ARGS[1]}" in
    ''|*[!0-9]*) echo "demo.sh: bad port: ${PORT_ARGS[1]}; $USAGE" >&2; exit 2 ;;
  esac
fi
ROOT="$(dirname "$HERE")"
RUN="$HERE/.run"
RUNBOOK=runbooks/cookbook-4.3-mysql.toml
STATE="$RUN/demo.state.json"
SEED_ENV="$RUN/seed.env"

user_endpoint="${AWS_ENDPOINT_URL:-}"
# Assign first, then eval: `eval "$(start.sh)"` alone would hide a failure.
start_out="$("$HERE/start.sh" "${PORT_ARGS[@]}")"
eval "$start_out"

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"

if [ -z "$user_endpoint" ]; then
  # Our own emulator: wipe what a previous demo left, then re-apply the
  # Docker-less Lambda setting (a reset may drop it). Never done to a user's.
  echo "resetting the emulator at $AWS_ENDPOINT_URL" >&2
  curl -sf --max-time 10 -X POST "$AWS_ENDPOINT_URL/moto-api/reset" >/dev/null
  curl -sf --max-time 5 -X POST -H 'Content-Type: application/json' \
    -d '{"lambda":{"use_docker":false}}' "$AWS_ENDPOINT_URL/moto-api/config" >/dev/null
fi

mkdir -p "$RUN"
"$HERE/.venv/bin/python" "$HERE/seed.py" --out "$SEED_ENV"
# shellcheck source=/dev/null
source "$SEED_ENV"

cd "$ROOT"
echo "==> cargo build"
cargo build --quiet
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/rds-proxy-runbook"
rm -f "$STATE"

step() {
  echo
  echo "==> rds-proxy-runbook $*"
  "$BIN" "$@" --state "$STATE"
}
step plan "$RUNBOOK"
step run "$RUNBOOK" --yes
step status "$RUNBOOK"
step run "$RUNBOOK" --yes     # again: must report no changes

if [ "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" = "test:test" ]; then
  creds="export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test"
else
  creds="# plus the same AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY as now"
fi
cat <<EOF

Done. The emulator is still running at $AWS_ENDPOINT_URL. To continue by hand:

  cd $ROOT
  export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_REGION=$AWS_REGION
  $creds
  source $SEED_ENV
  $BIN status $RUNBOOK --state $STATE
  $BIN rollback $RUNBOOK --yes --state $STATE
EOF
if [ -z "$user_endpoint" ]; then
  echo
  port="${PORT_ARGS[1]:-${MOTO_PORT:-}}"
  echo "Stop the emulator with: $HERE/stop.sh${port:+ --port $port}"
fi
