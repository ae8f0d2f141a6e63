// External Secrets Operator's controller, for the end-to-end tests: the operator's own command, built with only the
// providers and generators the tests use. scripts/toolchain.sh builds it from a copy of the operator's module with
// replaced/*.go over its two register packages, so that the toolchain does not compile every cloud SDK the operator
// supports.
package main

import "github.com/external-secrets/external-secrets/cmd/controller"

func main() {
	controller.Execute()
}
