#!/usr/bin/env bash
# Builds velure's database clients (tests/clients: GORM + pgx, lib/pq, golang-migrate at velure's versions) into
# .toolchain/bin/velure-clients, for the integration tests and the benchmark's velure scenario.
set -euo pipefail
cd "$(dirname "$0")/../tests/clients"
PATH="/usr/local/go/bin:$PATH" GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -o ../../.toolchain/bin/velure-clients .
