#!/usr/bin/env bash
# Runs every test of coap-harness on a fresh Debian machine (as root, or with sudo):
#   1. installs the independent CoAP peers the interop tests drive (libcoap3-bin) when missing,
#   2. checks formatting and lints,
#   3. runs the unit and integration tests (real sockets on loopback only),
#   4. runs the README's main job (scenarios/smoke.yaml against the embedded server) end to end.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

if ! command -v coap-client-notls >/dev/null 2>&1 || ! command -v coap-server-notls >/dev/null 2>&1; then
  log "installing libcoap3-bin (independent CoAP peers for interop tests)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libcoap3-bin >/dev/null
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --all-targets -- -D warnings

log "cargo test"
# CI=true makes a missing peer a failure instead of a skip.
CI="${CI:-true}" cargo test --workspace

log "main job: scenarios/smoke.yaml against the embedded server"
# `cargo test` has just built the binary (the CLI tests run it): use it as is, with no second compile.
# The test profile is optimised (see Cargo.toml); the README's `cargo run --release` is the same program.
./target/debug/coap-harness run scenarios/smoke.yaml --out reports/ci-smoke
