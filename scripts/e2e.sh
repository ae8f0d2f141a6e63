#!/usr/bin/env bash
# npm run test:e2e: brings the real tools up to date (scripts/toolchain.sh skips what is built), then runs
# tests/e2e. As root it runs them in a network namespace of their own with only loopback up, so that nothing
# the tests start can reach or be reached from another address.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/toolchain.sh
mocha=(node_modules/.bin/mocha --config tests/e2e/.mocharc.json "$@")
if [ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null; then
  echo "e2e: in a network namespace of its own (loopback only)"
  exec unshare --net bash -c 'ip link set lo up && exec "$@"' e2e "${mocha[@]}"
fi
echo "e2e: no network namespace here (not root): the servers listen on 127.0.0.1 of this host"
exec "${mocha[@]}"
