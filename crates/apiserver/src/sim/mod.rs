//! Workload simulation, kwok style: the controllers and the kubelet of a cluster with no
//! containers.
//!
//! The embedded cluster has no container runtime, yet Mooring's health checks, rollouts
//! and analyses need workloads that behave like real ones: Deployments that roll out,
//! Pods that turn Ready, Jobs that complete, and failures on demand. This module runs the
//! controllers that produce exactly the `status` Kubernetes would write, through the same
//! in-process [`Api`] the HTTP layer uses (so every write is an ordinary, watchable
//! update with a resourceVersion):
//!
//! | controller | does |
//! |---|---|
//! | [`pods`] | scheduler + kubelet: `spec.nodeName` (least loaded Ready node), then Pending → Running → Ready, or Succeeded/Failed for `restartPolicy: Never/OnFailure` |
//! | [`replicaset`] | `{rs}-{5 chars}` Pods from the template, scale up/down (not-ready Pods go first), status |
//! | [`deployment`] | ReplicaSet per template (`{deploy}-{pod-template-hash}`), RollingUpdate (maxSurge / maxUnavailable) and Recreate, `paused`, revisions, history cleanup, conditions `Available` / `Progressing` with Kubernetes' reasons |
//! | [`statefulset`] | `{sts}-{i}` Pods one at a time (OrderedReady) or all at once (Parallel), PVCs `{tmpl}-{sts}-{i}`, rolling update from the highest ordinal (honouring `partition`) |
//! | [`daemonset`] | one Pod per Ready node, rolling update with `maxUnavailable` |
//! | [`job`] | parallelism / completions, `backoffLimit`, conditions Complete / SuccessCriteriaMet and Failed / FailureTarget |
//! | [`cronjob`] | Jobs `{cronjob}-{minutes since epoch}` on the schedule (five fields, macros, `spec.timeZone`) of the simulated clock ([`SimClock`]), `concurrencyPolicy`, `startingDeadlineSeconds`, `suspend`, history limits, `status.active` / `lastScheduleTime` / `lastSuccessfulTime` |
//! | [`hpa`] | HorizontalPodAutoscalers scale any target with a scale subresource on simulated CPU / memory ([`usage`]) and the `http_requests_per_second` Pods metric, with Kubernetes' algorithm (tolerance, stabilisation windows, rate policies) and conditions |
//! | [`endpoints`] | an Endpoints object and a `discovery.k8s.io/v1` EndpointSlice per Service with a selector, with ready and not-ready Pod addresses |
//! | [`pvc`] | PersistentVolumeClaims become Bound |
//! | [`loadbalancer`] | LoadBalancer Services and Ingresses get an address (`status.loadBalancer.ingress`) from [`SimOptions::load_balancer`], as MetalLB / cloud-provider-kind with ingress-nginx do on kind; opt out with `sim.mooring.dev/load-balancer: pending` |
//! | [`listeners`] | those addresses answer: HTTP 200 / 503 by the Service's ready endpoints, plain TCP accepted or refused, Ingress routing by Host and path; requests count in the Pods' metrics ([`traffic`]) |
//!
//!
//! The kubelet also writes container logs ([`logs`], served as `pods/{name}/log`), and
//! every controller records Events through one [`events::Recorder`] (`ctx.recorder`):
//!
//! | reported by | Events |
//! |---|---|
//! | `default-scheduler` | `Scheduled` "Successfully assigned ns/pod to node", Warning `FailedScheduling` |
//! | `kubelet` (source host: the node) | `Pulling`, `Pulled` (once per node and image, then "already present on machine"), `Created`, `Started`, `Killing` (Pod deleted), Warning `BackOff` (crash loop), `Failed` / `BackOff` (image pull), Warning `Unhealthy` (never-ready) |
//! | `replicaset-controller`, `daemonset-controller`, `job-controller` | `SuccessfulCreate` "Created pod: x", `SuccessfulDelete` "Deleted pod: x", Warning `FailedCreate` / `FailedDelete` |
//! | `statefulset-controller` | `SuccessfulCreate` "create Pod web-0 in StatefulSet web successful", `SuccessfulDelete` |
//! | `deployment-controller` | `ScalingReplicaSet` "Scaled up replica set web-abc to 2 from 0" / "Scaled down …" |
//! | `job-controller` | `Completed` "Job completed", Warning `BackoffLimitExceeded` |
//! | `cronjob-controller` | `SuccessfulCreate` "Created job x", `SawCompletedJob`, `SuccessfulDelete` "Deleted job x", `JobAlreadyActive`, Warning `MissSchedule`, `TooManyMissedTimes`, `UnparseableSchedule`, `UnknownTimeZone`, `FailedCreate` |
//! | `horizontal-pod-autoscaler` | `SuccessfulRescale` "New size: 4; reason: cpu resource utilization (percentage of request) above target", Warning `FailedGetScale`, `FailedRescale`, `FailedGetResourceMetric`, `FailedGetPodsMetric`, … |
//! | [`loadbalancer`] | `IPAllocated`, Warning `AllocationFailed`, `ListenFailed`, `InvalidAnnotation` |
//!
//! A new controller records with `ctx.recorder.normal("cronjob-controller", &obj,
//! "SuccessfulCreate", &msg)` (or `warning`, or `record` with a [`events::Source`]);
//! repeats of the same Event are aggregated (count, lastTimestamp) as client-go does.
//!
//! Each controller is a tokio task driven by the store's event stream (plus timers for
//! time-based transitions such as "the container is up after one simulated second"), so an
//! idle cluster does no work at all. A lagged event stream triggers a full resync.
//!
//! # Time
//!
//! [`SimOptions::speed`] multiplies simulated time: at `1.0` a Pod is Running one second
//! after creation and Ready half a second later; at `20.0` it is Ready after ~75 ms.
//! Every duration the simulation honours is divided by the speed, including
//! `progressDeadlineSeconds`, `minReadySeconds`, readiness `initialDelaySeconds`, the
//! crash-loop back-off, the run time of Job Pods and the HPA's sync period (15 s),
//! stabilisation windows and policy periods.
//!
//! Times of day run on [`SimClock`]: the wall clock when the simulation started, then
//! `speed` times faster. CronJob schedules use it, so an every-minute CronJob at speed 20
//! starts a Job every 3 real seconds; its `lastScheduleTime` and the Jobs' scheduled
//! timestamps are simulated times (ahead of the wall clock at speeds above 1).
//!
//! # Failure injection
//!
//! Set on the Pod template's annotations (or on a Pod):
//!
//! | annotation `sim.mooring.dev/fail` | effect |
//! |---|---|
//! | `crashloop` | containers start, exit with code 1 and wait in `CrashLoopBackOff` with a growing `restartCount` (back-off 10 s, 20 s, … 300 s, scaled); never Ready. In a Pod with `restartPolicy: Never/OnFailure` it behaves like `job` |
//! | `never-ready` | Running, containers never Ready (`Ready=False`, reason `ContainersNotReady`) |
//! | `image-pull` | Pending, containers waiting in `ImagePullBackOff` |
//! | `job` | Job Pods run, then fail (exit code 1, phase Failed), so the Job hits `backoffLimit` |
//!
//! An image tag ending in `:crashloop`, `:never-ready` or `:image-pull` does the same for
//! that container, so a change of the manifest alone (a "bad release") can produce a
//! Degraded workload. Other annotations: `sim.mooring.dev/run-seconds` (how long a Job
//! Pod runs, default 2), the metrics annotations described in [`metrics`] and the usage
//! annotations of [`usage`]: `sim.mooring.dev/cpu-utilization` /
//! `sim.mooring.dev/memory-utilization` (percent of the requests) are how a test raises
//! the load an HPA sees — `kubectl top` (the `metrics.k8s.io` API,
//! [`crate::metrics_api`]) shows the same figures.
//!
//! # Deliberate simplifications
//!
//! Pods are deleted at once (no graceful termination), there are no ControllerRevision
//! objects and no PersistentVolume objects. The HPA has no source for `Object`,
//! `External` or `ContainerResource` metrics nor for Pods metrics other than
//! `http_requests_per_second` (it reports `ScalingActive=False` saying so), ignores the
//! CPU initialisation period (unready Pods simply count as missing), and forgets its
//! recommendation history when the cluster restarts. CronJobs do not adopt orphaned Jobs,
//! and a restarted cluster restarts the simulated clock at the wall clock. Endpoints and
//! EndpointSlices carry an owner reference to their Service so that garbage collection
//! removes them (Kubernetes' controllers delete them themselves); a Service has one
//! EndpointSlice whatever its size (Kubernetes splits at 100 endpoints). Events are
//! recorded once per transition the kubelet observes: a never-ready container's
//! `Unhealthy` is not repeated every probe period, and client-go's spam filter and
//! "(combined from similar events)" aggregation are not simulated (identical Events are
//! counted). Container logs are kept in memory only (they start afresh after a restart of
//! the cluster, as the Pods' counters do), and only for containers the kubelet saw start.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod hpa;
pub mod job;
pub mod lifecycle;
pub mod listeners;
pub mod loadbalancer;
pub mod logs;
pub mod metrics;
pub mod pods;
pub mod pvc;
pub mod replicaset;
pub mod statefulset;
pub mod traffic;
pub mod usage;
mod util;

