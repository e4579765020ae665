# Parameters of the conftest policies: the same values as the Gatekeeper constraints in
# ../gatekeeper/**/constraints/. Rego rather than a --data file so that `conftest test
# --policy policies/conftest` (and `mooring check`) need no extra flag.
package lib.params

import rego.v1

# Caps per workload type. A manifest's type is its ml.mooring.dev/workload label, else the
# type whose namespace group ("ml-training" matches ml-training and ml-training-*) holds it.
workloads := {
	"training": {
		"namespaces": ["ml-training"],
		"required_limits": ["cpu", "memory"],
		"max": {"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": "8"},
	},
	"serving": {
		"namespaces": ["ml-serving"],
		"required_limits": ["cpu", "memory"],
		"max": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2"},
	},
	"inference-gateway": {
		"namespaces": ["ml-inference"],
		"required_limits": ["cpu", "memory"],
		"max": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2"},
	},
	"feature-store": {
		"namespaces": ["ml-features"],
		"required_limits": ["cpu", "memory"],
		"max": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "0"},
	},
}

gpu_resources := ["nvidia.com/gpu"]

data_source_schemes := ["s3", "s3a", "gs", "abfs", "abfss", "wasb", "wasbs"]

approved_data_sources := [
	"s3://ml-datasets-approved",
	"gs://ml-features",
	"abfss://curated@mldatalake.dfs.core.windows.net",
]

sensitive_env_pattern := `(?i)(password|passwd|secret|token|api_?key|access_?key|credential|private_?key)`

approved_registries := [
	"registry.ml.example.com/models",
	"registry.ml.example.com/platform",
	"registry.ml.example.com/infra",
]

# Annotations production model-serving workloads (ml.mooring.dev/workload=serving) need.
model_annotations := [
	{"key": "models.mooring.dev/approved-by", "allowedRegex": `\S`, "description": "production models need a named approver"},
	{"key": "models.mooring.dev/bias-check", "allowedRegex": `^passed$`, "description": "production models need a passed bias check"},
]
