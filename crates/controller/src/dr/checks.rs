//! Validation checks of one side of a `DisasterRecoveryPlan`: its apps Synced and
//! Healthy, an HTTP GET, a TCP connect, a PromQL query with a condition.
//!
//! A failover is only done when the standby *answers*: the seed's `validate_dr_recovery`
//! asked the apps, the inference endpoint's `/health` through its load balancer, the
//! feature store and Prometheus. The same checks run after a failover (the lead's step
//! machine), in drills, and on demand (`mooring dr validate`, from the CLI process with a
//! [`Context::offline`](crate::Context::offline)). Each check yields a [`CheckResult`]
//! and never an error: a check that cannot even be run (two kinds, an unknown Service, a
//! refused address) is a failed result whose message says why, so one bad check never
//! hides the others.
//!
//! Addresses come from the plan's author, so HTTP and TCP go through the controller's
//! outbound client ([`crate::outbound`]): the admin's `outbound.allow` decides whether a
//! check may reach loopback, link-local or a cluster's API server, as it does for
//! analysis. PromQL goes to the plan's Prometheus (through the outbound client too) or
//! the controller's own, reduced to one number as a RollbackPolicy's rule is, and the
//! condition is evaluated with the analysis expression engine (`result` bound to it).

use crate::outbound::OutboundRequest;
use crate::prometheus::PromClient;
use crate::Context;
use mooring_core::app::{Application, ApplicationDestination, HealthStatusCode, SyncStatusCode};
use mooring_core::dr::{
    AppsCheck, CheckResult, CheckSpec, DisasterRecoveryPlan, HttpCheck, PromCheck, ServiceRef,
    TcpCheck,
};
use mooring_engine::dr::checks::{check_kind, prom_condition, split_host_port, CheckKind};
use mooring_engine::dr::Side;
use mooring_engine::rollback::Measurement;
use mooring_k8s::cluster::ClusterClient;
use mooring_k8s::kube;
use mooring_k8s::resources::application_resource;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How long an HTTP check may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a TCP connect may take.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a PromQL check may take.
pub const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest HTTP answer read (only its first line is reported).
pub const MAX_HTTP_BODY: usize = 64 * 1024;

/// Why a side's cluster or a Service's address could not be found.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(
        "the {side} cluster {cluster:?} of the plan is not registered (see `mooring cluster list`)"
    )]
    Cluster { side: &'static str, cluster: String },
    #[error("Service {namespace}/{name} does not exist on cluster {cluster}")]
    ServiceMissing {
        cluster: String,
        namespace: String,
        name: String,
    },
    #[error("Service {namespace}/{name} on cluster {cluster} has no load-balancer address (is it type LoadBalancer, and provisioned?)")]
    NoAddress {
        cluster: String,
        namespace: String,
        name: String,
    },
    #[error("reading Service {namespace}/{name} on cluster {cluster}: {reason}")]
    Read {
        cluster: String,
        namespace: String,
        name: String,
        reason: String,
    },
}

/// The cluster of `side` (by the plan's cluster name: an Argo CD cluster Secret's `name`,
/// or `in-cluster`).
pub fn side_cluster(
    ctx: &Context,
    plan: &DisasterRecoveryPlan,
    side: Side,
) -> Result<Arc<ClusterClient>, CheckError> {
    let cluster = side_spec(plan, side).cluster.clone();
    ctx.cluster_for(&ApplicationDestination {
        name: Some(cluster.clone()),
        ..Default::default()
    })
    .map_err(|_| CheckError::Cluster {
        side: side.as_str(),
        cluster,
    })
}

fn side_spec(plan: &DisasterRecoveryPlan, side: Side) -> &mooring_core::dr::RegionSpec {
    match side {
        Side::Primary => &plan.spec.primary,
        Side::Standby => &plan.spec.standby,
    }
}

