// Package shim hands the bridge terraform-provider-random's plugin-framework provider. It lives under the
// provider's own import path because the constructor is in the provider's internal package, which Go lets only
// paths below github.com/terraform-providers/terraform-provider-random import.
package shim

import (
	tfpf "github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// NewProvider is the constructor pulumi-random's provider module calls.
func NewProvider() tfpf.Provider {
	return provider.New()
}
