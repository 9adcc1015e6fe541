#!/usr/bin/env bash
# Makes sure redis-server (and redis-cli) are installed, for the tests that
# run against real Redis. As root it installs Debian's package with apt-get;
# otherwise it prints the one command to run.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "redis-server is missing; install it with: sudo apt-get install -y redis-server" >&2
  exit 1
fi
echo "ensure-redis: installing redis-server with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq redis-server >/dev/null
# The package may start a system-wide server on 6379; the tests never use it.
if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
command -v redis-server >/dev/null
echo "ensure-redis: $(redis-server --version | cut -d' ' -f1-3)" >&2
