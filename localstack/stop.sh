#!/usr/bin/env bash
# Stop the emulator (moto + awsrules) that start.sh started on a port (default: $MOTO_PORT or 4566).
# Only the pid recorded in localstack/.run/moto-PORT.pid is touched, and only
# if it really is that emulator.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PORT="${MOTO_PORT:-4566}"

while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="${2:?--port needs a value}"; shift 2 ;;
    --port=*) PORT="${1#--port=}"; shift ;;
    -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) echo "stop.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

PIDFILE="$HERE/.run/moto-$PORT.pid"
if [ ! -f "$PIDFILE" ]; then
  echo "no emulator recorded on port $PORT ($PIDFILE missing)" >&2
  exit 0
fi
pid="$(cat "$PIDFILE")"

# A stale pid may have been reused by an unrelated process: check its cmdline.
if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
   grep -q awsrules <<<"$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"; then
  kill "$pid"
  for _ in $(seq 100); do          # up to ~10 s, then insist
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  echo "stopped the emulator (pid $pid) on port $PORT" >&2
else
  echo "pid $pid from $PIDFILE is not a running emulator of ours; removing the stale pid file" >&2
fi
rm -f "$PIDFILE"
