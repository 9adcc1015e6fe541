#!/usr/bin/env bash
# Makes sure nginx is installed, for the test that runs README's nginx
# auth_request recipe (Debian's nginx package; ensure-package.sh). nginx lives
# in /usr/sbin, which a non-root PATH often lacks: it is looked for there too,
# as the test does. The system service the package starts is stopped: the
# test runs its own nginx on a free loopback port with its own prefix.
PATH="$PATH:/usr/sbin:/sbin" exec bash "$(dirname "$0")/ensure-package.sh" nginx nginx --service nginx
