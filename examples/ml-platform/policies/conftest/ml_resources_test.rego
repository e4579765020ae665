package ml_resources_test

import rego.v1

# A Deployment; resources r for its container, init containers init.
deployment(ns, labels, r, init) := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": "trainer", "namespace": ns, "labels": labels},
	"spec": {"template": {
		"metadata": {"labels": labels},
		"spec": {
			"containers": [{"name": "trainer", "image": "registry.ml.example.com/models/trainer:2.3.0", "resources": r}],
			"initContainers": init,
		},
	}},
}

training := {"ml.mooring.dev/workload": "training"}

res(cpu, mem, gpu) := {"requests": {"cpu": cpu, "memory": mem, "nvidia.com/gpu": gpu}, "limits": {"cpu": cpu, "memory": mem, "nvidia.com/gpu": gpu}}

small := {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}

test_sixteen_gpus_in_ml_training_denied if {
	d := data.main.deny with input as deployment("ml-training", training, res("8", "64Gi", "16"), [])
	d == {"container trainer requests 16 nvidia.com/gpu, more than the 8 allowed for training workloads in ml-training"}
}

test_sixteen_gpus_denied_by_namespace_without_label if {
	d := data.main.deny with input as deployment("ml-training-development", {}, res("8", "64Gi", 16), [])
	d == {"container trainer requests 16 nvidia.com/gpu, more than the 8 allowed for training workloads in ml-training-development"}
}

test_sixteen_gpus_denied_by_label_without_namespace if {
	m := json.remove(deployment("", training, res("8", "64Gi", "16"), []), ["metadata/namespace"])
	d := data.main.deny with input as m
	d == {"container trainer requests 16 nvidia.com/gpu, more than the 8 allowed for training workloads"}
}

test_eight_gpus_allowed if {
	count(data.main.deny) == 0 with input as deployment("ml-training", training, res("8", "64Gi", "8"), [])
}

# Caps of 1 CPU and 1Gi, to compare quantities in the policy itself.
one_cpu_one_gi := {"small": {"namespaces": [], "required_limits": ["cpu", "memory"], "max": {"cpu": "1", "memory": "1Gi"}}}

small_label := {"ml.mooring.dev/workload": "small"}

cpu_mem(cpu, mem) := {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": cpu, "memory": mem}}

test_memory_units_compare_as_quantities if {
	count(data.main.deny) == 0 with input as deployment("x", small_label, cpu_mem("1", "512Mi"), [])
		with data.lib.params.workloads as one_cpu_one_gi
	count(data.main.deny) == 0 with input as deployment("x", small_label, cpu_mem("1", "1024Mi"), [])
		with data.lib.params.workloads as one_cpu_one_gi
	count(data.main.deny) == 0 with input as deployment("x", small_label, cpu_mem("1", "1073741824"), [])
		with data.lib.params.workloads as one_cpu_one_gi
	data.main.deny == {"container trainer requests 2G memory, more than the 1Gi allowed for small workloads in x"} with input as deployment("x", small_label, cpu_mem("1", "2G"), [])
		with data.lib.params.workloads as one_cpu_one_gi
	data.main.deny == {"container trainer requests 1.5Gi memory, more than the 1Gi allowed for small workloads in x"} with input as deployment("x", small_label, cpu_mem("1", "1.5Gi"), [])
		with data.lib.params.workloads as one_cpu_one_gi
	data.main.deny == {"container trainer requests 1073741825 memory, more than the 1Gi allowed for small workloads in x"} with input as deployment("x", small_label, cpu_mem("1", "1073741825"), [])
		with data.lib.params.workloads as one_cpu_one_gi
}

test_cpu_millicores_compare_as_quantities if {
	count(data.main.deny) == 0 with input as deployment("x", small_label, cpu_mem("500m", "1Gi"), [])
		with data.lib.params.workloads as one_cpu_one_gi
	count(data.main.deny) == 0 with input as deployment("x", small_label, cpu_mem("1000m", "1Gi"), [])
		with data.lib.params.workloads as one_cpu_one_gi
	count(data.main.deny) == 0 with input as deployment("x", small_label, cpu_mem(1, "1Gi"), [])
		with data.lib.params.workloads as one_cpu_one_gi
	data.main.deny == {"container trainer requests 1500m cpu, more than the 1 allowed for small workloads in x"} with input as deployment("x", small_label, cpu_mem("1500m", "1Gi"), [])
		with data.lib.params.workloads as one_cpu_one_gi
	data.main.deny == {"container trainer requests 2 cpu, more than the 1 allowed for small workloads in x"} with input as deployment("x", small_label, cpu_mem("2", "1Gi"), [])
		with data.lib.params.workloads as one_cpu_one_gi
}

test_request_above_cap_denied_even_without_limit if {
	r := {"requests": {"cpu": "40", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
	data.main.deny == {
		"container trainer requests 40 cpu, more than the 32 allowed for training workloads in ml-training",
		"container trainer has no cpu limit; training workloads in ml-training must set resources.limits.cpu",
	} with input as deployment("ml-training", training, r, [])
}

test_missing_limit_denied if {
	data.main.deny == {"container trainer has no memory limit; training workloads in ml-training must set resources.limits.memory"} with input as deployment("ml-training", training, {"limits": {"cpu": "1"}}, [])
	data.main.deny == {
		"container trainer has no cpu limit; training workloads in ml-training must set resources.limits.cpu",
		"container trainer has no memory limit; training workloads in ml-training must set resources.limits.memory",
	} with input as deployment("ml-training", training, {}, [])
}

test_init_containers_covered if {
	no_limits := [{"name": "fetch", "image": "registry.ml.example.com/platform/fetch:1.0.0", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]
	data.main.deny == {
		"init container fetch has no cpu limit; training workloads in ml-training must set resources.limits.cpu",
		"init container fetch has no memory limit; training workloads in ml-training must set resources.limits.memory",
	} with input as deployment("ml-training", training, small, no_limits)
	too_big := [{"name": "fetch", "image": "registry.ml.example.com/platform/fetch:1.0.0", "resources": res("1", "300Gi", "0")}]
	data.main.deny == {"init container fetch requests 300Gi memory, more than the 256Gi allowed for training workloads in ml-training"} with input as deployment("ml-training", training, small, too_big)
}

test_ephemeral_containers_covered_but_need_no_limits if {
	p := {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ml-serving-staging"}, "spec": {
		"containers": [{"name": "server", "image": "registry.ml.example.com/models/m:1.0.0", "resources": small}],
		"ephemeralContainers": [
			{"name": "debug", "image": "registry.ml.example.com/platform/debug:1.0.0"},
			{"name": "gpu-debug", "image": "registry.ml.example.com/platform/debug:1.0.0", "resources": res("1", "1Gi", "4")},
		],
	}}
	data.main.deny == {"ephemeral container gpu-debug requests 4 nvidia.com/gpu, more than the 2 allowed for serving workloads in ml-serving-staging"} with input as p
}

test_cronjob_init_container_covered if {
	cj := {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "retrain", "namespace": "ml-training"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {
		"containers": [{"name": "train", "image": "registry.ml.example.com/models/trainer:2.3.0", "resources": small}],
		"initContainers": [{"name": "prep", "image": "registry.ml.example.com/platform/prep:1.0.0", "resources": {"limits": {"cpu": "1"}}}],
	}}}}}}
	data.main.deny == {"init container prep has no memory limit; training workloads in ml-training must set resources.limits.memory"} with input as cj
}

