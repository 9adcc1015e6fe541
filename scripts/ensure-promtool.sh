#!/usr/bin/env bash
# Makes sure promtool is installed, for the test that checks
# scripts/alerts.yml and runs its unit tests (scripts/alerts_test.yml). As
# root it installs Debian's prometheus package (which ships promtool) with
# apt-get; otherwise it prints the one command to run.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "promtool is missing; install it with: sudo apt-get install -y prometheus" >&2
  exit 1
fi
echo "ensure-promtool: installing prometheus (for promtool) with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package may start a system-wide Prometheus on 9090; the tests never
# use it.
if command -v service >/dev/null 2>&1; then service prometheus stop >/dev/null 2>&1 || true; fi
command -v promtool >/dev/null
echo "ensure-promtool: $(promtool --version 2>&1 | head -n 1)" >&2
