#!/usr/bin/env bash
# npm run test:integration: builds the pgbouncer_exporter the pods run (scripts/toolchain.sh, skipped when up to
# date) and velure's database clients (scripts/clients.sh), unpacks Debian trixie's PgBouncer 1.24 and PostgreSQL 17
# (scripts/trixie.sh, skipped when there), then runs tests/integration twice against real PostgreSQL and PgBouncer,
# in a network namespace of their own (scripts/in-netns.sh), where the pods' probes reach a second loopback address
# that plays the pod's IP: on Debian 12's PgBouncer 1.18 and PostgreSQL 15, then on trixie's 1.24 and 17.
# VELURE_LAYER=bookworm or trixie runs one layer only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/toolchain.sh pgbouncer_exporter
bash scripts/clients.sh
layers=${VELURE_LAYER:-bookworm trixie}
for layer in $layers; do
  if [ "$layer" = trixie ]; then
    bash scripts/trixie.sh
  fi
  echo "integration: layer $layer"
  VELURE_LAYER=$layer bash scripts/in-netns.sh integration node_modules/.bin/mocha --config tests/integration/.mocharc.json "$@"
done
