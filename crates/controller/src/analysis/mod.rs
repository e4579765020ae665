//! The AnalysisRun controller: measures every running `AnalysisRun` of a cluster and
//! writes its status, as Argo Rollouts' analysis controller does.
//!
//! One watch over all AnalysisRuns starts one task per unfinished run. The task reads the
//! run, asks the engine ([`mooring_engine::analysis::run`]) what is due, measures with the
//! providers ([`providers`]), records and assesses, writes `status` (through the status
//! subresource when the CRD has one), then sleeps until the next measurement is due or
//! the run changes (a watch event wakes it: `spec.terminate`, a deletion). There is no
//! polling loop over all runs, and the status is the only state: a restarted controller
//! picks every run up where its status says it was.
//!
//! Arguments are resolved on every step (so a rotated Secret is used at the next
//! measurement); `valueFrom.secretKeyRef` reads a Secret in the run's namespace, and a
//! missing Secret or key ends the run in Error with a message naming them. Secret values
//! are masked (`*****`) in every string of the status before it is written, so a token
//! in a URL or header never appears in a message or measurement value.
//! `valueFrom.fieldRef` is resolved by whoever creates the run (the rollout controller).

pub mod providers;

use base64::Engine as _;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use mooring_core::analysis::{
    AnalysisPhase, AnalysisRunSpec, AnalysisRunStatus, Measurement, Metric, SecretKeyRef,
};
use mooring_core::time;
use mooring_core::ResourceKey;
use mooring_engine::analysis::run::{self as engine, Plan};
use mooring_engine::analysis::template::{resolve_args, resolve_metric, Redactor};
use mooring_k8s::cluster::{ClusterClient, K8sError};
use mooring_k8s::kube;
use mooring_k8s::resources::analysis_run_resource;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Analysis controller settings (plain data).
#[derive(Debug, Clone, Default)]
pub struct AnalysisOptions {
    /// Prometheus used when a `prometheus` provider has no `address` (Argo Rollouts'
    /// `ARGO_ROLLOUTS_PROMETHEUS_ADDRESS`).
    pub default_prometheus: Option<String>,
    /// The client for the URLs runs name (web metrics, Prometheus addresses other than
    /// the default one), following the admin's `outbound.allow`.
    pub outbound: crate::outbound::Outbound,
}

/// How long a run task sleeps at most without a due measurement or an event: a safety
/// net against a missed watch event, not a polling interval.
const IDLE_RECHECK: Duration = Duration::from_secs(30);

struct RunTask {
    wake: Arc<Notify>,
    handle: tokio::task::JoinHandle<()>,
}

/// Run tasks live as long as the watch that started them: aborting the handles
/// returned by [`start`] stops every run task too (nothing keeps measuring).
impl Drop for RunTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

struct Ctx {
    cluster: Arc<ClusterClient>,
    options: AnalysisOptions,
}

/// Start the controller: one watch task (run tasks are spawned from it).
pub fn start(
    cluster: Arc<ClusterClient>,
    options: AnalysisOptions,
) -> Vec<tokio::task::JoinHandle<()>> {
    let ctx = Arc::new(Ctx { cluster, options });
    vec![tokio::spawn(watch(ctx))]
}

