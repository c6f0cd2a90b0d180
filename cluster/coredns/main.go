// CoreDNS, the cluster's DNS (names of Services and pods): upstream's own server with only the
// plugins the cluster's Corefile uses (cluster/cluster.py), so that the build leaves out the
// cloud providers' SDKs that the full build links in.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
