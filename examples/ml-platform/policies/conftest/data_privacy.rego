# Data privacy (conftest versions of K8sMLApprovedDataSources and
# K8sMLSecretEnvFromSecretRef): storage URIs only under approved prefixes, credentials only
# from Secrets via secretKeyRef. Applies to every workload, whatever its namespace.
package main

import rego.v1

import data.lib.k8s
import data.lib.params

uri_pattern := sprintf(`(%s)://[^\s,;'"|()]+`, [concat("|", params.data_source_schemes)])

deny contains msg if {
	some pair in data_source_texts
	[where, text] := pair
	some uri in regex.find_n(uri_pattern, text, -1)
	not approved_data_source(uri)
	msg := sprintf("%s uses data source %s, which is not under an approved prefix (%s)", [where, uri, concat(", ", params.approved_data_sources)])
}

approved_data_source(uri) if {
	some p in params.approved_data_sources
	k8s.under_prefix(uri, p)
}

data_source_texts contains [where, e.value] if {
	some pair in k8s.containers
	[kind, c] := pair
	some e in c.env
	is_string(e.value)
	where := sprintf("%s %s env %s", [kind, c.name, e.name])
}

data_source_texts contains [where, t] if {
	some pair in k8s.containers
	[kind, c] := pair
	some field in ["args", "command"]
	some t in c[field]
	is_string(t)
	where := sprintf("%s %s %s", [kind, c.name, field])
}

data_source_texts contains [where, t] if {
	some s in k8s.pod_specs
	some v in s.volumes
	some t in v.csi.volumeAttributes
	is_string(t)
	where := sprintf("volume %s", [v.name])
}

deny contains msg if {
	some pair in k8s.containers
	[kind, c] := pair
	some e in c.env
	regex.match(params.sensitive_env_pattern, e.name)
	not from_secret(e)
	msg := sprintf("%s %s sets %s %s; credentials must come from a Secret with valueFrom.secretKeyRef", [kind, c.name, e.name, how(e)])
}

from_secret(e) if {
	e.valueFrom.secretKeyRef.name
	e.valueFrom.secretKeyRef.key
}

how(e) := "as a literal value" if {
	_ = e.value
} else := "from a ConfigMap" if {
	_ = e.valueFrom.configMapKeyRef
} else := "without a secretKeyRef"
