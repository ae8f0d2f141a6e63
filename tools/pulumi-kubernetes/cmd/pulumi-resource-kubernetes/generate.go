//go:build ignore

// generate.go writes schema-embed.json (the module's schema.json with the provider's version set) and
// terraform-mapping-embed.json, both git-ignored. VERSION is the provider version without its "v".
package main

import (
	"encoding/json"
	"log"
	"os"
	"os/exec"
	"path/filepath"
)

func main() {
	version := os.Getenv("VERSION")
	if version == "" {
		log.Fatal("generate.go: set VERSION")
	}
	// `go mod download` (unlike `go list -m`) fetches the module into a cold module cache and says where it is.
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/pulumi/pulumi-kubernetes/provider/v4").Output()
	if err != nil {
		log.Fatalf("generate.go: downloading the provider module: %v", err)
	}
	var module struct{ Dir string }
	if err := json.Unmarshal(out, &module); err != nil || module.Dir == "" {
		log.Fatalf("generate.go: no module directory in %q (%v)", out, err)
	}
	dir := filepath.Join(module.Dir, "cmd", "pulumi-resource-kubernetes")
	var schema map[string]any
	raw, err := os.ReadFile(filepath.Join(dir, "schema.json"))
	if err != nil {
		log.Fatal(err)
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		log.Fatalf("generate.go: schema.json: %v", err)
	}
	schema["version"] = version
	versioned, err := json.Marshal(schema)
	if err != nil {
		log.Fatal(err)
	}
	mapping, err := os.ReadFile(filepath.Join(dir, "terraform-mapping.json"))
	if err != nil {
		log.Fatal(err)
	}
	for name, content := range map[string][]byte{"schema-embed.json": versioned, "terraform-mapping-embed.json": mapping} {
		if err := os.WriteFile(name, content, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
