//! Registering what an Argo CD admin would `kubectl apply` (AppProjects, ApplicationSets,
//! Applications, Mooring's DisasterRecoveryPlans) with the namespace rules the control
//! plane reads them by: shared by `mooring up` (the repository's top level and `dr/`) and
//! the benchmarks that stand up the example.

use mooring_k8s::kube;
use serde_json::Value;

/// Register one object with server-side apply: in its own namespace, or the control
/// plane's when it names none. Returns `namespace/name`, or why it was skipped.
pub async fn register(
    client: &kube::Client,
    control_plane: &mooring_engine::project::ControlPlane,
    obj: &Value,
) -> Result<String, String> {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or("it has no metadata.name")?;
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(&control_plane.namespace);
    let resource = match kind {
        "AppProject" => {
            if ns != control_plane.namespace {
                return Err(format!(
                    "AppProjects are read only from the control-plane namespace {:?}, not {ns:?}",
                    control_plane.namespace
                ));
            }
            mooring_k8s::resources::appproject_resource()
        }
        "ApplicationSet" | "Application" => {
            if !control_plane.namespace_enabled(ns) {
                return Err(format!(
                    "it would be ignored: {} (start with --application-namespaces)",
                    mooring_controller::ignored_reason(control_plane, ns)
                ));
            }
            if kind == "Application" {
                mooring_k8s::resources::application_resource()
            } else {
                mooring_k8s::resources::applicationset_resource()
            }
        }
        "DisasterRecoveryPlan" => {
            if ns != control_plane.namespace {
                return Err(format!(
                    "DisasterRecoveryPlans are read only from the control-plane namespace {:?}, not {ns:?}",
                    control_plane.namespace
                ));
            }
            mooring_k8s::resources::disaster_recovery_plan_resource()
        }
        other => return Err(format!("{other} is not registered by up")),
    };
    ensure_namespace(client, ns).await?;
    let mut obj = obj.clone();
    obj["metadata"]["namespace"] = ns.into();
    kube::api::Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), ns, &resource)
        .patch(
            name,
            &kube::api::PatchParams::apply("mooring-up").force(),
            &kube::api::Patch::Apply(&obj),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("{ns}/{name}"))
}

/// Create `ns` when it does not exist (an allowed application namespace, say).
async fn ensure_namespace(client: &kube::Client, ns: &str) -> Result<(), String> {
    use mooring_k8s::k8s_openapi::api::core::v1::Namespace;
    let api: kube::api::Api<Namespace> = kube::api::Api::all(client.clone());
    if api.get_opt(ns).await.map_err(|e| e.to_string())?.is_some() {
        return Ok(());
    }
    let obj: Namespace = serde_json::from_value(
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .map_err(|e| e.to_string())?;
    match api.create(&Default::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(format!("creating namespace {ns}: {e}")),
    }
}
