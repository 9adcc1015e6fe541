#!/usr/bin/env bash
# ensure-package.sh PACKAGE COMMAND... [--service NAME] [--no-recommends]
#
# Makes sure every COMMAND is on PATH. When one is missing: as root it
# installs Debian's PACKAGE with apt-get (and stops the system-wide service
# NAME the package may have started: the tests start their own processes);
# otherwise it prints the one command to run and exits 1. The ensure-*.sh
# scripts are this one for each package the tests need.
set -euo pipefail
pkg=$1
shift
cmds=() service="" norec=()
while [ $# -gt 0 ]; do
  case "$1" in
    --service) service=$2; shift 2 ;;
    --no-recommends) norec=(--no-install-recommends); shift ;;
    *) cmds+=("$1"); shift ;;
  esac
done
# missing sets absent to the first command not on PATH, and fails when none is.
missing() { local c; for c in "${cmds[@]}"; do command -v "$c" >/dev/null 2>&1 || { absent=$c; return 0; }; done; return 1; }
absent=""
missing || exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "$absent is missing; install it with: sudo apt-get install -y $pkg" >&2
  exit 1
fi
echo "ensure: installing $pkg with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq "${norec[@]}" "$pkg" >/dev/null 2>&1 || {
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${norec[@]}" "$pkg" >/dev/null
}
if [ -n "$service" ] && command -v service >/dev/null 2>&1; then
  service "$service" stop >/dev/null 2>&1 || true
fi
if missing; then
  echo "ensure: $pkg installed, but $absent is not on PATH" >&2
  exit 1
fi
echo "ensure: $pkg installed" >&2
