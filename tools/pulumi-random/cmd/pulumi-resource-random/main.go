// Command pulumi-resource-random bridges terraform-provider-random (the shim module beside this one) with
// pulumi-terraform-bridge, naming its resources as @pulumi/random does (random:index/randomPassword:RandomPassword
// for random_password), so that the SDK's resource tokens resolve. pulumi-random's own provider module is not served
// by the module proxy here; its mapping is these few lines (its resources.go at the version package-lock.json pins),
// and its schema and bridge metadata, which that repository generates at build time, are generated from the mapping
// at start (a fraction of a second for random's eight resources).
package main

import (
	"context"
	"encoding/json"
	"io"
	"log"

	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag/colors"
	"github.com/terraform-providers/terraform-provider-random/shim"
)

// Version is the @pulumi/random version the program's package-lock.json pins (set with -ldflags -X).
var Version = "0.0.0"

func providerInfo() tfbridge.ProviderInfo {
	info := tfbridge.ProviderInfo{
		P:       pf.ShimProvider(shim.NewProvider()),
		Name:    "random",
		Version: Version,
		// The bridge's metadata (property renames) is generated with the schema below, into this value.
		MetadataInfo: tfbridge.NewProviderMetadata(nil),
	}
	// pulumi-random's rule: every random_<x> becomes random:index/random<X>:Random<X>.
	makeToken := func(module, name string) (string, error) {
		return tokens.MakeStandard("random")(module, "Random"+name)
	}
	info.MustComputeTokens(tokens.SingleModule("random_", "index", makeToken))
	return info
}

func main() {
	info := providerInfo()
	spec, err := tfgen.GenerateSchema(info, diag.DefaultSink(io.Discard, io.Discard, diag.FormatOptions{Color: colors.Never}))
	if err != nil {
		log.Fatalf("pulumi-resource-random: generating the schema: %v", err)
	}
	schema, err := json.Marshal(spec)
	if err != nil {
		log.Fatalf("pulumi-resource-random: encoding the schema: %v", err)
	}
	pf.Main(context.Background(), "random", info, pf.ProviderMetadata{PackageSchema: schema})
}
