#!/usr/bin/env bash
# Installs what the relay needs from the system's packages when it is missing: redis-server,
# nginx, a JDK (for Kafka) and Maven (to fetch Kafka's jars); with --tests also Chromium and
# its fonts (the browser tests), and PostgreSQL's server. Says in one sentence what to do
# when it cannot install something itself. (--cluster needs nothing more.)
set -euo pipefail

missing=()
# The reverse proxy in front of the web servers, in every profile.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ "${1:-}" = "--tests" ]; then
  # The browser tests drive the system's Chromium (tests/test_browser.py).
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  compgen -G "/usr/share/fonts/truetype/liberation*" >/dev/null || missing+=(fonts-liberation)
  # The Kafka client people bring (docs/operations.md shows it; the tests read a record with it).
  command -v kcat >/dev/null 2>&1 || missing+=(kcat)
  # The database-facing tests run on PostgreSQL too (make test-postgres).
  { [ -x "$(pg_config --bindir 2>/dev/null)/initdb" ] || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; } \
    || missing+=(postgresql)
fi
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# Kafka 4's broker needs Java 17 or newer.
java_major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p' || true)
[ "${java_major:-0}" -ge 17 ] 2>/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)

[ ${#missing[@]} -eq 0 ] && exit 0

# apt-get, waiting its turn (up to ten minutes) while another install holds the package
# manager's lock: `apt-get update` fails at once on a held lock whatever its options say.
apt_get() {
  local output
  for _ in $(seq 120); do
    if output=$(DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=5 "$@" 2>&1); then
      [ -z "$output" ] || echo "$output"
      return 0
    fi
    grep -q "Could not get lock" <<<"$output" || { echo "$output" >&2; return 1; }
    echo "[bootstrap] another install holds the package manager's lock; waiting" >&2
    sleep 5
  done
  echo "$output" >&2
  return 1
}

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[bootstrap] installing from the system's packages: ${missing[*]}"
  apt_get update -qq
  apt_get install -y -qq "${missing[@]}"
  exit 0
fi
echo "[bootstrap] relay needs ${missing[*]}: install them (on Debian or Ubuntu: sudo apt-get install ${missing[*]}) and run make again." >&2
exit 1
