#!/usr/bin/env bash
# Install the local AWS emulator into localstack/.venv, once: moto[server]
# (pinned) and our extension of it, the package localstack/awsrules (made
# importable by a .pth file, so an edit to it needs no reinstall). start.sh,
# the tests and CI call it; it does nothing when both are already there.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
MOTO_VERSION=5.2.5

# (Output captured first: `pip show | grep -q` fails under pipefail when grep
# exits early and pip gets SIGPIPE.)
shown=""
[ -x "$VENV/bin/moto_server" ] &&
  shown="$("$VENV/bin/python" -m pip show moto 2>/dev/null || true)"
if ! grep -qx "Version: $MOTO_VERSION" <<<"$shown"; then
  echo "installing moto[server]==$MOTO_VERSION into $VENV (first use) ..." >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" >&2
fi
site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ "$(cat "$site/awsrules.pth" 2>/dev/null)" != "$HERE" ]; then
  echo "$HERE" >"$site/awsrules.pth"
fi
