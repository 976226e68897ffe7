#!/usr/bin/env bash
# Install the local AWS emulator into localstack/.venv, once: moto[server]
# (pinned), the Python packages of requirements.txt (pinned), and our
# extension of moto, the package localstack/awsrules (made importable by a
# .pth file, so an edit to it needs no reinstall); and the database servers
# behind its RDS DBs, from Debian's packages (mariadb-server, postgresql).
# start.sh, the tests and CI call it before each use: when everything is
# there it only looks (no Python, no pip: a few stats and a checksum).
# Progress goes to stderr.
set -euo pipefail
shopt -s nullglob

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
MOTO_VERSION=5.2.5
REQUIREMENTS="$HERE/requirements.txt"
STAMP="$VENV/.requirements.sha256" # the checksum of the requirements installed
DB_PACKAGES=(mariadb-server postgresql)

say() { echo "install.sh: $*" >&2; }

# --- moto, in the venv: its dist-info folder tells the version installed.
sites=("$VENV"/lib/python3*/site-packages)
if ! [ -x "$VENV/bin/python" ] || ! [ -x "$VENV/bin/moto_server" ] ||
  [ ${#sites[@]} -ne 1 ] || ! [ -d "${sites[0]}/moto-$MOTO_VERSION.dist-info" ]; then
  say "installing moto[server]==$MOTO_VERSION into $VENV (first use) ..."
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" >&2
  sites=("$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')")
fi
site="${sites[0]}"

# --- the pinned packages, again whenever requirements.txt changes.
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  say "installing $REQUIREMENTS into $VENV ..."
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$REQUIREMENTS" >&2
  echo "$want" >"$STAMP"
fi

if [ "$(cat "$site/awsrules.pth" 2>/dev/null)" != "$HERE" ]; then
  echo "$HERE" >"$site/awsrules.pth"
fi

# --- the database servers (awsrules/dataplane/dbservers.py finds them where
# Debian puts them: mariadbd in /usr/sbin, PostgreSQL in /usr/lib/postgresql/N/bin).
have_db_servers() {
  local pg=(/usr/lib/postgresql/*/bin/postgres) initdb=(/usr/lib/postgresql/*/bin/initdb)
  { [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null; } &&
    { [ -x /usr/bin/mariadb-install-db ] || command -v mariadb-install-db >/dev/null; } &&
    [ ${#pg[@]} -gt 0 ] && [ ${#initdb[@]} -gt 0 ]
}

SUDO=()
POLICY=/usr/sbin/policy-rc.d
POLICY_ADDED=""
install_db_servers() {
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      SUDO=(sudo -n)
    else
      say "error: the emulator's database servers are missing, and installing them needs root."
      say "Install the Debian packages ${DB_PACKAGES[*]}, e.g.:"
      say "  sudo apt-get install -y --no-install-recommends ${DB_PACKAGES[*]}"
      exit 1
    fi
  fi
  say "installing ${DB_PACKAGES[*]} (first use) ..."
  # Their own services must not start (we start a server per emulated DB, and
  # there may be no init system): a policy-rc.d that says no, for the time of
  # the install, unless the machine has one already.
  if ! [ -e "$POLICY" ]; then
    trap 'if [ -n "$POLICY_ADDED" ]; then "${SUDO[@]}" rm -f "$POLICY"; fi' EXIT
    "${SUDO[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' >$POLICY && chmod 755 $POLICY" && POLICY_ADDED=1
  fi
  if ! apt_get install -y --no-install-recommends "${DB_PACKAGES[@]}"; then
    # A fresh machine may have no package lists yet.
    say "apt-get install failed; updating the package lists once and trying again ..."
    apt_get update && apt_get install -y --no-install-recommends "${DB_PACKAGES[@]}" ||
      say "apt-get failed (if only a service of theirs failed to start, that does not matter here)"
  fi
  if [ -n "$POLICY_ADDED" ]; then
    "${SUDO[@]}" rm -f "$POLICY"
    POLICY_ADDED=""
  fi
  if ! have_db_servers; then
    say "error: could not install the Debian packages ${DB_PACKAGES[*]} (see apt-get's output above)"
    exit 1
  fi
}
apt_get() { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q "$@" >&2; }

have_db_servers || install_db_servers
