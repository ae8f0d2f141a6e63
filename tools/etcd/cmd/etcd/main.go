// Command etcd is etcd's own server entry point: the upstream main package lives in a module
// whose go.mod replaces its siblings with local paths, so it cannot be built as a dependency.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
