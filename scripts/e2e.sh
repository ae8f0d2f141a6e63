#!/usr/bin/env bash
# npm run test:e2e: brings the real tools up to date (scripts/toolchain.sh skips what is built), and what the real
# node's images are made of (velure's clients, scripts/clients.sh; trixie's PgBouncer 1.24 and PostgreSQL 17,
# scripts/trixie.sh, skipped when there), then runs tests/e2e in a network namespace of their own (scripts/in-netns.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/toolchain.sh
bash scripts/clients.sh
bash scripts/trixie.sh
exec bash scripts/in-netns.sh e2e node_modules/.bin/mocha --config tests/e2e/.mocharc.json "$@"