/// A Service's load-balancer address (its first ingress IP, else hostname) and its ports.
pub async fn service_address(
    cluster: &ClusterClient,
    svc: &ServiceRef,
) -> Result<(String, Vec<u16>), CheckError> {
    let key = mooring_core::ResourceKey::new("", "Service", &svc.namespace, &svc.name);
    let got = cluster
        .get("v1", &key)
        .await
        .map_err(|e| CheckError::Read {
            cluster: cluster.name.clone(),
            namespace: svc.namespace.clone(),
            name: svc.name.clone(),
            reason: e.to_string(),
        })?;
    let Some(obj) = got else {
        return Err(CheckError::ServiceMissing {
            cluster: cluster.name.clone(),
            namespace: svc.namespace.clone(),
            name: svc.name.clone(),
        });
    };
    let address = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|i| {
            i.get("ip")
                .or_else(|| i.get("hostname"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .ok_or_else(|| CheckError::NoAddress {
            cluster: cluster.name.clone(),
            namespace: svc.namespace.clone(),
            name: svc.name.clone(),
        })?;
    let ports = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("port").and_then(Value::as_u64))
        .filter_map(|p| u16::try_from(p).ok())
        .collect();
    Ok((address.to_string(), ports))
}

/// Run every validation check of `plan` against `side`, in the plan's order.
pub async fn run(ctx: &Context, plan: &DisasterRecoveryPlan, side: Side) -> Vec<CheckResult> {
    let mut out = Vec::with_capacity(plan.spec.validation.checks.len());
    for check in &plan.spec.validation.checks {
        let (passed, message) = match run_one(ctx, plan, side, check).await {
            Ok(m) => (true, m),
            Err(m) => (false, m),
        };
        out.push(CheckResult {
            name: check.name.clone(),
            passed,
            message,
            checked_at: Some(mooring_core::time::now_rfc3339()),
        });
    }
    out
}

/// One check: `Ok(what passed)` or `Err(why not)`.
async fn run_one(
    ctx: &Context,
    plan: &DisasterRecoveryPlan,
    side: Side,
    check: &CheckSpec,
) -> Result<String, String> {
    match check_kind(check).map_err(|e| e.to_string())? {
        CheckKind::Applications(a) => applications(ctx, plan, side, a).await,
        CheckKind::Http(h) => http(ctx, plan, side, h).await,
        CheckKind::Tcp(t) => tcp(ctx, plan, side, t).await,
        CheckKind::Prometheus(p) => prometheus(ctx, plan, p).await,
    }
}

/// The Applications of the plan's namespace, as read from the management cluster.
async fn plan_apps(ctx: &Context, namespace: &str) -> Result<Vec<Application>, String> {
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        ctx.management.client().clone(),
        namespace,
        &application_resource(),
    );
    let list = api
        .list(&Default::default())
        .await
        .map_err(|e| format!("listing the Applications of {namespace}: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

/// The plan's apps of `side`, by name (pure: `cluster_of` names an app's destination
/// cluster). Pairs give them directly; an ApplicationSet gives the apps it owns (its
/// selector's labels) whose destination is that side's cluster.
pub fn side_app_names<A: std::borrow::Borrow<Application>>(
    plan: &DisasterRecoveryPlan,
    side: Side,
    apps: &[A],
    cluster_of: impl Fn(&Application) -> Option<String>,
) -> Vec<String> {
    let mut names: Vec<String> = plan
        .spec
        .applications
        .pairs
        .iter()
        .map(|p| match side {
            Side::Primary => p.primary.clone(),
            Side::Standby => p.standby.clone(),
        })
        .collect();
    if let Some(set) = &plan.spec.applications.application_set {
        let cluster = &side_spec(plan, side).cluster;
        for app in apps.iter().map(A::borrow) {
            let owned = app
                .metadata
                .get("ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter().any(|r| {
                        r.get("kind").and_then(Value::as_str) == Some("ApplicationSet")
                            && r.get("name").and_then(Value::as_str) == Some(set.name.as_str())
                    })
                });
            let labelled = set.selector.as_ref().is_none_or(|s| {
                s.match_labels.iter().all(|(k, v)| {
                    app.metadata
                        .pointer(&format!(
                            "/labels/{}",
                            k.replace('~', "~0").replace('/', "~1")
                        ))
                        .and_then(Value::as_str)
                        == Some(v.as_str())
                })
            });
            if owned && labelled && cluster_of(app).as_deref() == Some(cluster.as_str()) {
                names.push(app.name().to_string());
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

async fn applications(
    ctx: &Context,
    plan: &DisasterRecoveryPlan,
    side: Side,
    check: &AppsCheck,
) -> Result<String, String> {
    let apps = plan_apps(ctx, plan.namespace()).await?;
    let cluster_of = |a: &Application| {
        ctx.cluster_for(&a.spec.destination)
            .ok()
            .map(|c| c.name.clone())
    };
    let mine = side_app_names(plan, side, &apps, cluster_of);
    let theirs = side_app_names(plan, side.other(), &apps, cluster_of);
    let wanted: Vec<String> = if check.names.is_empty() {
        mine.clone()
    } else {
        let mut wanted = Vec::new();
        for n in &check.names {
            if mine.contains(n) {
                wanted.push(n.clone());
            } else if let Some(p) = plan
                .spec
                .applications
                .pairs
                .iter()
                .find(|p| &p.primary == n || &p.standby == n)
            {
                wanted.push(match side {
                    Side::Primary => p.primary.clone(),
                    Side::Standby => p.standby.clone(),
                });
            } else if theirs.contains(n) {
                // An ApplicationSet's app of the other side: its twin on this side.
                let (from, to) = (
                    &side_spec(plan, side.other()).cluster,
                    &side_spec(plan, side).cluster,
                );
                wanted.push(n.replace(from.as_str(), to));
            } else {
                return Err(format!(
                    "application {n:?} is not in the plan (its {} apps: {})",
                    side.as_str(),
                    if mine.is_empty() {
                        "none".to_string()
                    } else {
                        mine.join(", ")
                    }
                ));
            }
        }
        wanted
    };
    if wanted.is_empty() {
        return Err(format!("the plan has no {} applications", side.as_str()));
    }
    let mut bad = Vec::new();
    for name in &wanted {
        let Some(app) = apps.iter().find(|a| a.name() == name) else {
            bad.push(format!("{name} does not exist"));
            continue;
        };
        match &app.status {
            None => bad.push(format!("{name} has no status yet")),
            Some(st) => {
                let mut wrong = Vec::new();
                if st.sync.status != SyncStatusCode::Synced {
                    wrong.push(format!("{:?}", st.sync.status));
                }
                if st.health.status != HealthStatusCode::Healthy {
                    wrong.push(if st.health.message.is_empty() {
                        format!("{:?}", st.health.status)
                    } else {
                        format!("{:?} ({})", st.health.status, st.health.message)
                    });
                }
                if !wrong.is_empty() {
                    bad.push(format!("{name} is {}", wrong.join(" and ")));
                }
            }
        }
    }
    if bad.is_empty() {
        Ok(format!("{} Synced and Healthy", wanted.join(", ")))
    } else {
        Err(bad.join("; "))
    }
}

/// `host` as a URL authority (IPv6 in brackets).
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A Service's port: the one asked for (which the Service must have), else its first.
fn service_port(svc: &ServiceRef, ports: &[u16], asked: Option<u16>) -> Result<u16, String> {
    match asked {
        Some(p) if ports.contains(&p) => Ok(p),
        Some(p) => Err(format!(
            "Service {}/{} has no port {p} (its ports: {:?})",
            svc.namespace, svc.name, ports
        )),
        None => ports
            .first()
            .copied()
            .ok_or_else(|| format!("Service {}/{} has no ports", svc.namespace, svc.name)),
    }
}

async fn http(
    ctx: &Context,
    plan: &DisasterRecoveryPlan,
    side: Side,
    check: &HttpCheck,
) -> Result<String, String> {
    let url = match (&check.url, &check.service) {
        (Some(url), _) => url.trim().to_string(),
        (None, Some(svc)) => {
            let cluster = side_cluster(ctx, plan, side).map_err(|e| e.to_string())?;
            let (host, ports) = service_address(&cluster, svc)
                .await
                .map_err(|e| e.to_string())?;
            let port = service_port(svc, &ports, check.port)?;
            let path = check.path.as_deref().unwrap_or("/health");
            let sep = if path.starts_with('/') { "" } else { "/" };
            format!("http://{}{sep}{path}", authority(&host, port))
        }
        (None, None) => return Err("http gives neither url nor service".into()),
    };
    let expected = check.expected_status.unwrap_or(200);
    let mut req = OutboundRequest::new(reqwest::Method::GET, &url);
    req.timeout = HTTP_TIMEOUT;
    req.max_body = MAX_HTTP_BODY;
    let resp = ctx
        .outbound
        .send(req)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let body = String::from_utf8_lossy(&resp.body);
    let first = body.lines().map(str::trim).find(|l| !l.is_empty());
    let said = first
        .map(|l| format!(": {}", l.chars().take(200).collect::<String>()))
        .unwrap_or_default();
    if resp.status == expected {
        Ok(format!("GET {url}: HTTP {}{said}", resp.status))
    } else {
        Err(format!(
            "GET {url}: HTTP {} (expected {expected}){said}",
            resp.status
        ))
    }
}

async fn tcp(
    ctx: &Context,
    plan: &DisasterRecoveryPlan,
    side: Side,
    check: &TcpCheck,
) -> Result<String, String> {
    let (host, port) = match (&check.address, &check.service) {
        (Some(a), _) => split_host_port(a.trim())?,
        (None, Some(svc)) => {
            let cluster = side_cluster(ctx, plan, side).map_err(|e| e.to_string())?;
            let (host, ports) = service_address(&cluster, svc)
                .await
                .map_err(|e| e.to_string())?;
            (host, service_port(svc, &ports, check.port)?)
        }
        (None, None) => return Err("tcp gives neither address nor service".into()),
    };
    let shown = authority(&host, port);
    let addrs = ctx
        .outbound
        .admit_tcp(&host, port)
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(TCP_TIMEOUT, tokio::net::TcpStream::connect(&addrs[..])).await {
        Ok(Ok(stream)) => {
            let peer = stream
                .peer_addr()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default();
            Ok(format!("connected to {shown}{peer}"))
        }
        Ok(Err(e)) => Err(format!("connecting to {shown}: {e}")),
        Err(_) => Err(format!(
            "connecting to {shown}: timed out after {TCP_TIMEOUT:?}"
        )),
    }
}

async fn prometheus(
    ctx: &Context,
    plan: &DisasterRecoveryPlan,
    check: &PromCheck,
) -> Result<String, String> {
    let own = ctx.options.prometheus_address.as_deref();
    let address = plan
        .spec
        .prometheus
        .as_ref()
        .map(|p| p.address.as_str())
        .filter(|a| !a.trim().is_empty())
        .or(own)
        .ok_or_else(|| {
            "no Prometheus address: set spec.prometheus.address (or start the controller with one)"
                .to_string()
        })?;
    let client = PromClient::new(address).map_err(|e| e.to_string())?;
    // The controller's own Prometheus is trusted; any other address is the plan's.
    let trusted = own
        .and_then(|a| PromClient::new(a).ok())
        .is_some_and(|t| t.address() == client.address());
    let client = if trusted {
        client
    } else {
        client.through(ctx.outbound.clone())
    };
    let condition = prom_condition(check);
    match crate::rollback::measurement(client.query(&check.query, PROMETHEUS_TIMEOUT).await) {
        Measurement::Value(v) => {
            let value = mooring_engine::analysis::MetricValue::Number(v);
            match mooring_engine::analysis::expr::evaluate_condition(condition, &value) {
                Ok(true) => Ok(format!("{} = {value}: {condition}", check.query)),
                Ok(false) => Err(format!("{} = {value}: not {condition}", check.query)),
                Err(e) => Err(e.to_string()),
            }
        }
        Measurement::NoData(why) => Err(format!("{}: {why}", check.query)),
        Measurement::Error(e) => Err(format!("{}: {e}", check.query)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(name: &str, owner: Option<&str>, cluster: &str, labels: Value) -> Application {
        let mut meta = json!({"name": name, "namespace": "argocd", "labels": labels});
        if let Some(o) = owner {
            meta["ownerReferences"] = json!([{"apiVersion": "argoproj.io/v1alpha1",
                "kind": "ApplicationSet", "name": o, "uid": "u", "controller": true}]);
        }
        serde_json::from_value(json!({
            "metadata": meta,
            "spec": {"project": "default", "destination": {"name": cluster, "namespace": "ml"},
                     "source": {"repoURL": "https://git.example.com/ml.git", "path": "."}},
        }))
        .expect("app")
    }

    #[test]
    fn an_application_sets_apps_belong_to_the_side_of_their_destination() {
        let plan: DisasterRecoveryPlan = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "argocd"},
            "spec": {"primary": {"cluster": "us-west-2"}, "standby": {"cluster": "eu-west-1"},
                     "applications": {
                        "pairs": [{"primary": "a-primary", "standby": "a-dr"}],
                        "applicationSet": {"name": "inference",
                                           "selector": {"matchLabels": {"tier": "serving"}}}}}
        }))
        .expect("plan");
        let serving = json!({"tier": "serving"});
        let apps = vec![
            app(
                "inference-us-west-2",
                Some("inference"),
                "us-west-2",
                serving.clone(),
            ),
            app(
                "inference-eu-west-1",
                Some("inference"),
                "eu-west-1",
                serving.clone(),
            ),
            app(
                "batch-eu-west-1",
                Some("inference"),
                "eu-west-1",
                json!({"tier": "batch"}),
            ),
            app(
                "other-eu-west-1",
                Some("other"),
                "eu-west-1",
                serving.clone(),
            ),
            app("loose-eu-west-1", None, "eu-west-1", serving),
        ];
        let of = |a: &Application| a.spec.destination.name.clone();
        assert_eq!(
            side_app_names(&plan, Side::Standby, &apps, of),
            ["a-dr", "inference-eu-west-1"]
        );
        assert_eq!(
            side_app_names(&plan, Side::Primary, &apps, of),
            ["a-primary", "inference-us-west-2"]
        );
    }

    #[test]
    fn a_service_port_must_be_one_of_its_ports() {
        let svc = ServiceRef {
            namespace: "ml-serving".into(),
            name: "inference-lb".into(),
        };
        assert_eq!(service_port(&svc, &[80, 443], None), Ok(80));
        assert_eq!(service_port(&svc, &[80, 443], Some(443)), Ok(443));
        assert_eq!(
            service_port(&svc, &[80], Some(8080)),
            Err("Service ml-serving/inference-lb has no port 8080 (its ports: [80])".into())
        );
        assert_eq!(authority("::1", 80), "[::1]:80");
        assert_eq!(authority("10.0.0.1", 80), "10.0.0.1:80");
    }
}
