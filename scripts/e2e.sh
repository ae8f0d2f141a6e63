#!/usr/bin/env bash
# npm run test:e2e: brings the real tools up to date (scripts/toolchain.sh skips what is built), then runs
# tests/e2e in a network namespace of their own (scripts/in-netns.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/toolchain.sh
exec bash scripts/in-netns.sh e2e node_modules/.bin/mocha --config tests/e2e/.mocharc.json "$@"
