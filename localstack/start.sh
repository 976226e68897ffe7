#!/usr/bin/env bash
# Start (or reuse) a local AWS emulator: moto's server (pinned to 5.2.5)
# with our extension, localstack/awsrules, which makes it behave like AWS
# where the tool depends on it (see localstack/README.md).
#
#   eval "$(localstack/start.sh [--port N])"     # default port: $MOTO_PORT or 4566
#
# stdout carries only `export AWS_ENDPOINT_URL=...`; messages go to stderr.
# If AWS_ENDPOINT_URL is already set, that emulator is used as is.
# AWS's pace, in seconds, unless set in the environment: AWSRULES_PROXY_CREATING
# (4), AWSRULES_TARGET_REGISTERING (3), AWSRULES_PROXY_DELETING (3), ... (all
# in localstack/awsrules/settings.py).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
RUN="$HERE/.run"
PORT="${MOTO_PORT:-4566}"

while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="${2:?--port needs a value}"; shift 2 ;;
    --port=*) PORT="${1#--port=}"; shift ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) echo "start.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$PORT" in ''|*[!0-9]*) echo "start.sh: bad port: $PORT" >&2; exit 2 ;; esac

say() { echo "$*" >&2; }

# `curl` without -f: any HTTP answer (even 404/500) means "something listens".
answers() { curl -s -o /dev/null --max-time 2 "$1"; }

# The venv also provides the python + boto3 that seed.py runs with, so it is
# made even when the emulator itself is someone else's.
ensure_venv() { "$HERE/install.sh"; }

# Lambda must not try to use Docker (there is none); must be set before any
# function is created. Idempotent.
configure_lambda() {
  curl -sf --max-time 5 -X POST -H 'Content-Type: application/json' \
    -d '{"lambda":{"use_docker":false}}' "$1/moto-api/config" >/dev/null
}

ensure_venv

# --- someone else's emulator: check it and hand it back unchanged ----------
if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
  if ! answers "$AWS_ENDPOINT_URL"; then
    say "start.sh: AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL does not answer"
    exit 1
  fi
  say "using the emulator at $AWS_ENDPOINT_URL"
  printf 'export AWS_ENDPOINT_URL=%q\n' "$AWS_ENDPOINT_URL"
  exit 0
fi

# --- our own emulator -----------------------------------------------------
URL="http://127.0.0.1:$PORT"
PIDFILE="$RUN/moto-$PORT.pid"
LOG="$RUN/moto-$PORT.log"
mkdir -p "$RUN"

is_ours() { [ -r "/proc/$1/cmdline" ] && grep -q awsrules <<<"$(tr '\0' ' ' <"/proc/$1/cmdline")"; }

pid=""
[ -f "$PIDFILE" ] && pid="$(cat "$PIDFILE")"
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && is_ours "$pid" && answers "$URL/moto-api/"; then
  say "reusing the emulator (pid $pid) at $URL"
else
  rm -f "$PIDFILE"
  if answers "$URL/"; then
    say "start.sh: port $PORT is taken by something this script did not start;"
    say "  use --port N, or set AWS_ENDPOINT_URL=$URL to use it as is"
    exit 1
  fi
  # nohup + </dev/null + own log: the server must outlive this script and must
  # not hold the stdout of `$(start.sh)` open (or the caller would hang).
  # A pace that shows the waits without making the demo slow.
  MOTO_IAM_LOAD_MANAGED_POLICIES=true \
  AWSRULES_PROXY_CREATING="${AWSRULES_PROXY_CREATING:-4}" \
  AWSRULES_PROXY_MODIFYING="${AWSRULES_PROXY_MODIFYING:-2}" \
  AWSRULES_PROXY_DELETING="${AWSRULES_PROXY_DELETING:-3}" \
  AWSRULES_PROXY_ENI_LINGER="${AWSRULES_PROXY_ENI_LINGER:-2}" \
  AWSRULES_TARGET_REGISTERING="${AWSRULES_TARGET_REGISTERING:-3}" \
  AWSRULES_ENDPOINT_CREATING="${AWSRULES_ENDPOINT_CREATING:-2}" \
  AWSRULES_ENDPOINT_MODIFYING="${AWSRULES_ENDPOINT_MODIFYING:-1}" \
  AWSRULES_ENDPOINT_DELETING="${AWSRULES_ENDPOINT_DELETING:-2}" \
  AWSRULES_LAMBDA_UPDATING="${AWSRULES_LAMBDA_UPDATING:-1}" \
  AWSRULES_IAM_PROPAGATION="${AWSRULES_IAM_PROPAGATION:-2}" \
    nohup "$VENV/bin/python" -m awsrules -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  for _ in $(seq 300); do   # ~30 s
    answers "$URL/moto-api/" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! answers "$URL/moto-api/"; then
    say "start.sh: the emulator did not come up on $URL; last lines of $LOG:"
    tail -n 20 "$LOG" >&2 || true
    kill "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    exit 1
  fi
  say "started the emulator (moto + awsrules, pid $pid) at $URL, log: $LOG"
fi

configure_lambda "$URL"
echo "export AWS_ENDPOINT_URL=$URL"
