#!/usr/bin/env bash
# Runs a command in a network namespace of its own with only loopback up (as root), so that nothing the tests
# start can reach, or be reached from, another address; and so that a server may listen on every address (as a
# pod's PgBouncer does with listen_addr *) without opening a port of this machine. It exports VELURE_NETNS=1 there.
# Not root: the command runs here, and the tests that need the namespace say so and stop.
set -euo pipefail
label=$1
shift
if [ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null; then
  echo "$label: in a network namespace of its own (loopback only)"
  exec unshare --net bash -c 'ip link set lo up && VELURE_NETNS=1 exec "$@"' "$label" "$@"
fi
echo "$label: no network namespace here (not root): the servers listen on 127.0.0.1 of this host"
exec "$@"
