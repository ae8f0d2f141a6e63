#!/usr/bin/env bash
# Builds cyclonus's NetworkPolicy matcher (tests/netpol) into .toolchain/bin/netpol-matcher, which the unit tests of
# the allow policies run (tests/unit/networkPolicy.test.ts). Go's build cache makes a second run take a second.
set -euo pipefail
cd "$(dirname "$0")/../tests/netpol"
PATH="/usr/local/go/bin:$PATH" GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -o ../../.toolchain/bin/netpol-matcher .
