#!/usr/bin/env bash
# Builds the real tools that `npm run test:e2e` runs (Pulumi CLI and its Node language host, the Kubernetes
# and random providers, Helm, etcd, the Kubernetes control plane, the kubelet and kube-proxy of the real node, kwok and External Secrets Operator), and the pgbouncer_exporter that
# `npm run test:integration` runs, from our own small Go modules under tools/,
# into .toolchain/bin (git-ignored). A binary is rebuilt only when its module's files or its version changed.
#
#   bash scripts/toolchain.sh            build what is missing or stale
#   bash scripts/toolchain.sh --check    exit 1 if anything would be built (prints what)
#   bash scripts/toolchain.sh NAME...    only these tools (names as in the table below)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out="$root/.toolchain/bin"
stamps="$root/.toolchain/stamps"
mkdir -p "$out" "$stamps"
export PATH="/usr/local/go/bin:$PATH"
# go.mod and go.sum are complete: a build never rewrites them (readonly); VCS stamping is off, as on these machines.
export GOFLAGS="-mod=readonly -buildvcs=false"

# The versions below are the ones each module's go.mod pins; tests/unit/toolchain.test.ts checks that they
# agree with package-lock.json and with the go.mod files.
PULUMI_VERSION=v3.248.0
KUBERNETES_PROVIDER_VERSION=v4.25.0
RANDOM_PROVIDER_VERSION=v4.19.1
HELM_VERSION=v3.18.6
KUBE_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
# The exporter that monitoringExporterImage's default tag names; the integration tests run it beside PgBouncer.
PGBOUNCER_EXPORTER_VERSION=v0.12.1
# External Secrets Operator, whose controller the e2e tests run (velure's cluster runs the operator; v1 API).
EXTERNAL_SECRETS_VERSION=v0.16.2

kube_ldflags="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/component-base/version.gitTreeState=clean"

# name | module dir under tools/ | package | version | ldflags
tools_table() {
  cat <<EOF
helm|helm|helm.sh/helm/v3/cmd/helm|$HELM_VERSION|-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION
kube-apiserver|kube-control-plane|k8s.io/kubernetes/cmd/kube-apiserver|$KUBE_VERSION|$kube_ldflags
kube-controller-manager|kube-control-plane|k8s.io/kubernetes/cmd/kube-controller-manager|$KUBE_VERSION|$kube_ldflags
kube-scheduler|kube-control-plane|k8s.io/kubernetes/cmd/kube-scheduler|$KUBE_VERSION|$kube_ldflags
kubelet|kube-control-plane|k8s.io/kubernetes/cmd/kubelet|$KUBE_VERSION|$kube_ldflags
kube-proxy|kube-control-plane|k8s.io/kubernetes/cmd/kube-proxy|$KUBE_VERSION|$kube_ldflags
etcd|etcd|./cmd/etcd|$ETCD_VERSION|
pulumi|pulumi|github.com/pulumi/pulumi/pkg/v3/cmd/pulumi|$PULUMI_VERSION|-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION
pulumi-language-nodejs|pulumi|./cmd/pulumi-language-nodejs|$PULUMI_VERSION|-X main.version=$PULUMI_VERSION
pulumi-resource-kubernetes|pulumi-kubernetes|./cmd/pulumi-resource-kubernetes|$KUBERNETES_PROVIDER_VERSION|-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$KUBERNETES_PROVIDER_VERSION
pulumi-resource-random|pulumi-random|./cmd/pulumi-resource-random|$RANDOM_PROVIDER_VERSION|-X main.Version=${RANDOM_PROVIDER_VERSION#v}
kwok|kwok|sigs.k8s.io/kwok/cmd/kwok|$KWOK_VERSION|
pgbouncer_exporter|pgbouncer-exporter|github.com/prometheus-community/pgbouncer_exporter|$PGBOUNCER_EXPORTER_VERSION|-X github.com/prometheus/common/version.Version=${PGBOUNCER_EXPORTER_VERSION#v}
EOF
}

# What a binary was built from: its version, flags, Go version and every file of its module.
fingerprint() {
  local dir=$1 version=$2 ldflags=$3
  {
    echo "$version $ldflags $(go env GOVERSION)"
    (cd "tools/$dir" && find . -type f -not -name '.*' -not -name '*-embed.json' | LC_ALL=C sort | xargs sha256sum)
  } | sha256sum | cut -d' ' -f1
}

check_only=false
wanted=()
for arg in "$@"; do
  case "$arg" in
    --check) check_only=true ;;
    -*) echo "toolchain: unknown option $arg" >&2; exit 2 ;;
    *) wanted+=("$arg") ;;
  esac
done

