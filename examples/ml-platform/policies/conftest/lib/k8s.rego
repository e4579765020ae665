# Shared helpers for the conftest policies: pod specs of every workload kind, every
# container (regular, init, ephemeral) with a label for messages, namespace, workload
# type and environment of a raw manifest.
package lib.k8s

import rego.v1

import data.lib.params

obj := input

# The pod spec of a Pod, of a pod template (Deployment, StatefulSet, DaemonSet,
# ReplicaSet, Job, Rollout, PodTemplate) and of a CronJob's job template.
pod_specs contains s if {
	obj.kind == "Pod"
	s := obj.spec
}

pod_specs contains s if s := obj.spec.template.spec

pod_specs contains s if s := obj.spec.jobTemplate.spec.template.spec

container_kinds := {"containers": "container", "initContainers": "init container", "ephemeralContainers": "ephemeral container"}

# [kind, container] pairs, kind being "container", "init container" or "ephemeral container".
containers contains [kind, c] if {
	some s in pod_specs
	some field, kind in container_kinds
	some c in s[field]
}

pod_template_metadata := m if {
	m := obj.spec.template.metadata
} else := m if {
	m := obj.spec.jobTemplate.spec.template.metadata
} else := {}

namespace := ns if {
	ns := obj.metadata.namespace
	ns != ""
}

# " in <namespace>" when the manifest names one, for messages.
in_namespace := sprintf(" in %s", [namespace]) if {
	namespace
} else := ""

label(k) := v if {
	v := obj.metadata.labels[k]
} else := v if {
	v := pod_template_metadata.labels[k]
}

# The workload type: the ml.mooring.dev/workload label of the object or its pod template,
# else the type whose namespaces (exact or "<ns>-<suffix>") hold the object.
workload_type := t if {
	t := label("ml.mooring.dev/workload")
} else := t if {
	some t, w in params.workloads
	some p in w.namespaces
	in_namespace_group(namespace, p)
}

in_namespace_group(ns, p) if ns == p

in_namespace_group(ns, p) if startswith(ns, concat("", [p, "-"]))

# Production: a namespace ending in -production, or the environment label.
production if endswith(namespace, "-production")

production if namespace == "production"

production if label("environment") == "production"

# s is p, or lies below p on a path boundary ("/" after p, or p ends with "/").
under_prefix(s, p) if s == p

under_prefix(s, p) if {
	endswith(p, "/")
	startswith(s, p)
}

under_prefix(s, p) if {
	not endswith(p, "/")
	startswith(s, concat("", [p, "/"]))
}
