#!/usr/bin/env bash
# A throw-away PostgreSQL server for the test suite: `ops/postgres.sh start|stop PORT`.
# Loopback only, trust authentication, fsync off; its data lives in
# ${TMPDIR:-/tmp}/relay-test-postgres-PORT and is made anew at every start. As root it runs
# as the `postgres` user (PostgreSQL refuses root), which is why the data is not under the
# checkout: that folder may be private to root (a clone in a `mktemp -d` folder is).
set -euo pipefail
action=$1 port=$2
datadir="${TMPDIR:-/tmp}/relay-test-postgres-$port"

bindir=$(pg_config --bindir 2>/dev/null || true)
[ -x "$bindir/initdb" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ ! -x "$bindir/initdb" ]; then
  echo "[postgres] PostgreSQL's server is missing: install it (on Debian: sudo apt-get install postgresql) and run make again." >&2
  exit 1
fi

cd "${TMPDIR:-/tmp}"  # a folder the server's user may enter
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
stop() {
  if [ -f "$datadir/postmaster.pid" ]; then
    as_owner "$bindir/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null || true
  fi
}

case $action in
start)
  stop  # a run that was killed may have left its server behind
  rm -rf "$datadir"
  mkdir -p "$datadir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$datadir"; fi
  as_owner "$bindir/initdb" -D "$datadir" -A trust -U postgres >/dev/null
  as_owner "$bindir/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 \
    -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  echo "[postgres] listening on 127.0.0.1:$port (data in $datadir)"
  ;;
stop)
  stop
  rm -rf "$datadir"
  echo "[postgres] stopped"
  ;;
*)
  echo "usage: $0 start|stop PORT" >&2
  exit 2
  ;;
esac
