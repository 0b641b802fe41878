# Shared helpers for Tavern's scripts. Sourced, not run.

# Installs the Debian packages named in "$@" that are missing (needs root or sudo).
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The newest PostgreSQL server binaries on this machine.
pg_bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# Runs a command as the `postgres` user when we are root (PostgreSQL refuses root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Where test tools that Debian does not package are installed (reused across runs).
TAVERN_TEST_TOOLS_DIR="${TAVERN_TEST_TOOLS_DIR:-/var/tmp/tavern-tools}"
MOTO_VERSION=5.2.5
AZURITE_VERSION=3.35.0

# The object-storage fakes for the rolls sync tests: moto's S3 server (PyPI, in a venv)
# and Azurite's Blob service (npm). Skipped when the pinned versions are already there.
ensure_object_store_fakes() {
  local venv="$TAVERN_TEST_TOOLS_DIR/venv" npm_dir="$TAVERN_TEST_TOOLS_DIR/npm"
  # (Read the whole answer first: `grep -q` closing the pipe early fails under pipefail.)
  local installed
  installed="$("$venv/bin/pip" show moto 2>/dev/null || true)"
  if ! grep -qx "Version: $MOTO_VERSION" <<<"$installed"; then
    echo "==> installing moto $MOTO_VERSION (S3 for tests) into $venv"
    command -v python3 >/dev/null || ensure_packages python3
    python3 -m venv "$venv" 2>/dev/null || { ensure_packages python3-venv; python3 -m venv "$venv"; }
    "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
  if ! grep -qs "\"version\": \"$AZURITE_VERSION\"" "$npm_dir/node_modules/azurite/package.json"; then
    echo "==> installing Azurite $AZURITE_VERSION (Azure Blob for tests) into $npm_dir"
    command -v npm >/dev/null || ensure_packages nodejs npm
    mkdir -p "$npm_dir"
    npm install --prefix "$npm_dir" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >/dev/null
  fi
  export TAVERN_TEST_TOOLS_DIR
}
