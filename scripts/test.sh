#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, then every test on SQLite and on a real PostgreSQL server.
# On a machine without PostgreSQL it installs it from Debian's packages; a stopped server is started.
# Chromium (for the test that opens `demo --html` in a real browser) is installed from Debian's packages too.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${TEST_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432/test}"
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    echo "== installing PostgreSQL from Debian's packages"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
    fresh=1
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    echo "== starting PostgreSQL $version"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  fi
  if [ "${fresh:-0}" = 1 ]; then
    $SUDO su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\""
  fi
  if ! psql "$PG_URL" -c 'SELECT 1' >/dev/null 2>&1; then
    $SUDO su postgres -c "createdb test" 2>/dev/null || true
  fi
  psql "$PG_URL" -c 'SELECT 1' >/dev/null
}

ensure_chromium() {
  if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    echo "== installing Chromium from Debian's packages"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
  # The browser test fails instead of skipping from here on.
  export REQUIRE_CHROMIUM=1
}

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings

ensure_postgres
ensure_chromium

echo "== tests on SQLite"
cargo test --quiet
echo "== tests on PostgreSQL"
# Each test makes its own database t_<uuid>; drop those left by earlier runs.
psql "$PG_URL" -tAc "SELECT datname FROM pg_database WHERE datname LIKE 't\_%'" |
  while read -r db; do psql "$PG_URL" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null; done
TEST_DATABASE_URL="$PG_URL" cargo test --quiet --test api
