#!/usr/bin/env bash
# Makes sure promtool is installed, for the test that checks
# scripts/alerts.yml and runs its unit tests (scripts/alerts_test.yml):
# Debian's prometheus package ships it (ensure-package.sh).
exec bash "$(dirname "$0")/ensure-package.sh" prometheus promtool --service prometheus --no-recommends
