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

# The container image: built and checked only where a Docker daemon answers (CI does not depend on Docker).
echo "== container image"
if [ "${SKIP_DOCKER:-0}" = 1 ]; then
  echo "skipped: SKIP_DOCKER=1"
elif ! command -v docker >/dev/null 2>&1; then
  echo "skipped: docker is not installed"
elif ! docker info >/dev/null 2>&1; then
  echo "skipped: no Docker daemon answers (docker info failed)"
else
  docker build -q -t incident-bot:test . >/dev/null
  echo "image incident-bot:test: $(docker image inspect -f '{{.Size}}' incident-bot:test | awk '{printf "%.1f MB", $1/1e6}')"
  cid=$(docker run -d -p 127.0.0.1::3000 -e SLACK_BOT_TOKEN=xoxb-test -e SLACK_SIGNING_SECRET=test \
    -e SLACK_API_URL=http://127.0.0.1:9/api incident-bot:test)
  trap 'docker rm -f "$cid" >/dev/null 2>&1 || true' EXIT
  health=""
  for _ in $(seq 1 60); do
    health=$(docker inspect -f '{{.State.Health.Status}}' "$cid")
    [ "$health" = healthy ] && break
    [ "$(docker inspect -f '{{.State.Running}}' "$cid")" = true ] || break
    sleep 1
  done
  if [ "$health" != healthy ]; then
    docker logs "$cid" >&2
    echo "the container did not become healthy (health: $health)" >&2
    exit 1
  fi
  port=$(docker port "$cid" 3000/tcp | head -n 1 | sed 's/.*://')
  if command -v curl >/dev/null; then curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null; fi
  # The bot's own process (pid 1), not the exec's user.
  uid=$(docker exec "$cid" sh -c "grep '^Uid:' /proc/1/status | cut -f2")
  if [ "$uid" = 0 ]; then echo "the bot runs as root in the container" >&2; exit 1; fi
  echo "container healthy, /healthz answers, runs as uid $uid"
fi
