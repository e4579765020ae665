//! A Rollout with what it owns, read from its cluster: its ReplicaSets, their Pods and its
//! AnalysisRuns. One reader for `mooring rollout get` and the API's rollout views, so the
//! CLI and the web UI show the same tree ([`RolloutView`]).

use mooring_core::rollout::POD_TEMPLATE_HASH_LABEL;
use mooring_engine::rollout::status::{owned_by, RolloutView};
use mooring_k8s::api_resource as resource;
use mooring_k8s::kube::{
    self,
    api::{Api, DynamicObject, ListParams},
    core::ApiResource,
};
use serde_json::Value;

/// A rollout and what it owns, as read from the cluster.
#[derive(Debug, Clone)]
pub struct RolloutTree {
    pub rollout: Value,
    pub replica_sets: Vec<Value>,
    /// The pods of the namespace with a pod template hash; the view keeps those its
    /// ReplicaSets own.
    pub pods: Vec<Value>,
    /// Newest last, as listed.
    pub analysis_runs: Vec<Value>,
}

impl RolloutTree {
    /// Read what `rollout` (as read from the cluster of `client`) owns. A kind the cluster
    /// does not serve (no AnalysisRun CRD) reads as none.
    pub async fn read(client: &kube::Client, rollout: Value) -> Result<RolloutTree, kube::Error> {
        let str_at = |p: &str| {
            rollout
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (uid, ns) = (str_at("/metadata/uid"), str_at("/metadata/namespace"));
        // Argo labels every ReplicaSet and pod of a Rollout with its template hash.
        let with_hash = ListParams::default().labels(POD_TEMPLATE_HASH_LABEL);
        let rs = resource("apps", "v1", "ReplicaSet", "replicasets");
        let replica_sets = owned(client, &ns, &rs, &uid, &with_hash).await?;
        let runs = mooring_k8s::resources::analysis_run_resource();
        let analysis_runs = owned(client, &ns, &runs, &uid, &ListParams::default()).await?;
        let pods = list(client, &ns, &resource("", "v1", "Pod", "pods"), &with_hash).await?;
        Ok(RolloutTree {
            rollout,
            replica_sets,
            pods,
            analysis_runs,
        })
    }

    /// The plugin's view of the tree.
    pub fn view(&self) -> RolloutView {
        RolloutView::new(
            &self.rollout,
            &self.replica_sets,
            &self.pods,
            &self.analysis_runs,
        )
    }
}

/// Objects of `res` in `ns` (none when the kind is not served).
async fn list(
    client: &kube::Client,
    ns: &str,
    res: &ApiResource,
    params: &ListParams,
) -> Result<Vec<Value>, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, res);
    match api.list(params).await {
        Ok(l) => Ok(l
            .items
            .into_iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(vec![]),
        Err(e) => Err(e),
    }
}

/// Objects of `res` in `ns` owned by `owner_uid`.
async fn owned(
    client: &kube::Client,
    ns: &str,
    res: &ApiResource,
    owner_uid: &str,
    params: &ListParams,
) -> Result<Vec<Value>, kube::Error> {
    Ok(list(client, ns, res, params)
        .await?
        .into_iter()
        .filter(|o| owned_by(o, owner_uid))
        .collect())
}
