#!/usr/bin/env bash
# Install the local AWS emulator (moto[server], pinned) into localstack/.venv,
# once. start.sh, the tests and CI call it; it does nothing when the pinned
# version is already there.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
MOTO_VERSION=5.2.5

# (Output captured first: `pip show | grep -q` fails under pipefail when grep
# exits early and pip gets SIGPIPE.)
shown=""
[ -x "$VENV/bin/moto_server" ] &&
  shown="$("$VENV/bin/python" -m pip show moto 2>/dev/null || true)"
if grep -qx "Version: $MOTO_VERSION" <<<"$shown"; then
  exit 0
fi
echo "installing moto[server]==$MOTO_VERSION into $VENV (first use) ..." >&2
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "moto[server]==$MOTO_VERSION" >&2
