#!/usr/bin/env bash
# Builds velure's database clients (tests/clients: GORM + pgx, lib/pq, golang-migrate at velure's versions) into
# .toolchain/bin/velure-clients, for the integration tests and the benchmark's velure scenario, and into the velure
# stand-in images of the real node (tests/e2e/images.ts): static (no cgo), so that an image needs no C library.
set -euo pipefail
cd "$(dirname "$0")/../tests/clients"
CGO_ENABLED=0 PATH="/usr/local/go/bin:$PATH" GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -o ../../.toolchain/bin/velure-clients .