use crate::api::{Api, WriteOptions};
use crate::error::ApiError;
use crate::registry::ResourceType;
use crate::store::{Event, ObjKey};
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;

pub use loadbalancer::{AddressRange, LoadBalancerAddresses, LoadBalancerConfigError};
pub use metrics::{metrics_handler, metrics_handler_at, metrics_handler_with, MetricsHandler};
pub use traffic::Traffic;

/// How the simulation behaves.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Simulated nodes (`mooring-node-0` …), created at startup when missing.
    pub nodes: usize,
    /// Time multiplier: 1.0 is realistic-ish, tests use 20.0 or more.
    pub speed: f64,
    /// Whether `start` runs the controllers at all (a cluster used only as an API
    /// server, e.g. for benchmarks, can turn them off).
    pub enabled: bool,
    /// Where LoadBalancer Services and Ingresses get their address from (default: the
    /// loopback range `127.0.100.0/24`; see [`loadbalancer`]).
    pub load_balancer: LoadBalancerAddresses,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            nodes: 3,
            speed: 1.0,
            enabled: true,
            load_balancer: LoadBalancerAddresses::default(),
        }
    }
}

impl SimOptions {
    /// A simulated duration in seconds, as real time.
    pub fn scaled(&self, sim_seconds: f64) -> Duration {
        let speed = if self.speed.is_finite() && self.speed > 0.0 {
            self.speed
        } else {
            1.0
        };
        Duration::from_secs_f64((sim_seconds / speed).clamp(0.0, 1.0e9))
    }

