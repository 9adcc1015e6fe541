#!/usr/bin/env bash
# Makes sure tmux is installed, for the test that drives `refrakt top` in a
# real terminal. As root it installs Debian's package; otherwise it prints
# the command to run.
set -euo pipefail
command -v tmux >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "tmux is missing; install it with: sudo apt-get install -y tmux" >&2
  exit 1
fi
echo "ensure-tmux: installing tmux with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq tmux >/dev/null 2>&1 || { apt-get update -qq >/dev/null; apt-get install -y -qq tmux >/dev/null; }
command -v tmux >/dev/null
