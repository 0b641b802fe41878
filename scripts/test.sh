#!/usr/bin/env bash
# Quick start, step 2: check formatting and lints, then run every test. Installs what the tests need (Redis, PostgreSQL,
# Chromium, ChromeDriver and an emoji font for the browser tests, moto and Azurite as S3 and Azure Blob
# for the sync tests); the tests start their own servers on free loopback ports, so
# nothing else needs to be running.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# fonts-noto-color-emoji: the browser tests see the bots' emoji as a player's browser
# draws them, not as empty boxes (Debian's Chromium does not bring an emoji font).
ensure_packages redis-server postgresql chromium chromium-driver fonts-noto-color-emoji ca-certificates gcc mkvtoolnix
command -v cargo >/dev/null || { echo "cargo is missing: install Rust (https://rustup.rs) first" >&2; exit 1; }
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

ensure_object_store_fakes

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  echo "==> installing rustfmt and clippy"
  rustup component add rustfmt clippy
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo doc (no broken or private links)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

export TAVERN_PG_BINDIR="${TAVERN_PG_BINDIR:-$(pg_bindir)}"
echo "==> tests"
cargo nextest run --workspace --no-fail-fast "$@"