    /// Real elapsed time as simulated seconds.
    pub fn sim_seconds(&self, real: Duration) -> f64 {
        let speed = if self.speed.is_finite() && self.speed > 0.0 {
            self.speed
        } else {
            1.0
        };
        real.as_secs_f64() * speed
    }
}

/// The simulation's clock: wall-clock time at start, then running [`SimOptions::speed`]
/// times faster. Time-of-day schedules (CronJobs) run on it, so that an "every minute"
/// CronJob at speed 20 fires every 3 real seconds; at speed 1 it is the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    real: Instant,
    wall: std::time::SystemTime,
    speed: f64,
}

impl SimClock {
    pub fn new(opts: &SimOptions) -> Self {
        SimClock {
            real: Instant::now(),
            wall: std::time::SystemTime::now(),
            speed: if opts.speed.is_finite() && opts.speed > 0.0 {
                opts.speed
            } else {
                1.0
            },
        }
    }

    /// The current simulated time.
    pub fn now(&self) -> std::time::SystemTime {
        let elapsed = self.real.elapsed().as_secs_f64() * self.speed;
        self.wall + Duration::from_secs_f64(elapsed.clamp(0.0, 1.0e12))
    }
}

/// What every controller needs: the API, the options and the resource types it writes.
pub(crate) struct Ctx {
    pub api: Api,
    pub opts: SimOptions,
    pub wo: WriteOptions,
    pub pods: Arc<ResourceType>,
    pub replicasets: Arc<ResourceType>,
    pub deployments: Arc<ResourceType>,
    pub statefulsets: Arc<ResourceType>,
    pub daemonsets: Arc<ResourceType>,
    pub jobs: Arc<ResourceType>,
    pub endpoints: Arc<ResourceType>,
    pub pvcs: Arc<ResourceType>,
    pub services: Arc<ResourceType>,
    pub ingresses: Arc<ResourceType>,
    pub cronjobs: Arc<ResourceType>,
    /// The simulated time of day (CronJob schedules).
    pub clock: SimClock,
    /// Where every simulated controller records its Events ([`events`]).
    pub recorder: events::Recorder,
    /// Container logs the kubelet writes ([`logs`]).
    pub logs: logs::PodLogs,
}

