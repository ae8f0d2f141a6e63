// External Secrets Operator: the module whose CRDs (config/crds/bases) the end-to-end tests install, so that the
// API server validates the program's ExternalSecrets as a cluster with the operator would.
module velure-pooling/tools/external-secrets

go 1.26

require github.com/external-secrets/external-secrets v0.16.2
