#!/usr/bin/env bash
# Downloads the RDS global CA bundle that PgBouncer uses to verify the database (server_tls_sslmode
# verify-full). Run once per checkout, and again when AWS rotates its CAs; commit the file if you like.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p certs
curl --fail --silent --show-error --location \
  -o certs/rds-ca-bundle.pem https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
grep -c "BEGIN CERTIFICATE" certs/rds-ca-bundle.pem | xargs -I{} echo "certs/rds-ca-bundle.pem: {} certificates"
