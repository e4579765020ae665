# Model governance (conftest versions of K8sMLModelApproval and
# K8sMLAllowedModelRegistries): production model serving carries approval and bias-check
# annotations; every image comes from an approved registry, matched on a path boundary.
package main

import rego.v1

import data.lib.k8s
import data.lib.params

model_serving_in_production if {
	k8s.workload_type == "serving"
	k8s.production
	count(k8s.pod_specs) > 0
}

deny contains msg if {
	model_serving_in_production
	some a in params.model_annotations
	not model_annotation(a.key)
	msg := sprintf("%s %s has no annotation %s (%s)", [input.kind, input.metadata.name, a.key, a.description])
}

deny contains msg if {
	model_serving_in_production
	some a in params.model_annotations
	v := model_annotation(a.key)
	not regex.match(a.allowedRegex, v)
	msg := sprintf("%s %s has annotation %s=%v, which does not match %s (%s)", [input.kind, input.metadata.name, a.key, v, a.allowedRegex, a.description])
}

# The workload's own annotation wins over the pod template's.
model_annotation(k) := v if {
	v := input.metadata.annotations[k]
} else := v if {
	v := k8s.pod_template_metadata.annotations[k]
}

deny contains msg if {
	some pair in k8s.containers
	[kind, c] := pair
	not approved_image(c.image)
	msg := sprintf("%s %s image %v is not from an approved model registry (%s)", [kind, c.name, c.image, concat(", ", params.approved_registries)])
}

approved_image(image) if {
	some repo in params.approved_registries
	under_repo(image, repo)
}

# registry.example.com allows registry.example.com/… but not registry.example.com.evil.io/…,
# registry.example.com-x/… or registry.example.com:5000/…; a repository entry
# (registry.example.com/models/fraud) also allows its tags and digests.
under_repo(image, repo) if {
	repo != ""
	k8s.under_prefix(image, repo)
	image != repo
}

under_repo(image, repo) if {
	contains(repo, "/")
	not endswith(repo, "/")
	some sep in [":", "@"]
	startswith(image, concat("", [repo, sep]))
}