impl Ctx {
    fn new(api: Api, opts: SimOptions, logs: logs::PodLogs) -> Result<Ctx, ApiError> {
        let get = |g: &str, p: &str| {
            api.registry
                .get(g, "v1", p)
                .ok_or_else(|| ApiError::Internal(format!("{g}/v1 {p} are not registered")))
        };
        Ok(Ctx {
            pods: get("", "pods")?,
            replicasets: get("apps", "replicasets")?,
            deployments: get("apps", "deployments")?,
            statefulsets: get("apps", "statefulsets")?,
            daemonsets: get("apps", "daemonsets")?,
            jobs: get("batch", "jobs")?,
            endpoints: get("", "endpoints")?,
            pvcs: get("", "persistentvolumeclaims")?,
            services: get("", "services")?,
            ingresses: get("networking.k8s.io", "ingresses")?,
            cronjobs: get("batch", "cronjobs")?,
            clock: SimClock::new(&opts),
            recorder: events::Recorder::new(api.clone())?,
            logs,
            wo: WriteOptions {
                field_manager: Some("kube-controller-manager".into()),
                ..Default::default()
            },
            api,
            opts,
        })
    }
}

/// Storage keys of the resources the controllers follow.
pub(crate) mod res {
    pub const PODS: &str = "/pods";
    pub const NODES: &str = "/nodes";
    pub const SERVICES: &str = "/services";
    pub const INGRESSES: &str = "networking.k8s.io/ingresses";
    pub const ENDPOINTS: &str = "/endpoints";
    pub const PVCS: &str = "/persistentvolumeclaims";
    pub const REPLICASETS: &str = "apps/replicasets";
    pub const DEPLOYMENTS: &str = "apps/deployments";
    pub const STATEFULSETS: &str = "apps/statefulsets";
    pub const DAEMONSETS: &str = "apps/daemonsets";
    pub const JOBS: &str = "batch/jobs";
    pub const CRONJOBS: &str = "batch/cronjobs";
}

/// An event-driven controller: which objects an event concerns, and how to converge one.
pub(crate) trait Controller: Send + 'static {
    fn name(&self) -> &'static str;
    /// Keys to reconcile because of this event.
    fn keys_for(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<ObjKey>);
    /// Every key (startup and after a lagged event stream).
    fn all_keys(&mut self, ctx: &Ctx) -> Vec<ObjKey>;
    /// Converge one object; `Some(d)` asks to be called again after `d` (a time-based
    /// transition is due), even if nothing changes.
    fn reconcile(&mut self, ctx: &Ctx, key: &ObjKey) -> Result<Option<Duration>, ApiError>;
}

/// Start the simulation controllers.
pub fn start(api: Api, opts: SimOptions) -> Vec<tokio::task::JoinHandle<()>> {
    start_with(api, opts, logs::PodLogs::default())
}

/// Start the simulation controllers; the kubelet writes container logs into `logs`
/// (which the HTTP layer serves as `pods/{name}/log`).
pub fn start_with(
    api: Api,
    opts: SimOptions,
    logs: logs::PodLogs,
) -> Vec<tokio::task::JoinHandle<()>> {
    if !opts.enabled {
        return vec![];
    }
    let ctx = match Ctx::new(api, opts, logs) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!("workload simulation disabled: {e}");
            return vec![];
        }
    };
    vec![
        tokio::spawn(run(ctx.clone(), pods::PodController::default())),
        tokio::spawn(run(ctx.clone(), replicaset::ReplicaSetController)),
        tokio::spawn(run(
            ctx.clone(),
            deployment::DeploymentController::default(),
        )),
        tokio::spawn(run(ctx.clone(), statefulset::StatefulSetController)),
        tokio::spawn(run(ctx.clone(), daemonset::DaemonSetController)),
        tokio::spawn(run(ctx.clone(), job::JobController)),
        tokio::spawn(run(ctx.clone(), endpoints::EndpointsController)),
        tokio::spawn(run(
            ctx.clone(),
            loadbalancer::LoadBalancerController::new(&ctx.opts.load_balancer),
        )),
        tokio::spawn(run(ctx.clone(), hpa::HpaController::default())),
        tokio::spawn(run(ctx.clone(), cronjob::CronJobController)),
        tokio::spawn(run(ctx, pvc::PvcController)),
    ]
}

