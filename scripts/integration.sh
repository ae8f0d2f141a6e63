#!/usr/bin/env bash
# npm run test:integration: builds the pgbouncer_exporter the pods run (scripts/toolchain.sh, skipped when up to
# date), then runs tests/integration against real PostgreSQL and PgBouncer in a network namespace of their own
# (scripts/in-netns.sh), where the pods' probes reach a second loopback address that plays the pod's IP.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/toolchain.sh pgbouncer_exporter
exec bash scripts/in-netns.sh integration node_modules/.bin/mocha --config tests/integration/.mocharc.json "$@"
