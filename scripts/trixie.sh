#!/usr/bin/env bash
# PgBouncer 1.24 and PostgreSQL 17 from Debian trixie, for the integration tests' second layer beside bookworm's
# PgBouncer 1.18 and PostgreSQL 15, and pgpool-II 4.6, the benchmark's peer. This machine stays bookworm: apt reads trixie's index into a private state
# directory (an empty dpkg status, so it resolves the whole library closure from trixie), downloads the .debs,
# and they are unpacked (no maintainer scripts run) into .toolchain/trixie. The binaries the tests run get that
# tree's loader and library path written into them (patchelf), so that initdb's own exec of postgres works too,
# and so do pg_isready and psql in the pods' probes (tests/integration/kubelet.ts).
# Skipped when the tree is there with these packages; VELURE_TRIXIE_ROOT moves it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${VELURE_TRIXIE_ROOT:-$PWD/.toolchain/trixie}
packages=(pgbouncer postgresql-17 pgpool2)
stamp=$root/.complete-$(IFS=-; echo "${packages[*]}")
if [ -f "$stamp" ]; then
  exit 0
fi
command -v patchelf >/dev/null || { echo "trixie.sh: patchelf is missing (apt-get install patchelf)" >&2; exit 1; }
work=$(mktemp -d /tmp/velure-trixie-apt.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb http://deb.debian.org/debian trixie main" >"$work/sources.list"
: >"$work/status"
apt_opts=(
  -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "Dir::State::status=$work/status"
  -o APT::Install-Recommends=false -o Debug::NoLocking=1
)
apt-get "${apt_opts[@]}" update -qq
apt-get "${apt_opts[@]}" install -y -qq --download-only "${packages[@]}" >/dev/null
rm -rf "$root"
mkdir -p "$root"
for deb in "$work"/cache/archives/*.deb; do
  dpkg-deb -x "$deb" "$root"
done
lib=$root/usr/lib/x86_64-linux-gnu
for bin in "$root"/usr/sbin/pgbouncer "$root"/usr/sbin/pgpool "$root"/usr/lib/postgresql/17/bin/*; do
  if [ "$(head -c 4 "$bin" | od -An -c | tr -d ' ')" = "177ELF" ]; then
    patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$lib" "$bin"
  fi
done
"$root/usr/sbin/pgbouncer" --version | head -1
"$root/usr/lib/postgresql/17/bin/postgres" --version
"$root/usr/sbin/pgpool" --version
touch "$stamp"
