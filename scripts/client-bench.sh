#!/usr/bin/env bash
# Measures the web client's speed in headless Chromium, as a measurement and not a test:
# page weight on the wire, requests per load and the time to "connected", for the panel and
# for a room of 50 messages with images, on a desktop and on an emulated slow phone.
# browser-tests/bench/client-speed.mjs does the measuring (its header says what is counted
# and how); this script gives it the browser suite's set-up (scripts/browser-test.sh: a real
# cluster behind haproxy, its own database and Redis prefix, Debian's Chromium).
#
#   scripts/client-bench.sh [--runs N] [--profiles desktop,slow-phone] [--images 0-8] [--out FILE]
#
# Prints a table and writes it as JSON to test-artifacts/client-speed.json (--out). Uses the
# release binaries of gateway and message-service when both are built
# (${CARGO_TARGET_DIR:-target}/release), else the debug ones, says which, and never builds
# them: build first (`cargo build --release --bins -p gateway -p message-service`).
# Run it alone on the machine: the figures are timings, and other load skews them.
# BROWSER_TEST_TIMEOUT bounds the run in seconds (default 2400).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# shellcheck disable=SC2034 # read by log, in lib.sh
LOG_PREFIX=client-bench
# shellcheck source=lib.sh
. scripts/lib.sh

target="${CARGO_TARGET_DIR:-$root/target}"
profile=""
for candidate in release debug; do
  if [ -x "$target/$candidate/gateway" ] && [ -x "$target/$candidate/message-service" ]; then
    profile=$candidate
    break
  fi
done
[ -n "$profile" ] || die "no gateway and message-service binaries under $target/{release,debug}:" \
  "build them first (cargo build --release --bins -p gateway -p message-service)"
log "using the $profile binaries in $target/$profile"

BENCH_BINARIES=$profile BROWSER_TEST_BIN_DIR="$target/$profile" \
  BROWSER_TEST_RUN="$root/browser-tests/bench/client-speed.mjs" \
  BROWSER_TEST_TIMEOUT="${BROWSER_TEST_TIMEOUT:-2400}" \
  exec bash scripts/browser-test.sh "$@"
