"""Everyday calls of the official Python `kubernetes` client (what the KServe and Kubeflow
SDKs use) against the embedded cluster named by $KUBECONFIG.

Prints one JSON line per call: {"call": ..., "ok": bool, "detail": ...}; exits 0 even when a
call fails (the Rust test reads the lines and names the failing calls).
"""
import json
import sys
import time
import traceback

from kubernetes import client, config, watch

NS = sys.argv[1] if len(sys.argv) > 1 else "py"
results = []


def call(name):
    def wrap(fn):
        try:
            detail = fn()
            results.append({"call": name, "ok": True, "detail": detail})
        except Exception as e:  # noqa: BLE001 - every failure is reported, none hidden
            results.append({"call": name, "ok": False,
                            "detail": f"{type(e).__name__}: {e}"[:2000],
                            "trace": traceback.format_exc()[-2000:]})
        return fn
    return wrap


config.load_kube_config()
core = client.CoreV1Api()
apps = client.AppsV1Api()
batch = client.BatchV1Api()
custom = client.CustomObjectsApi()
autoscaling = client.AutoscalingV2Api()
ext = client.ApiextensionsV1Api()


@call("version")
def _():
    return client.VersionApi().get_code().git_version


@call("create_namespace")
def _():
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    return NS


@call("list_namespace")
def _():
    names = [n.metadata.name for n in core.list_namespace().items]
    assert NS in names and "default" in names, names
    return len(names)


@call("create_namespaced_deployment")
def _():
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="model", labels={"app": "model"}),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "model"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "model"}),
                spec=client.V1PodSpec(containers=[client.V1Container(
                    name="server", image="kserve/sklearnserver:v0.13.0",
                    ports=[client.V1ContainerPort(container_port=8080)],
                    resources=client.V1ResourceRequirements(requests={"cpu": "100m", "memory": "128Mi"}))]))))
    return apps.create_namespaced_deployment(NS, body).metadata.uid


@call("read_namespaced_deployment_status (until available)")
def _():
    for _ in range(300):
        d = apps.read_namespaced_deployment_status("model", NS)
        if d.status and (d.status.available_replicas or 0) >= 2:
            return d.status.available_replicas
        time.sleep(0.1)
    raise AssertionError(f"not available: {d.status}")


@call("list_namespaced_pod (label selector)")
def _():
    pods = core.list_namespaced_pod(NS, label_selector="app=model").items
    assert len(pods) == 2, [p.metadata.name for p in pods]
    assert all(p.status.phase == "Running" for p in pods)
    return [p.metadata.name for p in pods]


@call("read_namespaced_pod_log")
def _():
    pod = core.list_namespaced_pod(NS, label_selector="app=model").items[0].metadata.name
    log = core.read_namespaced_pod_log(pod, NS, tail_lines=20)
    assert log.strip(), "empty log"
    return log.splitlines()[0][:200]


@call("patch_namespaced_deployment_scale")
def _():
    s = apps.patch_namespaced_deployment_scale("model", NS, {"spec": {"replicas": 3}})
    return s.spec.replicas


@call("watch list_namespaced_pod")
def _():
    w = watch.Watch()
    seen = set()
    for ev in w.stream(core.list_namespaced_pod, NS, label_selector="app=model", timeout_seconds=20):
        seen.add(ev["object"].metadata.name)
        if len(seen) >= 3:
            w.stop()
    assert len(seen) >= 3, seen
    return sorted(seen)


@call("create_namespaced_config_map + read + replace")
def _():
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="features"), data={"a": "1"})
    core.create_namespaced_config_map(NS, cm)
    got = core.read_namespaced_config_map("features", NS)
    got.data["b"] = "2"
    return core.replace_namespaced_config_map("features", NS, got).data


@call("create_namespaced_secret (data bytes)")
def _():
    s = client.V1Secret(metadata=client.V1ObjectMeta(name="creds"), string_data={"token": "s3cr3t"})
    core.create_namespaced_secret(NS, s)
    import base64
    got = core.read_namespaced_secret("creds", NS)
    assert base64.b64decode(got.data["token"]) == b"s3cr3t", got.data
    return "ok"


@call("create_namespaced_job (until complete)")
def _():
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name="train"),
        spec=client.V1JobSpec(backoff_limit=1, template=client.V1PodTemplateSpec(
            spec=client.V1PodSpec(restart_policy="Never", containers=[
                client.V1Container(name="train", image="pytorch/pytorch:2.3.0")]))))
    batch.create_namespaced_job(NS, job)
    for _ in range(300):
        j = batch.read_namespaced_job_status("train", NS)
        if j.status and j.status.succeeded:
            return j.status.succeeded
        time.sleep(0.1)
    raise AssertionError(f"job did not complete: {j.status}")


@call("create_namespaced_horizontal_pod_autoscaler (v2)")
def _():
    hpa = client.V2HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name="model"),
        spec=client.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=client.V2CrossVersionObjectReference(api_version="apps/v1", kind="Deployment", name="model"),
            min_replicas=2, max_replicas=4,
            metrics=[client.V2MetricSpec(type="Resource", resource=client.V2ResourceMetricSource(
                name="cpu", target=client.V2MetricTarget(type="Utilization", average_utilization=80)))]))
    return autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, hpa).metadata.name


@call("CustomObjectsApi create + get + list (InferenceService CRD)")
def _():
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "inferenceservices.serving.kserve.io"},
        "spec": {"group": "serving.kserve.io", "scope": "Namespaced",
                 "names": {"plural": "inferenceservices", "singular": "inferenceservice",
                           "kind": "InferenceService", "shortNames": ["isvc"]},
                 "versions": [{"name": "v1beta1", "served": True, "storage": True,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object",
                                          "x-kubernetes-preserve-unknown-fields": True}}}]}}
    ext.create_custom_resource_definition(crd)
    for _ in range(100):
        try:
            custom.list_namespaced_custom_object("serving.kserve.io", "v1beta1", NS, "inferenceservices")
            break
        except client.exceptions.ApiException:
            time.sleep(0.1)
    isvc = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "sklearn-iris"},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                             "storageUri": "gs://kfserving-examples/models/sklearn/1.0/model"}}}}
    custom.create_namespaced_custom_object("serving.kserve.io", "v1beta1", NS, "inferenceservices", isvc)
    got = custom.get_namespaced_custom_object("serving.kserve.io", "v1beta1", NS, "inferenceservices", "sklearn-iris")
    assert got["spec"]["predictor"]["model"]["modelFormat"]["name"] == "sklearn"
    items = custom.list_namespaced_custom_object("serving.kserve.io", "v1beta1", NS, "inferenceservices")["items"]
    return len(items)


@call("list_namespaced_event")
def _():
    evs = core.list_namespaced_event(NS).items
    reasons = sorted({e.reason for e in evs})
    assert "ScalingReplicaSet" in reasons or "Scheduled" in reasons, reasons
    return reasons


@call("delete_namespaced_deployment (foreground)")
def _():
    apps.delete_namespaced_deployment("model", NS, propagation_policy="Foreground")
    for _ in range(300):
        try:
            apps.read_namespaced_deployment("model", NS)
        except client.exceptions.ApiException as e:
            if e.status == 404:
                return "gone"
            raise
        time.sleep(0.1)
    raise AssertionError("deployment not deleted")


for r in results:
    print(json.dumps(r))
