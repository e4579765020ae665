# ML resource requirements (conftest version of K8sMLResourceLimits): per workload type,
# every container (init and ephemeral ones included) stays under the CPU, memory and GPU
# caps, sets the required limits, and requests exactly the GPUs it limits. Quantities are
# compared as Kubernetes quantities (500m < 1, 2G > 1Gi, 1.5Gi), never as strings.
package main

import rego.v1

import data.lib.k8s
import data.lib.params
import data.lib.quantity

workload := params.workloads[k8s.workload_type]

deny contains msg if {
	some pair in k8s.containers
	[kind, c] := pair
	kind != "ephemeral container" # Kubernetes allows no resources on them
	some r in workload.required_limits
	not has_limit(c, r)
	msg := sprintf("%s %s has no %s limit; %s workloads%s must set resources.limits.%s", [kind, c.name, r, k8s.workload_type, k8s.in_namespace, r])
}

deny contains msg if {
	some pair in k8s.containers
	[kind, c] := pair
	some r, max_raw in workload.max
	[raw, amount] := largest(c, r)
	amount > quantity.parse(max_raw)
	msg := sprintf("%s %s requests %v %s, more than the %v allowed for %s workloads%s", [kind, c.name, raw, r, max_raw, k8s.workload_type, k8s.in_namespace])
}

# Not limited to ML workload types: a malformed quantity is always an error.
deny contains msg if {
	some pair in k8s.containers
	[kind, c] := pair
	some f in ["limits", "requests"]
	some r, v in c.resources[f]
	not quantity.parse(v)
	msg := sprintf("%s %s has an invalid %s quantity %v for %s", [kind, c.name, f, v, r])
}

deny contains msg if {
	some pair in k8s.containers
	[kind, c] := pair
	some g in params.gpu_resources
	req := c.resources.requests[g]
	not has_limit(c, g)
	msg := sprintf("%s %s requests %v %s but sets no %s limit; GPU requests must equal limits", [kind, c.name, req, g, g])
}

deny contains msg if {
	some pair in k8s.containers
	[kind, c] := pair
	some g in params.gpu_resources
	req := c.resources.requests[g]
	lim := c.resources.limits[g]
	quantity.parse(req) != quantity.parse(lim)
	msg := sprintf("%s %s requests %v %s but its limit is %v; GPU requests must equal limits", [kind, c.name, req, g, lim])
}

has_limit(c, r) if {
	v := c.resources.limits[r]
	v != ""
	v != null
}

# [raw, amount] of the larger of a container's request and limit for resource r.
largest(c, r) := [raw, amount] if {
	vals := [[v, q] | some f in ["limits", "requests"]; v := c.resources[f][r]; q := quantity.parse(v)]
	amount := max([pair[1] | some pair in vals])
	raw := [pair[0] | some pair in vals; pair[1] == amount][0]
}
