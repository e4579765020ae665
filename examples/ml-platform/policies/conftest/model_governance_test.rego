package model_governance_test

import rego.v1

serving(ns, labels, annotations, template_annotations, image) := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": "model-server", "namespace": ns, "labels": labels, "annotations": annotations},
	"spec": {"template": {
		"metadata": {"labels": labels, "annotations": template_annotations},
		"spec": {"containers": [{
			"name": "server",
			"image": image,
			"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
		}]},
	}},
}

model := "registry.ml.example.com/models/fraud-detector:1.4.2"

serving_label := {"ml.mooring.dev/workload": "serving"}

prod_label := {"ml.mooring.dev/workload": "serving", "environment": "production"}

approved := {"models.mooring.dev/approved-by": "jane.doe@example.com", "models.mooring.dev/bias-check": "passed"}

test_production_model_with_approval_allowed if {
	count(data.main.deny) == 0 with input as serving("ml-serving-production", serving_label, approved, {}, model)
	count(data.main.deny) == 0 with input as serving("", prod_label, {}, approved, model)
}

test_production_model_without_approval_denied if {
	data.main.deny == {
		"Deployment model-server has no annotation models.mooring.dev/approved-by (production models need a named approver)",
		"Deployment model-server has annotation models.mooring.dev/bias-check=failed, which does not match ^passed$ (production models need a passed bias check)",
	} with input as serving("ml-serving-production", serving_label, {"models.mooring.dev/bias-check": "failed"}, {}, model)
	# Production recognised by the environment label when there is no namespace.
	count(data.main.deny) == 2 with input as serving("", prod_label, {}, {}, model)
	# An empty approver is no approver.
	count(data.main.deny) == 1 with input as serving("ml-serving-production", serving_label, object.union(approved, {"models.mooring.dev/approved-by": " "}), {}, model)
}

test_staging_model_needs_no_approval if {
	count(data.main.deny) == 0 with input as serving("ml-serving-staging", serving_label, {}, {}, model)
}

test_approved_registries_allowed if {
	count(data.main.deny) == 0 with input as serving("ml-serving-staging", serving_label, {}, {}, "registry.ml.example.com/platform/x@sha256:0123")
}

registry_message(image) := sprintf("container server image %s is not from an approved model registry (registry.ml.example.com/models, registry.ml.example.com/platform, registry.ml.example.com/infra)", [image])

test_registry_prefix_cannot_be_spoofed if {
	some image in [
		"registry.ml.example.com.evil.io/models/fraud-detector:1.4.2",
		"registry.ml.example.com/models-evil/fraud-detector:1.4.2",
		"registry.ml.example.com/modelsx:1.0",
		"evil.io/registry.ml.example.com/models/x:1",
		"registry.ml.example.com/models",
		"fraud-detector:1.4.2",
	]
	data.main.deny == {registry_message(image)} with input as serving("ml-serving-staging", serving_label, {}, {}, image)
}

test_all_spoofed_registries_denied if {
	every image in [
		"registry.ml.example.com.evil.io/models/fraud-detector:1.4.2",
		"registry.ml.example.com/models-evil/fraud-detector:1.4.2",
		"registry.ml.example.com/modelsx:1.0",
		"evil.io/registry.ml.example.com/models/x:1",
		"fraud-detector:1.4.2",
	] {
		data.main.deny == {registry_message(image)} with input as serving("ml-serving-staging", serving_label, {}, {}, image)
	}
}

test_host_only_registry_entry if {
	hosts := ["registry.example.com"]
	count(data.main.deny) == 0 with input as serving("ml-serving-staging", serving_label, {}, {}, "registry.example.com/models/x:1")
		with data.lib.params.approved_registries as hosts
	every image in ["registry.example.com.evil.io/models/x:1", "registry.example.com:5000/models/x:1", "registry.example.com-mirror/x:1"] {
		count(data.main.deny) == 1 with input as serving("ml-serving-staging", serving_label, {}, {}, image)
			with data.lib.params.approved_registries as hosts
	}
}

test_init_container_image_checked if {
	d := serving("ml-serving-staging", serving_label, {}, {}, model)
	bad := json.patch(d, [{"op": "add", "path": "/spec/template/spec/initContainers", "value": [{
		"name": "download",
		"image": "docker.io/library/busybox:1.36",
		"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
	}]}])
	data.main.deny == {"init container download image docker.io/library/busybox:1.36 is not from an approved model registry (registry.ml.example.com/models, registry.ml.example.com/platform, registry.ml.example.com/infra)"} with input as bad
}
