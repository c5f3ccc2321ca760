#!/usr/bin/env bash
# Builds the Docker Compose CLI (v2) from its Go module, once, into the user's cache: the tests
# validate docker-compose.yml with `docker-compose config`, which needs no Docker engine.
# `go install …@latest` refuses the module (its go.mod has exclude directives), so it is got
# into a scratch module and built from there. The first build downloads ~190 modules and
# compiles for some minutes; later runs find the binary and exit at once.
# Prints the binary's path on its last line.
set -euo pipefail

version="${RELAY_COMPOSE_VERSION:-v2.40.3}"
out="${XDG_CACHE_HOME:-$HOME/.cache}/relay/docker-compose-$version"
say() { echo "[compose] $*" >&2; }

if [ -x "$out" ] && "$out" version >/dev/null 2>&1; then
  echo "$out"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  say "building Docker Compose $version needs Go 1.24 or newer: install it from https://go.dev/dl/ and run make again."
  exit 1
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
go mod init scratch >/dev/null 2>&1
say "downloading Docker Compose $version's modules (first time: a few minutes)"
if ! go get "github.com/docker/compose/v2/cmd@$version" >get.log 2>&1; then
  tail -20 get.log >&2
  say "could not download Docker Compose $version from the Go module proxy (above: why)."
  exit 1
fi
say "compiling it (first time: about 6 minutes on 2 cores)"
if ! go build -ldflags "-w -X github.com/docker/compose/v2/internal.Version=$version" \
    -o docker-compose github.com/docker/compose/v2/cmd >build.log 2>&1; then
  tail -20 build.log >&2
  say "could not build Docker Compose $version (above: why; Go 1.24 or newer is needed)."
  exit 1
fi
mkdir -p "$(dirname "$out")"
install -m 0755 docker-compose "$out.tmp" && mv -f "$out.tmp" "$out"
say "built $("$out" version)"
echo "$out"