/// The loop shared by all controllers: coalesce events into a set of dirty keys,
/// reconcile them, and sleep until the next event or the next due timer.
async fn run<C: Controller>(ctx: Arc<Ctx>, mut c: C) {
    let Ok((_, mut rx)) = ctx.api.store.watch_from(ctx.api.store.revision()) else {
        return;
    };
    let mut dirty: BTreeSet<ObjKey> = c.all_keys(&ctx).into_iter().collect();
    let mut timers = Timers::default();
    let mut buf = Vec::new();
    loop {
        for (i, key) in std::mem::take(&mut dirty).into_iter().enumerate() {
            // Reconciles are synchronous; let other tasks run during a large batch.
            if i % 64 == 63 {
                tokio::task::yield_now().await;
            }
            match c.reconcile(&ctx, &key) {
                Ok(Some(d)) => timers.schedule(key, Instant::now() + d),
                Ok(None) => {}
                // Someone else wrote first (their event will bring us back), or a
                // create raced: look again shortly.
                Err(ApiError::Conflict { .. } | ApiError::AlreadyExists { .. }) => {
                    timers.schedule(key, Instant::now() + Duration::from_millis(20))
                }
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!("simulation {}: {key}: {e}", c.name());
                    timers.schedule(key, Instant::now() + Duration::from_secs(1));
                }
            }
        }
        let next = timers.next();
        let mut resync = false;
        tokio::select! {
            r = rx.recv() => match r {
                Ok(ev) => {
                    c.keys_for(&ctx, &ev, &mut buf);
                    // Take whatever else is already queued, so a burst is one batch.
                    loop {
                        match rx.try_recv() {
                            Ok(ev) => c.keys_for(&ctx, &ev, &mut buf),
                            Err(TryRecvError::Lagged(_)) => resync = true,
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => resync = true,
                Err(RecvError::Closed) => return,
            },
            _ = sleep_until(next) => {}
        }
        if resync {
            dirty.extend(c.all_keys(&ctx));
        }
        dirty.extend(buf.drain(..));
        dirty.extend(timers.due(Instant::now()));
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Per-key wake-up times (the earliest request wins).
#[derive(Default)]
struct Timers {
    by_time: BTreeSet<(Instant, ObjKey)>,
    by_key: HashMap<ObjKey, Instant>,
}

impl Timers {
    fn schedule(&mut self, key: ObjKey, at: Instant) {
        if let Some(old) = self.by_key.get(&key) {
            if *old <= at {
                return;
            }
            self.by_time.remove(&(*old, key.clone()));
        }
        self.by_key.insert(key.clone(), at);
        self.by_time.insert((at, key));
    }

    fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(t, _)| *t)
    }

    fn due(&mut self, now: Instant) -> Vec<ObjKey> {
        let mut out = Vec::new();
        while let Some((t, _)) = self.by_time.first() {
            if *t > now {
                break;
            }
            if let Some((_, k)) = self.by_time.pop_first() {
                self.by_key.remove(&k);
                out.push(k);
            }
        }
        out
    }
}

/// Name of the `i`th simulated node.
pub fn node_name(i: usize) -> String {
    format!("mooring-node-{i}")
}

/// Create the simulated nodes when missing (Ready, 8 CPUs, 32Gi, 110 pods each).
pub fn bootstrap_nodes(api: &Api, opts: &SimOptions) -> Result<(), ApiError> {
    let rt = api
        .registry
        .get("", "v1", "nodes")
        .ok_or_else(|| ApiError::Internal("nodes are not registered".into()))?;
    let wo = WriteOptions {
        field_manager: Some("kubelet".into()),
        ..Default::default()
    };
    for i in 0..opts.nodes {
        let name = node_name(i);
        if api.get(&rt, None, &name).is_ok() {
            continue;
        }
        let created = api.create(
            &rt,
            None,
            json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {
                        "beta.kubernetes.io/arch": "amd64",
                        "beta.kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "node-role.kubernetes.io/agent": "",
                        "type": "kwok",
                    },
                    "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
                },
                "spec": {"podCIDR": format!("10.244.{i}.0/24"), "podCIDRs": [format!("10.244.{i}.0/24")]},
            }),
            &wo,
        )?;
        let mut node = created;
        let now = mooring_core::time::now_rfc3339();
        let cond = |t: &str, s: &str, reason: &str, msg: &str| {
            json!({"type": t, "status": s, "reason": reason, "message": msg,
                   "lastHeartbeatTime": now, "lastTransitionTime": now})
        };
        let resources =
            json!({"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"});
        node["status"] = json!({
            "capacity": resources,
            "allocatable": resources,
            "phase": "Running",
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": util::node_ip(i)},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "",
                "containerRuntimeVersion": "kwok-v0.6.0",
                "kernelVersion": "",
                "kubeProxyVersion": "v1.31.0",
                "kubeletVersion": "v1.31.0",
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "Mooring simulated node",
                "systemUUID": "",
            },
        });
        api.update(&rt, None, &name, node, crate::api::Subresource::Status, &wo)?;
    }
    Ok(())
}
