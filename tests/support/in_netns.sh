#!/bin/sh
# Runs a test command in a fresh network namespace (only loopback, no route out) when the
# machine allows it, so name lookups and "unreachable" cases never leave the machine.
# Without the privilege it runs the command as is and tells the tests through EDGERELAY_NETNS=0.
if [ "${EDGERELAY_IN_NETNS:-}" != 1 ] && unshare -n true 2>/dev/null; then
  exec unshare -n sh -c 'ip link set lo up 2>/dev/null || ifconfig lo up 2>/dev/null; EDGERELAY_IN_NETNS=1 EDGERELAY_NETNS=1 exec "$@"' sh "$@"
fi
[ "${EDGERELAY_IN_NETNS:-}" = 1 ] || export EDGERELAY_NETNS=0
exec "$@"
