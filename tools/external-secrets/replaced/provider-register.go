// Replaces the operator's pkg/provider/register (see ../main.go): the fake provider only, which the end-to-end
// tests' ClusterSecretStore uses in place of AWS Secrets Manager.
package register

import (
	_ "github.com/external-secrets/external-secrets/pkg/provider/fake"
)