async fn watch(ctx: Arc<Ctx>) {
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    let api: Api<DynamicObject> =
        Api::all_with(ctx.cluster.client().clone(), &analysis_run_resource());
    let tasks: Mutex<HashMap<(String, String), RunTask>> = Mutex::default();
    let mut stream = kube::runtime::watcher(api, Default::default())
        .default_backoff()
        .boxed();
    while let Some(ev) = stream.next().await {
        use kube::runtime::watcher::Event;
        match ev {
            Ok(Event::Apply(o) | Event::InitApply(o)) => {
                let key = (
                    o.metadata.namespace.clone().unwrap_or_default(),
                    o.metadata.name.clone().unwrap_or_default(),
                );
                let phase = o
                    .data
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let done = matches!(
                    phase.as_str(),
                    "Successful" | "Failed" | "Error" | "Inconclusive"
                );
                let mut map = tasks
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match map.get(&key) {
                    Some(t) if !t.handle.is_finished() => t.wake.notify_one(),
                    _ if done => {
                        map.remove(&key);
                    }
                    _ => {
                        let wake = Arc::new(Notify::new());
                        let handle = tokio::spawn(run_task(
                            ctx.clone(),
                            key.0.clone(),
                            key.1.clone(),
                            wake.clone(),
                        ));
                        map.insert(key, RunTask { wake, handle });
                    }
                }
            }
            Ok(Event::Delete(o)) => {
                let key = (
                    o.metadata.namespace.clone().unwrap_or_default(),
                    o.metadata.name.clone().unwrap_or_default(),
                );
                // Dropping the task aborts it.
                tasks
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&key);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("analysisrun watch: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Errors of one reconcile step (the run is retried; they never end a run by themselves).
#[derive(Debug, thiserror::Error)]
pub enum AnalysisControllerError {
    #[error("reading AnalysisRun {0}: {1}")]
    Read(String, String),
    #[error("writing the status of AnalysisRun {0}: {1}")]
    Write(String, String),
}

async fn run_task(ctx: Arc<Ctx>, ns: String, name: String, wake: Arc<Notify>) {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.cluster.client().clone(), &ns, &analysis_run_resource());
    loop {
        let next = match step(&ctx, &api, &ns, &name).await {
            Ok(Some(next)) => next,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("{e}");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = wake.notified() => {}
        }
    }
}

/// One reconcile step. `Ok(None)`: the run is finished or gone; `Ok(Some(d))`: look again
/// after `d` at the latest.
async fn step(
    ctx: &Ctx,
    api: &Api<DynamicObject>,
    ns: &str,
    name: &str,
) -> Result<Option<Duration>, AnalysisControllerError> {
    let obj = match api.get_opt(name).await {
        Ok(Some(o)) => o,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(AnalysisControllerError::Read(
                format!("{ns}/{name}"),
                e.to_string(),
            ))
        }
    };
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let uid = obj.metadata.uid.clone().unwrap_or_default();
    let original: AnalysisRunStatus = obj
        .data
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    if original.phase.completed() {
        return Ok(None);
    }
    let mut status = original.clone();
    let now = time::now();
    let spec: AnalysisRunSpec =
        match serde_json::from_value(obj.data.get("spec").cloned().unwrap_or(json!({}))) {
            Ok(s) => s,
            Err(e) => {
                engine::fail_run(&mut status, format!("invalid spec: {e}"), now);
                write_status(api, name, &status, &Redactor::default()).await?;
                return Ok(None);
            }
        };

    // Arguments and metrics, resolved for this step.
    let secrets = read_secrets(&ctx.cluster, ns, &spec).await;
    let args = resolve_args(&spec.args, |r| {
        secrets
            .get(&(r.name.clone(), r.key.clone()))
            .cloned()
            .unwrap_or_else(|| Err("not read".into()))
    });
    let args = match args {
        Ok(a) => a,
        Err(e) => {
            engine::fail_run(&mut status, e.to_string(), now);
            write_status(api, name, &status, &Redactor::default()).await?;
            return Ok(None);
        }
    };
    let redactor = Redactor::new(&args);
    let mut resolved = spec.clone();
    resolved.metrics = match spec
        .metrics
        .iter()
        .map(|m| resolve_metric(m, &args))
        .collect::<Result<Vec<Metric>, _>>()
    {
        Ok(m) => m,
        Err(e) => {
            engine::fail_run(&mut status, e.to_string(), now);
            write_status(api, name, &status, &redactor).await?;
            return Ok(None);
        }
    };
    if let Some(bad) = resolved.metrics.iter().find_map(unsupported_provider) {
        engine::fail_run(&mut status, bad, now);
        write_status(api, name, &status, &redactor).await?;
        return Ok(None);
    }

    engine::assess(&resolved, &mut status, now);
    if !status.phase.completed() {
        let plan = engine::plan(&resolved, &status, now);
        execute(ctx, ns, name, &uid, &resolved, &mut status, &plan).await;
        engine::assess(&resolved, &mut status, time::now());
    }
    if status != original {
        write_status(api, name, &status, &redactor).await?;
    }
    if status.phase.completed() {
        tracing::info!(
            run = %format!("{ns}/{name}"),
            phase = %status.phase,
            message = %redactor.redact(status.message.as_deref().unwrap_or_default()),
            "analysis run completed"
        );
        return Ok(None);
    }
    let now = time::now();
    let plan = engine::plan(&resolved, &status, now);
    if !plan.measure.is_empty() || !plan.resume.is_empty() || !plan.terminate.is_empty() {
        return Ok(Some(Duration::ZERO));
    }
    Ok(Some(
        plan.next_at
            .and_then(|t| Duration::try_from(t.duration_since(now)).ok())
            .map(|d| d.min(IDLE_RECHECK))
            .unwrap_or(IDLE_RECHECK),
    ))
}

/// Providers Mooring implements: a metric with none of them ends the run in Error.
fn unsupported_provider(m: &Metric) -> Option<String> {
    let p = &m.provider;
    if p.prometheus.is_some() || p.web.is_some() || p.job.is_some() {
        return None;
    }
    let other: Vec<&str> = p.other.keys().map(String::as_str).collect();
    Some(if other.is_empty() {
        format!("metric {:?} has no provider", m.name)
    } else {
        format!(
            "metric {:?} uses provider {}, which Mooring does not implement (supported: prometheus, web, job)",
            m.name,
            other.join(", ")
        )
    })
}

/// The values of every `secretKeyRef` of the run's arguments (or why not).
///
/// Trust (deliberate, as Argo Rollouts): only the run's own namespace of the cluster it
/// runs in — a `secretKeyRef` has no namespace field — so a run reads only Secrets that
/// whoever may create objects in that namespace could already mount into a Pod there.
async fn read_secrets(
    cluster: &ClusterClient,
    ns: &str,
    spec: &AnalysisRunSpec,
) -> HashMap<(String, String), Result<String, String>> {
    let mut out = HashMap::new();
    for r in spec.args.iter().filter_map(|a| {
        a.value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
    }) {
        let key = ResourceKey::new("", "Secret", ns, &r.name);
        let v = match cluster.get("v1", &key).await {
            Ok(Some(secret)) => secret_value(&secret, r),
            Ok(None) => Err(format!("secret {:?} not found in namespace {ns:?}", r.name)),
            Err(e) => Err(format!("reading secret {:?}: {e}", r.name)),
        };
        out.insert((r.name.clone(), r.key.clone()), v);
    }
    out
}

async fn execute(
    ctx: &Ctx,
    ns: &str,
    run: &str,
    uid: &str,
    spec: &AnalysisRunSpec,
    status: &mut AnalysisRunStatus,
    plan: &Plan,
) {
    for name in &plan.terminate {
        let last = last_measurement(status, name);
        if let Some(job) = last.as_ref().and_then(|m| meta(m, "job-name")) {
            let key = ResourceKey::new("batch", "Job", ns, &job);
            if let Err(e) = ctx
                .cluster
                .delete("batch/v1", &key, Some("background"))
                .await
            {
                tracing::debug!("deleting {key}: {e}");
            }
        }
        let mut m = engine::measurement(
            AnalysisPhase::Successful,
            None,
            Some("Metric Terminated".into()),
            time::now(),
        );
        if let Some(l) = last {
            m.started_at = l.started_at;
            m.metadata = l.metadata;
        }
        engine::record(spec, status, name, m);
    }
    for name in &plan.resume {
        let Some(metric) = spec.metrics.iter().find(|m| &m.name == name) else {
            continue;
        };
        let Some(last) = last_measurement(status, name) else {
            continue;
        };
        let m = resume_job(ctx, ns, metric, last).await;
        engine::record(spec, status, name, m);
    }
    // New measurements of different metrics are independent: take them together, so a
    // slow provider does not delay the others.
    let due: Vec<(&Metric, i64)> = plan
        .measure
        .iter()
        .filter_map(|name| {
            let metric = spec.metrics.iter().find(|m| &m.name == name)?;
            let n = status
                .metric_results
                .iter()
                .find(|r| &r.name == name)
                .map(|r| r.count + r.error + 1)
                .unwrap_or(1);
            Some((metric, n))
        })
        .collect();
    let taken = futures::future::join_all(
        due.iter()
            .map(|(metric, n)| measure(ctx, ns, run, uid, metric, *n)),
    )
    .await;
    for ((metric, _), m) in due.iter().zip(taken) {
        engine::record(spec, status, &metric.name, m);
    }
}

fn last_measurement(status: &AnalysisRunStatus, metric: &str) -> Option<Measurement> {
    status
        .metric_results
        .iter()
        .find(|r| r.name == metric)
        .and_then(|r| r.measurements.last())
        .cloned()
}

fn meta(m: &Measurement, key: &str) -> Option<String> {
    m.metadata.as_ref().and_then(|md| md.get(key)).cloned()
}

/// Take one measurement of `metric`.
async fn measure(
    ctx: &Ctx,
    ns: &str,
    run: &str,
    uid: &str,
    metric: &Metric,
    n: i64,
) -> Measurement {
    let started = time::now();
    let p = &metric.provider;
    let got = if let Some(prom) = &p.prometheus {
        providers::prometheus(
            prom,
            ctx.options.default_prometheus.as_deref(),
            &ctx.options.outbound,
        )
        .await
    } else if let Some(web) = &p.web {
        providers::web(web, &ctx.options.outbound).await
    } else if let Some(job) = &p.job {
        return start_job(ctx, ns, run, uid, metric, job, n, started).await;
    } else {
        Err("no provider".into())
    };
    let now = time::now();
    let mut m = match got {
        Ok(v) => {
            let (phase, message) = engine::assess_measurement(metric, &v.value);
            engine::measurement(phase, Some(v.text), message, now)
        }
        Err(e) => engine::measurement(AnalysisPhase::Error, None, Some(e), now),
    };
    m.started_at = Some(time::format(started));
    m
}

#[allow(clippy::too_many_arguments)]
async fn start_job(
    ctx: &Ctx,
    ns: &str,
    run: &str,
    uid: &str,
    metric: &Metric,
    job: &mooring_core::analysis::JobMetric,
    n: i64,
    started: time::Timestamp,
) -> Measurement {
    let name = providers::job_name(run, &metric.name, n);
    let obj = match providers::job_object(job, &name, ns, run, uid, &metric.name) {
        Ok(o) => o,
        Err(e) => return engine::measurement(AnalysisPhase::Error, None, Some(e), started),
    };
    match ctx.cluster.create(&obj).await {
        Ok(_) => {}
        // Created by a previous step whose status write was lost: carry on with it.
        Err(K8sError::Api { code: 409, .. }) => {}
        Err(e) => {
            return engine::measurement(
                AnalysisPhase::Error,
                None,
                Some(format!("creating job {name}: {e}")),
                started,
            )
        }
    }
    let mut m = engine::measurement(AnalysisPhase::Running, None, None, started);
    m.metadata = Some(
        [
            ("job-name".to_string(), name),
            ("job-namespace".to_string(), ns.to_string()),
        ]
        .into_iter()
        .collect(),
    );
    m.resume_at = Some(time::format(started + Duration::from_secs(1)));
    m
}

async fn resume_job(ctx: &Ctx, ns: &str, metric: &Metric, last: Measurement) -> Measurement {
    let now = time::now();
    let Some(name) = meta(&last, "job-name") else {
        let mut m = engine::measurement(
            AnalysisPhase::Error,
            None,
            Some(format!(
                "metric {:?}: running measurement without a job",
                metric.name
            )),
            now,
        );
        m.started_at = last.started_at;
        return m;
    };
    let key = ResourceKey::new("batch", "Job", ns, &name);
    let (phase, message) = match ctx.cluster.get("batch/v1", &key).await {
        Ok(Some(job)) => match providers::job_outcome(&job) {
            None => {
                let mut m = last;
                m.resume_at = Some(time::format(now + Duration::from_secs(1)));
                return m;
            }
            Some(Ok(())) => (AnalysisPhase::Successful, None),
            Some(Err(msg)) => (AnalysisPhase::Failed, Some(msg)),
        },
        Ok(None) => (AnalysisPhase::Error, Some(format!("job {name} not found"))),
        Err(e) => (
            AnalysisPhase::Error,
            Some(format!("reading job {name}: {e}")),
        ),
    };
    let mut m = engine::measurement(phase, None, message, now);
    m.started_at = last.started_at;
    m.metadata = last.metadata;
    m
}

fn redact_value(v: &mut Value, r: &Redactor) {
    match v {
        Value::String(s) => *s = r.redact(s),
        Value::Array(a) => a.iter_mut().for_each(|x| redact_value(x, r)),
        Value::Object(o) => o.values_mut().for_each(|x| redact_value(x, r)),
        _ => {}
    }
}

/// Write the whole status (secret values masked): through `/status` when the CRD has
/// the subresource, else on the main resource.
async fn write_status(
    api: &Api<DynamicObject>,
    name: &str,
    status: &AnalysisRunStatus,
    redactor: &Redactor,
) -> Result<(), AnalysisControllerError> {
    let mut v = serde_json::to_value(status)
        .map_err(|e| AnalysisControllerError::Write(name.into(), e.to_string()))?;
    redact_value(&mut v, redactor);
    // Merge patch: fields that are now absent must be cleared explicitly.
    if let Value::Object(o) = &mut v {
        for k in ["message", "runSummary", "dryRunSummary", "metricResults"] {
            o.entry(k).or_insert(Value::Null);
        }
    }
    let patch = json!({"status": v});
    let pp = PatchParams::default();
    match api.patch_status(name, &pp, &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => api
            .patch(name, &pp, &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| AnalysisControllerError::Write(name.into(), e.to_string())),
        Err(e) => Err(AnalysisControllerError::Write(name.into(), e.to_string())),
    }
}

/// Decode `data[key]` of a Secret object.
pub fn secret_value(secret: &Value, r: &SecretKeyRef) -> Result<String, String> {
    let raw = secret
        .pointer(&format!(
            "/data/{}",
            r.key.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("secret {:?} has no key {:?}", r.name, r.key))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .map_err(|e| format!("secret {:?} key {:?} is not base64: {e}", r.name, r.key))?;
    String::from_utf8(bytes)
        .map_err(|_| format!("secret {:?} key {:?} is not UTF-8", r.name, r.key))
}
