#!/usr/bin/env bash
# Quick start, step 1: install what is missing, start Redis and PostgreSQL in a local data
# dir (.tavern/), build Tavern and run `tavern serve`. Without TAVERN_DISCORD_TOKEN it runs
# in sandbox mode and prints the console URL. TAVERN_DEV_REDIS_PORT / TAVERN_DEV_PG_PORT
# choose the stores' ports (6390, 5440). Run as root from a directory the `postgres` user
# cannot reach (under /root), the PostgreSQL cluster is kept in /var/tmp/tavern-<hash>/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_packages redis-server postgresql ca-certificates gcc
command -v cargo >/dev/null || { echo "cargo is missing: install Rust (https://rustup.rs) first" >&2; exit 1; }

DATA="$PWD/.tavern"
REDIS_PORT="${TAVERN_DEV_REDIS_PORT:-6390}"
PG_PORT="${TAVERN_DEV_PG_PORT:-5440}"
mkdir -p "$DATA/redis"
# PostgreSQL runs as `postgres` when we are root: its cluster must be where that user can go.
PG_HOME="$DATA"
if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$DATA"; then
  PG_HOME="/var/tmp/tavern-$(printf '%s' "$PWD" | sha256sum | cut -c1-12)"
  echo "==> the postgres user cannot reach $DATA: the PostgreSQL cluster is in $PG_HOME/pg"
fi
mkdir -p "$PG_HOME/pg-run"

if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "==> starting redis-server on 127.0.0.1:$REDIS_PORT (data in $DATA/redis)"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DATA/redis" --appendonly yes \
    --daemonize yes --logfile "$DATA/redis/redis.log" --pidfile "$DATA/redis/redis.pid"
fi

BIN="$(pg_bindir)"
if [ ! -f "$PG_HOME/pg/PG_VERSION" ]; then
  echo "==> creating a PostgreSQL cluster in $PG_HOME/pg"
  mkdir -p "$PG_HOME/pg"
  [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$PG_HOME/pg" "$PG_HOME/pg-run"
  (cd "$PG_HOME" && as_pg "$BIN/initdb" -D "$PG_HOME/pg" -U tavern --auth=trust -E UTF8 --locale=C >/dev/null)
fi
if ! "$BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" >/dev/null 2>&1; then
  echo "==> starting PostgreSQL on 127.0.0.1:$PG_PORT"
  [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$PG_HOME/pg" "$PG_HOME/pg-run"
  (cd "$PG_HOME" && as_pg "$BIN/pg_ctl" -D "$PG_HOME/pg" -l "$PG_HOME/pg-run/postgres.log" -w \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_HOME/pg-run" start >/dev/null)
  "$BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U tavern -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='tavern'" | grep -q 1 ||
    "$BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U tavern -d postgres -qc "CREATE DATABASE tavern"
fi

export TAVERN_REDIS_URL="${TAVERN_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/}"
export TAVERN_DATABASE_URL="${TAVERN_DATABASE_URL:-postgres://tavern@127.0.0.1:$PG_PORT/tavern}"
export TAVERN_DATA_DIR="${TAVERN_DATA_DIR:-$DATA}"

echo "==> building tavern (the first build takes a while)"
cargo build -p tavern
# Tavern refuses `TAVERN_*` variables it does not know: these two are this script's.
unset TAVERN_DEV_REDIS_PORT TAVERN_DEV_PG_PORT
exec "${CARGO_TARGET_DIR:-target}/debug/tavern" serve
