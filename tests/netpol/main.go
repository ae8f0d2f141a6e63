// netpol-matcher decides, with cyclonus's NetworkPolicy matcher (github.com/mattfenwick/cyclonus/pkg/matcher, the
// engine of its policy explainer and of the upstream network-policy conformance work), whether each connection of a
// list is allowed by a set of NetworkPolicies. tests/unit/networkPolicy.test.ts feeds it velure's charts' policies and
// the program's, per stack and mode.
//
// Input (stdin, JSON): {"policies": [<networking.k8s.io/v1 NetworkPolicy>...], "connections": [{"name", "source",
// "destination", "port", "protocol"}]}, where a peer is {"namespace", "namespaceLabels", "podLabels"} (a pod) or
// {"ip"} (outside the cluster). Output (stdout, JSON): [{"name", "allowed", "ingress", "egress"}], one per connection.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

type peer struct {
	Namespace       string            `json:"namespace"`
	NamespaceLabels map[string]string `json:"namespaceLabels"`
	PodLabels       map[string]string `json:"podLabels"`
	IP              string            `json:"ip"`
}

type connection struct {
	Name        string      `json:"name"`
	Source      peer        `json:"source"`
	Destination peer        `json:"destination"`
	Port        int         `json:"port"`
	Protocol    v1.Protocol `json:"protocol"`
}

type input struct {
	Policies    []*networkingv1.NetworkPolicy `json:"policies"`
	Connections []connection                  `json:"connections"`
}

type verdict struct {
	Name    string `json:"name"`
	Allowed bool   `json:"allowed"`
	Ingress bool   `json:"ingress"`
	Egress  bool   `json:"egress"`
}

// trafficPeer is a pod of a namespace (its labels and its namespace's), or an address outside the cluster.
func trafficPeer(p peer) *matcher.TrafficPeer {
	if p.Namespace == "" {
		return &matcher.TrafficPeer{IP: p.IP}
	}
	labels := map[string]string{"kubernetes.io/metadata.name": p.Namespace}
	for k, v := range p.NamespaceLabels {
		labels[k] = v
	}
	// A pod's address is any of the pod network's: ipBlock rules never name pod addresses here.
	return &matcher.TrafficPeer{IP: "10.244.0.10", Internal: &matcher.InternalPeer{Namespace: p.Namespace, NamespaceLabels: labels, PodLabels: p.PodLabels}}
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "netpol-matcher: reading the input:", err)
		os.Exit(2)
	}
	policy := matcher.BuildNetworkPolicies(false, in.Policies)
	verdicts := make([]verdict, 0, len(in.Connections))
	for _, c := range in.Connections {
		protocol := c.Protocol
		if protocol == "" {
			protocol = v1.ProtocolTCP
		}
		result := policy.IsTrafficAllowed(&matcher.Traffic{Source: trafficPeer(c.Source), Destination: trafficPeer(c.Destination), ResolvedPort: c.Port, Protocol: protocol})
		verdicts = append(verdicts, verdict{Name: c.Name, Allowed: result.IsAllowed(), Ingress: result.Ingress.IsAllowed(), Egress: result.Egress.IsAllowed()})
	}
	_ = json.NewEncoder(os.Stdout).Encode(verdicts)
}
