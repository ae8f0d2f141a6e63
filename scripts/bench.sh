#!/usr/bin/env bash
# npm run bench: builds velure's database clients (scripts/clients.sh) and unpacks Debian trixie's PgBouncer 1.24
# (scripts/trixie.sh, skipped when there), which the velure scenario runs beside bookworm's 1.18, then runs the
# benchmark (bench/run.ts) with the arguments given, in a network namespace of its own (scripts/in-netns.sh): its
# second server listens on 127.0.0.2.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/clients.sh
bash scripts/trixie.sh
exec bash scripts/in-netns.sh bench node_modules/.bin/ts-node --swc bench/run.ts "$@"
