#!/usr/bin/env bash
# A throw-away PostgreSQL server for the test suite: `ops/postgres.sh start|stop DATADIR PORT`.
# Loopback only, trust authentication, data under DATADIR (inside var/). As root it runs the
# server as the `postgres` user, since PostgreSQL refuses to run as root.
set -euo pipefail
action=$1 datadir=$(realpath -m "$2") port=$3

bindir=$(pg_config --bindir 2>/dev/null || true)
[ -x "$bindir/initdb" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ ! -x "$bindir/initdb" ]; then
  echo "[postgres] PostgreSQL's server is missing: install it (on Debian: sudo apt-get install postgresql) and run make again." >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $action in
start)
  if [ ! -f "$datadir/PG_VERSION" ]; then
    mkdir -p "$datadir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$datadir"
    as_owner "$bindir/initdb" -D "$datadir" -A trust -U postgres >/dev/null
  fi
  as_owner "$bindir/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 \
    -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  echo "[postgres] listening on 127.0.0.1:$port (data in $datadir)"
  ;;
stop)
  [ -f "$datadir/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null
  echo "[postgres] stopped"
  ;;
*)
  echo "usage: $0 start|stop DATADIR PORT" >&2
  exit 2
  ;;
esac
