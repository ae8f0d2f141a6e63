// Command pulumi-resource-kubernetes serves the Kubernetes provider module at the version that tools/go.mod pins.
// The module's own main embeds schema-embed.json and terraform-mapping-embed.json, which its repository generates
// and does not ship; generate.go makes them here from the module's schema.json, as the upstream generate.go does.
package main

//go:generate go run generate.go

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
