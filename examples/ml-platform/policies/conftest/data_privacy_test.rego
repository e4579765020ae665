package data_privacy_test

import rego.v1

job(containers, init, volumes) := {
	"apiVersion": "batch/v1",
	"kind": "Job",
	"metadata": {"name": "train"},
	"spec": {"template": {"spec": {"containers": containers, "initContainers": init, "volumes": volumes}}},
}

lim := {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}

c(name, fields) := object.union({"name": name, "image": "registry.ml.example.com/platform/train:1.0.0", "resources": lim}, fields)

test_approved_data_sources_allowed if {
	count(data.main.deny) == 0 with input as job([c("train", {
		"args": ["--train", "s3://ml-datasets-approved/churn/2024", "--features=gs://ml-features/churn/v3"],
		"env": [
			{"name": "EXPORT", "value": "abfss://curated@mldatalake.dfs.core.windows.net/exports"},
			{"name": "ROOT", "value": "s3://ml-datasets-approved"},
		],
	})], [], [])
}

test_look_alike_and_unapproved_sources_denied if {
	d := data.main.deny with input as job(
		[c("train", {"args": ["--train", "s3://ml-datasets-approved-copy/churn"], "env": [{"name": "SOURCES", "value": "gs://ml-features/a,gs://raw-clickstream/pii"}]})],
		[c("fetch", {"command": ["fetch", "s3a://scratch-bucket/tmp"]})],
		[{"name": "data", "csi": {"driver": "s3.csi.aws.com", "volumeAttributes": {"source": "s3://raw-user-events"}}}],
	)
	allowed := "(s3://ml-datasets-approved, gs://ml-features, abfss://curated@mldatalake.dfs.core.windows.net)"
	d == {
		sprintf("container train args uses data source s3://ml-datasets-approved-copy/churn, which is not under an approved prefix %s", [allowed]),
		sprintf("container train env SOURCES uses data source gs://raw-clickstream/pii, which is not under an approved prefix %s", [allowed]),
		sprintf("init container fetch command uses data source s3a://scratch-bucket/tmp, which is not under an approved prefix %s", [allowed]),
		sprintf("volume data uses data source s3://raw-user-events, which is not under an approved prefix %s", [allowed]),
	}
}

test_prefix_with_trailing_slash if {
	count(data.main.deny) == 0 with input as job([c("t", {"args": ["gs://bucket/curated/x"]})], [], [])
		with data.lib.params.approved_data_sources as ["gs://bucket/curated/"]
	count(data.main.deny) == 1 with input as job([c("t", {"args": ["gs://bucket/curated-raw/x"]})], [], [])
		with data.lib.params.approved_data_sources as ["gs://bucket/curated/"]
}

test_credentials_from_secret_allowed if {
	count(data.main.deny) == 0 with input as job([c("server", {"env": [
		{"name": "FEATURE_STORE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "feature-store", "key": "password"}}},
		{"name": "FEATURE_STORE_HOST", "value": "feature-store:6379"},
	]})], [], [])
}

test_literal_and_configmap_credentials_denied if {
	d := data.main.deny with input as job(
		[c("server", {"env": [
			{"name": "FEATURE_STORE_PASSWORD", "value": "hunter2"},
			{"name": "S3_ACCESS_KEY", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "key"}}},
		]})],
		[c("migrate", {"env": [{"name": "api_token", "value": "abc"}]})],
		[],
	)
	d == {
		"container server sets FEATURE_STORE_PASSWORD as a literal value; credentials must come from a Secret with valueFrom.secretKeyRef",
		"container server sets S3_ACCESS_KEY from a ConfigMap; credentials must come from a Secret with valueFrom.secretKeyRef",
		"init container migrate sets api_token as a literal value; credentials must come from a Secret with valueFrom.secretKeyRef",
	}
}
