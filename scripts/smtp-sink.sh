#!/usr/bin/env bash
# A real SMTP server for the tests: aiosmtpd (pinned, from PyPI), which accepts every mail
# and writes each into a Maildir.
#
#   scripts/smtp-sink.sh --install          install it (into a venv under the cache) and exit
#   scripts/smtp-sink.sh PORT MAILDIR       serve on 127.0.0.1:PORT until killed; each mail
#                                           lands as a file in MAILDIR/new/
#
# scripts/test.sh installs it once before the tests; a test that needs it runs the second
# form (which installs it too when missing, under a lock).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC2034 # read by log, in lib.sh
LOG_PREFIX=smtp-sink.sh
# shellcheck source=lib.sh
. scripts/lib.sh

version=1.4.6
venv=${XDG_CACHE_HOME:-$HOME/.cache}/super-channels/smtp-sink-venv

installed() {
  "$venv/bin/python" -m aiosmtpd --version 2>/dev/null | grep -q "$version"
}

install() {
  installed && return 0
  mkdir -p "$(dirname "$venv")"
  # Under a lock: tests started in parallel must not build the venv twice at once.
  (
    flock 9
    installed && exit 0
    log "installing aiosmtpd $version into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "aiosmtpd==$version"
  ) 9>"$(dirname "$venv")/smtp-sink.lock"
  installed || die "aiosmtpd $version could not be installed into $venv (python3 -m venv and pip are needed)"
}

case ${1:-} in
  --install) install ;;
  [0-9]*)
    [ $# = 2 ] || die "usage: $0 PORT MAILDIR"
    install
    mkdir -p "$2/tmp" "$2/new" "$2/cur"
    exec "$venv/bin/python" -m aiosmtpd --nosetuid --listen "127.0.0.1:$1" \
      --class aiosmtpd.handlers.Mailbox "$2"
    ;;
  *) die "usage: $0 --install | $0 PORT MAILDIR" ;;
esac