is_wanted() {
  [ ${#wanted[@]} -eq 0 ] && return 0
  local w
  for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

stale=0
total_start=$(date +%s)
while IFS='|' read -r name dir pkg version ldflags; do
  is_wanted "$name" || continue
  sum=$(fingerprint "$dir" "$version" "$ldflags")
  if [ -x "$out/$name" ] && [ "$(cat "$stamps/$name" 2>/dev/null)" = "$sum" ]; then
    echo "toolchain: $name $version is up to date"
    continue
  fi
  stale=1
  if $check_only; then
    echo "toolchain: $name $version would be built"
    continue
  fi
  echo "toolchain: building $name $version (tools/$dir: $pkg) ..."
  start=$(date +%s)
  if [ "$name" = pulumi-resource-kubernetes ]; then
    (cd "tools/$dir/$pkg" && VERSION="${version#v}" go run generate.go)
  fi
  (cd "tools/$dir" && go build -trimpath -ldflags "$ldflags" -o "$out/$name" "$pkg")
  echo "$sum" > "$stamps/$name"
  echo "toolchain: built $name $version in $(( $(date +%s) - start )) s"
done < <(tools_table)

# kwok fakes nodes and pods by the Stage objects it is given; take the "fast" stages and the lease heartbeat
# that its own module ships (kwokctl's defaults), so that they always match the kwok we built.
kwok_stages="$root/.toolchain/share/kwok-stages.yaml"
if is_wanted kwok && ! $check_only && [ ! -s "$kwok_stages" -o "$out/kwok" -nt "$kwok_stages" ]; then
  mkdir -p "$(dirname "$kwok_stages")"
  kwok_dir=$(cd tools/kwok && go mod download sigs.k8s.io/kwok && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"
    cat "$kwok_dir/kustomize/stage/$f"
  done > "$kwok_stages"
  echo "toolchain: wrote kwok's stages to .toolchain/share/kwok-stages.yaml"
fi

# External Secrets Operator: its CRDs, which the e2e tests install so that the API server validates the program's
# ExternalSecrets, and its controller, which renders them there (from a fake store standing in for Secrets Manager).
# The controller is the operator's own command (tools/external-secrets/main.go) built from a copy of its module in
# which tools/external-secrets/replaced/*.go take the place of the two packages that register every provider and
# generator: the fake provider is the one the tests use, and the cloud SDKs are not compiled.
eso_crds="$root/.toolchain/share/external-secrets-crds.yaml"
eso_bin="$out/external-secrets"
if is_wanted external-secrets; then
  sum=$(fingerprint external-secrets "$EXTERNAL_SECRETS_VERSION" "")
  if [ -x "$eso_bin" ] && [ -s "$eso_crds" ] && [ "$(cat "$stamps/external-secrets" 2>/dev/null)" = "$sum" ]; then
    echo "toolchain: external-secrets $EXTERNAL_SECRETS_VERSION is up to date"
  elif $check_only; then
    stale=1
    echo "toolchain: external-secrets $EXTERNAL_SECRETS_VERSION would be built"
  else
    echo "toolchain: building external-secrets $EXTERNAL_SECRETS_VERSION (tools/external-secrets: the controller, fake provider only) ..."
    start=$(date +%s)
    eso_dir=$(cd tools/external-secrets && go mod download -json "github.com/external-secrets/external-secrets@$EXTERNAL_SECRETS_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    mkdir -p "$(dirname "$eso_crds")"
    # The controller's ExternalSecret and store reconcilers, and its GeneratorState one (always on) watch these.
    for crd in external-secrets.io_externalsecrets external-secrets.io_clustersecretstores external-secrets.io_secretstores \
               generators.external-secrets.io_generatorstates; do
      echo "---"
      cat "$eso_dir/config/crds/bases/$crd.yaml"
    done > "$eso_crds"
    eso_src="$root/.toolchain/src/external-secrets"
    rm -rf "$eso_src" && mkdir -p "$eso_src"
    cp -r "$eso_dir/go.mod" "$eso_dir/go.sum" "$eso_dir/apis" "$eso_dir/cmd" "$eso_dir/pkg" "$eso_src/"
    chmod -R u+w "$eso_src"
    cp tools/external-secrets/replaced/provider-register.go "$eso_src/pkg/provider/register/register.go"
    cp tools/external-secrets/replaced/generator-register.go "$eso_src/pkg/generator/register/register.go"
    # The module's go.mod and go.sum with one more line: the operator's module is the copy.
    eso_mod="$root/.toolchain/src/external-secrets-build"
    mkdir -p "$eso_mod"
    cp tools/external-secrets/go.sum "$eso_mod/go.sum"
    { cat tools/external-secrets/go.mod; echo "replace github.com/external-secrets/external-secrets => $eso_src"; } > "$eso_mod/go.mod"
    (cd tools/external-secrets && go build -modfile="$eso_mod/go.mod" -trimpath -o "$eso_bin" .)
    echo "$sum" > "$stamps/external-secrets"
    echo "toolchain: built external-secrets $EXTERNAL_SECRETS_VERSION in $(( $(date +%s) - start )) s"
  fi
fi

if $check_only; then exit $stale; fi
echo "toolchain: done in $(( $(date +%s) - total_start )) s; binaries in .toolchain/bin"
