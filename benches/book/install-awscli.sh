#!/usr/bin/env bash
# Install the AWS CLI (v1, from PyPI, pinned) into benches/book/.venv, once,
# for the benchmark's run of the book's commands. Its own venv: the CLI pins
# botocore, which must not move the emulator's.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
AWSCLI_VERSION=${AWSCLI_VERSION:-1.46.2}
if [ -x "$VENV/bin/aws" ] && "$VENV/bin/aws" --version 2>&1 | grep -q "aws-cli/$AWSCLI_VERSION "; then
  exit 0
fi
echo "installing awscli==$AWSCLI_VERSION into $VENV (first use) ..." >&2
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "awscli==$AWSCLI_VERSION" >&2
