#!/usr/bin/env bash
# Makes sure redis-server and redis-cli are installed, for the tests that run
# against real Redis (Debian's redis-server package; ensure-package.sh).
exec bash "$(dirname "$0")/ensure-package.sh" redis-server redis-server redis-cli --service redis-server