test_gpu_requests_must_equal_limits if {
	r1 := {"requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "4"}, "limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "8"}}
	data.main.deny == {"container trainer requests 4 nvidia.com/gpu but its limit is 8; GPU requests must equal limits"} with input as deployment("ml-training", training, r1, [])
	r2 := {"requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "2"}, "limits": {"cpu": "1", "memory": "1Gi"}}
	data.main.deny == {"container trainer requests 2 nvidia.com/gpu but sets no nvidia.com/gpu limit; GPU requests must equal limits"} with input as deployment("ml-training", training, r2, [])
	count(data.main.deny) == 0 with input as deployment("ml-training", training, res("1", "1Gi", 2), [])
}

test_invalid_quantity_denied if {
	data.main.deny == {"container trainer has an invalid limits quantity lots for memory"} with input as deployment("ml-training", training, {"limits": {"cpu": "1", "memory": "lots"}}, [])
}

test_non_ml_workload_has_no_caps if {
	count(data.main.deny) == 0 with input as deployment("default", {}, {}, [])
}

test_feature_store_caps if {
	fs := {"ml.mooring.dev/workload": "feature-store"}
	count(data.main.deny) == 0 with input as deployment("", fs, res("4000m", "16Gi", "0"), [])
	data.main.deny == {
		"container trainer requests 4500m cpu, more than the 4 allowed for feature-store workloads",
		"container trainer requests 16.5Gi memory, more than the 16Gi allowed for feature-store workloads",
	} with input as json.remove(deployment("", fs, res("4500m", "16.5Gi", "0"), []), ["metadata/namespace"])
}

test_every_workload_kind_covered if {
	pod_spec := {"containers": [{"name": "trainer", "image": "registry.ml.example.com/models/trainer:2.3.0", "resources": res("8", "64Gi", "16")}]}
	msg := "container trainer requests 16 nvidia.com/gpu, more than the 8 allowed for training workloads in ml-training"
	md := {"name": "w", "namespace": "ml-training"}
	every obj in [
		{"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": pod_spec},
		{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": md, "spec": {"template": {"spec": pod_spec}}},
		{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": md, "spec": {"template": {"spec": pod_spec}}},
		{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": md, "spec": {"template": {"spec": pod_spec}}},
		{"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": md, "spec": {"template": {"spec": pod_spec}}},
		{"apiVersion": "batch/v1", "kind": "Job", "metadata": md, "spec": {"template": {"spec": pod_spec}}},
		{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": md, "spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec}}}}},
		{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": md, "spec": {"template": {"spec": pod_spec}}},
	] {
		data.main.deny == {msg} with input as obj
	}
}
