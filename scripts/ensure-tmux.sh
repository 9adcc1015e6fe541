#!/usr/bin/env bash
# Makes sure tmux is installed, for the test that drives `refrakt top` in a
# real terminal (Debian's tmux package; ensure-package.sh).
exec bash "$(dirname "$0")/ensure-package.sh" tmux tmux
