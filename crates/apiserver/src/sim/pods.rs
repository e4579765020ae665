//! The scheduler and the kubelet of the simulated nodes.
//!
//! A Pod without `spec.nodeName` is bound to the Ready node running the fewest active
//! Pods. From then on its status is a pure function of the (simulated) time since the
//! kubelet first saw it, its spec and its failure-injection annotations
//! ([`simulate`]): the kubelet recomputes it, writes it when it changed, and sleeps until
//! the next transition. Timestamps already written (startTime, startedAt, condition
//! transition times) are kept, so rewriting the same state is a no-op.
//!
//! Timeline, in simulated seconds: containers are created at 0, running at
//! [`START`], Ready [`READY_AFTER`] later (plus readiness `initialDelaySeconds`). Pods
//! with `restartPolicy: Never/OnFailure` run for `sim.mooring.dev/run-seconds` (default
//! [`DEFAULT_RUN_SECONDS`]) and then terminate.

use super::events::Source;
use super::lifecycle::{self, Change};
use super::logs;
use super::util::{self, annotation, name_of, str_at, FAIL_ANNOTATION};
use super::{res, Controller, Ctx};
use crate::error::ApiError;
use crate::store::{Event, ObjKey};
use mooring_core::event::EventType;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// Simulated seconds from creation until containers run.
pub const START: f64 = 1.0;
/// Simulated seconds from running until Ready.
pub const READY_AFTER: f64 = 0.5;
/// Run time of Pods that terminate (Jobs), in simulated seconds.
pub const DEFAULT_RUN_SECONDS: f64 = 2.0;
/// How long a crash-looping container runs before it exits.
const CRASH_RUN: f64 = 1.0;

/// The injected failure of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    None,
    CrashLoop,
    NeverReady,
    ImagePull,
    Job,
}

impl Fail {
    fn parse(s: &str) -> Fail {
        match s {
            "crashloop" | "crash-loop" | "CrashLoopBackOff" => Fail::CrashLoop,
            "never-ready" | "neverready" => Fail::NeverReady,
            "image-pull" | "imagepull" | "ImagePullBackOff" => Fail::ImagePull,
            "job" | "fail" | "error" => Fail::Job,
            _ => Fail::None,
        }
    }

    /// The failure of one container: the Pod annotation, else its image tag.
    pub fn of_container(pod: &Value, container: &Value) -> Fail {
        if let Some(a) = annotation(pod, FAIL_ANNOTATION) {
            let f = Fail::parse(a);
            if f != Fail::None {
                return f;
            }
        }
        let image = container
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let last = image.rsplit('/').next().unwrap_or(image);
        match last.split_once(':') {
            Some((_, tag)) => match tag {
                "crashloop" | "never-ready" | "image-pull" => Fail::parse(tag),
                _ => Fail::None,
            },
            None => Fail::None,
        }
    }
}

#[derive(Default)]
pub struct PodController {
    /// When the kubelet first saw each Pod (uid, instant): the simulation clock's origin.
    seen: HashMap<ObjKey, (String, Instant)>,
    /// Next IP suffix per node.
    next_ip: HashMap<String, u32>,
    /// Active Pods per node, kept up to date as each Pod is reconciled (every Pod event
    /// reconciles it), so scheduling never rescans every Pod: at 100,000 Pods a rescan
    /// cost more than everything else the simulation does.
    load: NodeLoad,
    /// Images each node has pulled (the next Pod finds them "already present").
    pulled: HashSet<(String, String)>,
}

/// Which node each active Pod is bound to, and the count per node.
#[derive(Default)]
struct NodeLoad {
    node_of: HashMap<ObjKey, String>,
    count: HashMap<String, usize>,
}

impl NodeLoad {
    /// Record that the Pod `key` is active on `node`, or (`None`) no longer active.
    fn set(&mut self, key: &ObjKey, node: Option<&str>) {
        if self.node_of.get(key).map(String::as_str) == node {
            return;
        }
        let old = match node {
            Some(n) => self.node_of.insert(key.clone(), n.to_string()),
            None => self.node_of.remove(key),
        };
        if let Some(old) = old {
            if let Some(c) = self.count.get_mut(&old) {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    self.count.remove(&old);
                }
            }
        }
        if let Some(n) = node {
            *self.count.entry(n.to_string()).or_insert(0) += 1;
        }
    }

    /// The node of `nodes` with the fewest active Pods (ties: by name).
    fn least_loaded(&self, nodes: &[String]) -> Option<String> {
        nodes
            .iter()
            .min_by_key(|n| (self.count.get(n.as_str()).copied().unwrap_or(0), n.as_str()))
            .cloned()
    }
}

impl Controller for PodController {
    fn name(&self) -> &'static str {
        "kubelet"
    }

    fn keys_for(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<ObjKey>) {
        if ev.object.key.resource == res::PODS {
            if ev.kind == crate::store::EventType::Deleted {
                if let Ok(p) = ev.object.value() {
                    self.stopped(ctx, &p);
                }
            }
            out.push(ev.object.key.clone());
        }
    }

    fn all_keys(&mut self, ctx: &Ctx) -> Vec<ObjKey> {
        util::all_keys(ctx, res::PODS)
    }

    fn reconcile(&mut self, ctx: &Ctx, key: &ObjKey) -> Result<Option<Duration>, ApiError> {
        let Some(mut pod) = util::get(ctx, key)? else {
            self.seen.remove(key);
            self.load.set(key, None);
            // Normally gone with the delete event already; after a lagged event stream
            // this is where a deleted Pod's logs go.
            ctx.logs.remove(&key.namespace, &key.name, "");
            return Ok(None);
        };
        if !util::pod::is_active(&pod) {
            self.load.set(key, None);
            return Ok(None);
        }
        if pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            match self.schedule(ctx) {
                Some(node) => {
                    let mut bound = pod.clone();
                    bound["spec"]["nodeName"] = json!(node);
                    pod = util::write_main(ctx, &ctx.pods, &pod, bound)?;
                    ctx.recorder.normal(
                        "default-scheduler",
                        &pod,
                        "Scheduled",
                        &format!(
                            "Successfully assigned {}/{} to {node}",
                            key.namespace, key.name
                        ),
                    );
                }
                None => {
                    let mut status = pod.get("status").cloned().unwrap_or(json!({}));
                    status["phase"] = json!("Pending");
                    let mut conds = util::conditions(&pod);
                    util::set_condition(
                        &mut conds,
                        json!({"type": "PodScheduled", "status": "False", "lastProbeTime": null,
                               "lastTransitionTime": mooring_core::time::now_rfc3339(), "reason": "Unschedulable",
                               "message": "0/0 nodes are available: no Ready simulated node."}),
                    );
                    status["conditions"] = json!(conds);
                    util::write_status(ctx, &ctx.pods, &pod, status)?;
                    ctx.recorder.warning(
                        "default-scheduler",
                        &pod,
                        "FailedScheduling",
                        "0/0 nodes are available: no Ready simulated node.",
                    );
                    return Ok(Some(Duration::from_secs(1)));
                }
            }
        }
        self.load.set(key, str_at(&pod, "/spec/nodeName"));
        let uid = str_at(&pod, "/metadata/uid")
            .unwrap_or_default()
            .to_string();
        let origin = match self.seen.get(key) {
            Some((u, t)) if *u == uid => *t,
            _ => {
                // A Pod that already runs (a restarted cluster) continues where it was.
                let started = pod.pointer("/status/startTime").is_some()
                    && util::pod::phase(&pod) != "Pending";
                let now = Instant::now();
                let t = if started {
                    now.checked_sub(Duration::from_secs(3600)).unwrap_or(now)
                } else {
                    now
                };
                self.seen.insert(key.clone(), (uid, t));
                t
            }
        };
        let elapsed = ctx.opts.sim_seconds(origin.elapsed());
        let node = str_at(&pod, "/spec/nodeName")
            .unwrap_or_default()
            .to_string();
        let ip = match str_at(&pod, "/status/podIP") {
            Some(ip) => ip.to_string(),
            None => self.allocate_ip(&node),
        };
        let sim = simulate(
            &pod,
            elapsed,
            &Env {
                now: mooring_core::time::now_rfc3339(),
                pod_ip: ip,
                node,
            },
        );
        let old_status = pod.get("status").cloned().unwrap_or(json!({}));
        let steps = lifecycle::changes(&old_status, &sim.status);
        util::write_status(ctx, &ctx.pods, &pod, sim.status.clone())?;
        if !steps.is_empty() {
            self.report(ctx, &pod, &sim.status, &steps);
        }
        Ok(sim
            .next
            .map(|t| ctx.opts.scaled((t - elapsed).max(0.0)) + Duration::from_millis(2)))
    }
}

impl PodController {
    /// Record the kubelet's Events for these lifecycle steps.
    fn report(&mut self, ctx: &Ctx, pod: &Value, status: &Value, steps: &[Change]) {
        let node = str_at(pod, "/spec/nodeName")
            .unwrap_or_default()
            .to_string();
        let source = Source::kubelet(&node);
        let containers = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let spec_of = |name: &str| {
            containers
                .iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
                .cloned()
                .unwrap_or(json!({}))
        };
        let event = |field: &str, type_: EventType, reason: &str, message: &str| {
            ctx.recorder.record_at(
                source,
                pod,
                Some(&format!("spec.containers{{{field}}}")),
                type_,
                reason,
                message,
            )
        };
        for step in steps {
            match step {
                Change::Started { container, restart } => {
                    let c = spec_of(container);
                    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
                    let fresh = self.pulled.insert((node.clone(), image.to_string()));
                    if fresh && *restart == 0 {
                        event(
                            container,
                            EventType::Normal,
                            "Pulling",
                            &format!("Pulling image \"{image}\""),
                        );
                        let secs = 1.0 + f64::from(util::fnv32a(image.as_bytes()) % 4000) / 1000.0;
                        let size =
                            10_000_000 + u64::from(util::fnv32a(image.as_bytes())) % 90_000_000;
                        event(
                            container,
                            EventType::Normal,
                            "Pulled",
                            &format!("Successfully pulled image \"{image}\" in {secs:.3}s ({secs:.3}s including waiting). Image size: {size} bytes."),
                        );
                    } else {
                        event(
                            container,
                            EventType::Normal,
                            "Pulled",
                            &format!("Container image \"{image}\" already present on machine"),
                        );
                    }
                    event(
                        container,
                        EventType::Normal,
                        "Created",
                        &format!("Created container: {container}"),
                    );
                    event(
                        container,
                        EventType::Normal,
                        "Started",
                        &format!("Started container {container}"),
                    );
                    self.start_logs(ctx, pod, &c, *restart);
                    let running_unready = status
                        .get("containerStatuses")
                        .and_then(Value::as_array)
                        .and_then(|a| {
                            a.iter().find(|cs| {
                                cs.get("name").and_then(Value::as_str) == Some(container.as_str())
                            })
                        })
                        .is_some_and(|cs| cs.pointer("/state/running").is_some());
                    if running_unready && Fail::of_container(pod, &c) == Fail::NeverReady {
                        event(
                            container,
                            EventType::Warning,
                            "Unhealthy",
                            "Readiness probe failed: HTTP probe failed with statuscode: 503",
                        );
                    }
                }
                Change::Exited {
                    container,
                    restart,
                    code,
                } => {
                    let c = spec_of(container);
                    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
                    let ns = str_at(pod, "/metadata/namespace").unwrap_or_default();
                    let name = util::name_of(pod);
                    let lines = if terminates(pod) {
                        let done = ctx.logs.synthesized(ns, name, container, *restart);
                        logs::job_exit_lines(*code, done)
                    } else {
                        logs::crash_lines(logs::Style::of_image(image))
                    };
                    ctx.logs.exited(ns, name, container, *restart, lines);
                }
                Change::BackOff { container } => event(
                    container,
                    EventType::Warning,
                    "BackOff",
                    &format!(
                        "Back-off restarting failed container {container} in pod {}_{}({})",
                        util::name_of(pod),
                        str_at(pod, "/metadata/namespace").unwrap_or_default(),
                        str_at(pod, "/metadata/uid").unwrap_or_default()
                    ),
                ),
                Change::PullFailed { container, image } => {
                    event(
                        container,
                        EventType::Normal,
                        "Pulling",
                        &format!("Pulling image \"{image}\""),
                    );
                    event(
                        container,
                        EventType::Warning,
                        "Failed",
                        &format!("Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"),
                    );
                    event(
                        container,
                        EventType::Warning,
                        "Failed",
                        "Error: ErrImagePull",
                    );
                    event(
                        container,
                        EventType::Normal,
                        "BackOff",
                        &format!("Back-off pulling image \"{image}\""),
                    );
                    event(
                        container,
                        EventType::Warning,
                        "Failed",
                        "Error: ImagePullBackOff",
                    );
                }
            }
        }
    }

    /// The first lines of a container instance, and what it goes on writing.
    fn start_logs(&self, ctx: &Ctx, pod: &Value, c: &Value, restart: i64) {
        let ns = str_at(pod, "/metadata/namespace").unwrap_or_default();
        let uid = str_at(pod, "/metadata/uid").unwrap_or_default();
        let container = c.get("name").and_then(Value::as_str).unwrap_or_default();
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        let port = c
            .pointer("/ports/0/containerPort")
            .and_then(Value::as_i64)
            .unwrap_or(8080);
        let style = logs::Style::of_image(image);
        let now = logs::now_nanos();
        let fail = Fail::of_container(pod, c);
        let scaled_nanos =
            |sim_secs: f64| i64::try_from(ctx.opts.scaled(sim_secs).as_nanos()).unwrap_or(i64::MAX);
        let (lines, synth, delay) = if terminates(pod) {
            let lines = vec![
                format!("Starting {container} ({image})"),
                format!(
                    "Job pod {} on {}",
                    util::name_of(pod),
                    str_at(pod, "/spec/nodeName").unwrap_or_default()
                ),
            ];
            // One batch per simulated second.
            let rate = 1.0 / ctx.opts.scaled(1.0).as_secs_f64().max(1e-6);
            (lines, Some(logs::Synth::Work { rate }), 0)
        } else {
            let mut lines = logs::startup_lines(style, container, image, port, now);
            match fail {
                Fail::CrashLoop => (lines, None, 0),
                Fail::NeverReady => {
                    lines.push("level=warn msg=\"not ready: dependency unavailable, /healthz answers 503\"".into());
                    (lines, None, 0)
                }
                _ => {
                    let f = |k, d, lo, hi| super::metrics::ann_f64(pod, k, d, lo, hi);
                    let synth = logs::Synth::Requests {
                        style,
                        rate: f(super::metrics::REQUEST_RATE, 10.0, 0.0, 1.0e6),
                        error_rate: f(super::metrics::ERROR_RATE, 0.0, 0.0, 1.0),
                        latency_ms: f(super::metrics::LATENCY_MS, 50.0, 0.001, 1.0e6),
                    };
                    (lines, Some(synth), scaled_nanos(READY_AFTER))
                }
            }
        };
        ctx.logs.started(
            ns,
            util::name_of(pod),
            uid,
            container,
            restart,
            lines,
            synth,
            delay,
        );
    }

    /// A Pod is gone: the kubelet stops its running containers (`Killing`).
    fn stopped(&mut self, ctx: &Ctx, pod: &Value) {
        ctx.logs.remove(
            str_at(pod, "/metadata/namespace").unwrap_or_default(),
            util::name_of(pod),
            str_at(pod, "/metadata/uid").unwrap_or_default(),
        );
        let Some(node) = str_at(pod, "/spec/nodeName") else {
            return;
        };
        let statuses = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for cs in statuses {
            if cs.pointer("/state/running").is_none() {
                continue;
            }
            let name = cs.get("name").and_then(Value::as_str).unwrap_or_default();
            ctx.recorder.record_at(
                Source::kubelet(node),
                pod,
                Some(&format!("spec.containers{{{name}}}")),
                EventType::Normal,
                "Killing",
                &format!("Stopping container {name}"),
            );
        }
    }

    /// The Ready node with the fewest active Pods (ties: by name).
    fn schedule(&self, ctx: &Ctx) -> Option<String> {
        self.load.least_loaded(&util::ready_nodes(ctx))
    }

    fn allocate_ip(&mut self, node: &str) -> String {
        let n = self.next_ip.entry(node.to_string()).or_insert_with(|| {
            use rand::Rng;
            rand::rng().random_range(0..250)
        });
        *n = (*n + 1) % 250;
        format!("10.244.{}.{}", util::node_index(node) % 256, 2 + *n)
    }
}

/// Whether the Pod's containers run to completion (`restartPolicy: Never/OnFailure`).
fn terminates(pod: &Value) -> bool {
    matches!(
        str_at(pod, "/spec/restartPolicy"),
        Some("Never" | "OnFailure")
    )
}

/// Facts from outside the Pod the kubelet reports.
pub struct Env {
    pub now: String,
    pub pod_ip: String,
    pub node: String,
}

/// The status a Pod has after `elapsed` simulated seconds, and when it next changes.
pub struct Simulated {
    pub status: Value,
    pub next: Option<f64>,
}

/// One container at a point of its timeline.
enum CState {
    Creating,
    Waiting(&'static str, String),
    Running { restarts: i64, ready: bool },
    CrashWait { restarts: i64 },
    Terminated { code: i64 },
}

fn container_state(
    fail: Fail,
    terminates: bool,
    run: f64,
    ready_delay: f64,
    e: f64,
    image: &str,
) -> (CState, Option<f64>) {
    if e < START {
        return (CState::Creating, Some(START));
    }
    if fail == Fail::ImagePull {
        return (
            CState::Waiting(
                "ImagePullBackOff",
                format!("Back-off pulling image \"{image}\""),
            ),
            None,
        );
    }
    let t = e - START;
    if terminates {
        let failing = matches!(fail, Fail::Job | Fail::CrashLoop);
        if t < run {
            let ready = fail != Fail::NeverReady && t >= ready_delay;
            let next = if ready || fail == Fail::NeverReady || ready_delay >= run {
                START + run
            } else {
                START + ready_delay
            };
            return (CState::Running { restarts: 0, ready }, Some(next));
        }
        return (
            CState::Terminated {
                code: if failing { 1 } else { 0 },
            },
            None,
        );
    }
    match fail {
        Fail::CrashLoop => {
            // Run CRASH_RUN, exit, back off 10 s, 20 s, … 300 s, restart.
            let mut at = 0.0;
            let mut k: i64 = 0;
            loop {
                if t < at + CRASH_RUN {
                    return (
                        CState::Running {
                            restarts: k,
                            ready: false,
                        },
                        Some(START + at + CRASH_RUN),
                    );
                }
                at += CRASH_RUN;
                let backoff = (10.0 * 2f64.powi(k.min(10) as i32)).min(300.0);
                if t < at + backoff {
                    return (
                        CState::CrashWait { restarts: k + 1 },
                        Some(START + at + backoff),
                    );
                }
                at += backoff;
                k += 1;
            }
        }
        Fail::NeverReady => (
            CState::Running {
                restarts: 0,
                ready: false,
            },
            None,
        ),
        _ => {
            if t >= ready_delay {
                (
                    CState::Running {
                        restarts: 0,
                        ready: true,
                    },
                    None,
                )
            } else {
                (
                    CState::Running {
                        restarts: 0,
                        ready: false,
                    },
                    Some(START + ready_delay),
                )
            }
        }
    }
}

fn hex_id(seed: &str) -> String {
    (0..8u8)
        .map(|i| format!("{:08x}", util::fnv32a(format!("{seed}/{i}").as_bytes())))
        .collect()
}

fn image_id(image: &str) -> String {
    let repo = match image.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => image,
    };
    let repo = repo.split('@').next().unwrap_or(repo);
    let full = if repo.contains('/') {
        if repo
            .split('/')
            .next()
            .is_some_and(|h| h.contains('.') || h.contains(':'))
        {
            repo.to_string()
        } else {
            format!("docker.io/{repo}")
        }
    } else {
        format!("docker.io/library/{repo}")
    };
    format!("{full}@sha256:{}", hex_id(image))
}

fn qos_class(spec: &Value) -> &'static str {
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|r| !r.is_empty()) || lim.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|l| l.get(r));
            let q = req.and_then(|q| q.get(r)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Compute the status of a scheduled Pod after `e` simulated seconds.
pub fn simulate(pod: &Value, e: f64, env: &Env) -> Simulated {
    let old = pod.get("status").cloned().unwrap_or(json!({}));
    let spec = pod.get("spec").cloned().unwrap_or(json!({}));
    let uid = str_at(pod, "/metadata/uid").unwrap_or_default();
    let terminates = matches!(
        spec.get("restartPolicy").and_then(Value::as_str),
        Some("Never" | "OnFailure")
    );
    let run = annotation(pod, util::RUN_SECONDS_ANNOTATION)
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|r| r.is_finite() && *r >= 0.0)
        .unwrap_or(DEFAULT_RUN_SECONDS);
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let old_cs = |name: &str| -> Option<Value> {
        old.get("containerStatuses")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
            })
            .cloned()
    };
    let mut next: Option<f64> = None;
    let mut statuses = Vec::new();
    let (mut all_ready, mut all_started, mut any_failed, mut all_terminated) =
        (true, true, false, true);
    let mut not_ready = Vec::new();
    for c in &containers {
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        let fail = Fail::of_container(pod, c);
        let ready_delay = READY_AFTER
            + c.pointer("/readinessProbe/initialDelaySeconds")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
        let (state, n) = container_state(fail, terminates, run, ready_delay, e, image);
        if let Some(n) = n {
            next = Some(next.map_or(n, |x: f64| x.min(n)));
        }
        let prev = old_cs(name);
        let prev_state = prev
            .as_ref()
            .and_then(|p| p.get("state"))
            .cloned()
            .unwrap_or(json!({}));
        let prev_restarts = prev
            .as_ref()
            .and_then(|p| p.get("restartCount"))
            .and_then(Value::as_i64);
        let keep = |ptr: &str, same: bool| -> Value {
            if same {
                prev_state
                    .pointer(ptr)
                    .cloned()
                    .unwrap_or_else(|| json!(env.now))
            } else {
                json!(env.now)
            }
        };
        let (st, last, ready, started, restarts) = match &state {
            CState::Creating => (
                json!({"waiting": {"reason": "ContainerCreating"}}),
                json!({}),
                false,
                false,
                0,
            ),
            CState::Waiting(reason, msg) => (
                json!({"waiting": {"reason": reason, "message": msg}}),
                json!({}),
                false,
                false,
                0,
            ),
            CState::Running { restarts, ready } => {
                let same = prev_restarts == Some(*restarts);
                let started_at = keep("/running/startedAt", same);
                let last = if *restarts > 0 {
                    prev.as_ref()
                        .and_then(|p| p.get("lastState"))
                        .filter(|l| l.get("terminated").is_some())
                        .cloned()
                        .unwrap_or_else(|| crashed(&env.now))
                } else {
                    json!({})
                };
                (
                    json!({"running": {"startedAt": started_at}}),
                    last,
                    *ready,
                    true,
                    *restarts,
                )
            }
            CState::CrashWait { restarts } => {
                let same = prev_restarts == Some(*restarts);
                let last = if same {
                    prev.as_ref()
                        .and_then(|p| p.get("lastState"))
                        .cloned()
                        .unwrap_or_else(|| crashed(&env.now))
                } else {
                    let started_at = prev_state
                        .pointer("/running/startedAt")
                        .cloned()
                        .unwrap_or_else(|| json!(env.now));
                    json!({"terminated": {"exitCode": 1, "reason": "Error",
                        "startedAt": started_at, "finishedAt": env.now,
                        "containerID": format!("containerd://{}", hex_id(&format!("{uid}/{name}/{}", restarts - 1)))}})
                };
                let backoff = (10.0 * 2f64.powi((*restarts - 1).min(10) as i32)).min(300.0);
                (
                    json!({"waiting": {"reason": "CrashLoopBackOff",
                        "message": format!("back-off {backoff}s restarting failed container={name} pod={}_{}",
                            name_of(pod), str_at(pod, "/metadata/namespace").unwrap_or_default())}}),
                    last,
                    false,
                    false,
                    *restarts,
                )
            }
            CState::Terminated { code } => {
                let same = prev_state.get("terminated").is_some();
                let started_at = if same {
                    keep("/terminated/startedAt", true)
                } else {
                    prev_state
                        .pointer("/running/startedAt")
                        .cloned()
                        .unwrap_or_else(|| json!(env.now))
                };
                let finished_at = if same {
                    keep("/terminated/finishedAt", true)
                } else {
                    json!(env.now)
                };
                (
                    json!({"terminated": {"exitCode": code,
                        "reason": if *code == 0 { "Completed" } else { "Error" },
                        "startedAt": started_at, "finishedAt": finished_at,
                        "containerID": format!("containerd://{}", hex_id(&format!("{uid}/{name}/0")))}}),
                    json!({}),
                    false,
                    false,
                    0,
                )
            }
        };
        if !matches!(state, CState::Terminated { .. }) {
            all_terminated = false;
        }
        if matches!(state, CState::Terminated { code } if code != 0) {
            any_failed = true;
        }
        if matches!(state, CState::Creating | CState::Waiting(..)) {
            all_started = false;
        }
        if !ready {
            all_ready = false;
            not_ready.push(name.to_string());
        }
        let mut cs = json!({
            "name": name,
            "state": st,
            "lastState": last,
            "ready": ready,
            "restartCount": restarts,
            "image": image,
            "imageID": if matches!(state, CState::Creating | CState::Waiting(..)) { String::new() } else { image_id(image) },
        });
        if !matches!(state, CState::Creating | CState::Waiting(..)) {
            cs["containerID"] = json!(format!(
                "containerd://{}",
                hex_id(&format!("{uid}/{name}/{restarts}"))
            ));
        }
        cs["started"] = json!(started);
        statuses.push(cs);
    }
    if containers.is_empty() {
        all_terminated = false;
    }
    let running = e >= START;
    // Running once every container started at least once (a crash-looping one included).
    let phase = if all_terminated {
        if any_failed {
            "Failed"
        } else {
            "Succeeded"
        }
    } else if running && all_started {
        "Running"
    } else {
        "Pending"
    };
    let mut conds = old
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let cond = |t: &str, ok: bool, reason: Option<&str>, msg: Option<String>| {
        let mut c = json!({"type": t, "status": if ok { "True" } else { "False" },
            "lastProbeTime": null, "lastTransitionTime": env.now});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        if let Some(m) = msg {
            c["message"] = json!(m);
        }
        c
    };
    let terminal = phase == "Succeeded" || phase == "Failed";
    let unready_msg = format!("containers with unready status: [{}]", not_ready.join(" "));
    let (ready_reason, ready_msg) = if terminal {
        (Some("PodCompleted"), None)
    } else if all_ready {
        (None, None)
    } else {
        (Some("ContainersNotReady"), Some(unready_msg))
    };
    let new_conds = [
        cond(
            "PodReadyToStartContainers",
            running && !terminal,
            None,
            None,
        ),
        cond(
            "Initialized",
            true,
            terminal.then_some("PodCompleted"),
            None,
        ),
        cond(
            "Ready",
            all_ready && !terminal,
            ready_reason,
            ready_msg.clone(),
        ),
        cond(
            "ContainersReady",
            all_ready && !terminal,
            ready_reason,
            ready_msg,
        ),
        cond("PodScheduled", true, None, None),
    ];
    for c in new_conds {
        util::set_condition(&mut conds, c);
    }
    // Kubernetes' order.
    let order = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ];
    conds.sort_by_key(|c| {
        order
            .iter()
            .position(|o| c.get("type").and_then(Value::as_str) == Some(o))
            .unwrap_or(order.len())
    });
    let host_ip = util::node_ip(util::node_index(&env.node));
    let mut status = json!({
        "phase": phase,
        "conditions": conds,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
    });
    if running {
        status["podIP"] = json!(env.pod_ip);
        status["podIPs"] = json!([{"ip": env.pod_ip}]);
    }
    status["startTime"] = old
        .get("startTime")
        .cloned()
        .unwrap_or_else(|| json!(env.now));
    status["containerStatuses"] = json!(statuses);
    status["qosClass"] = json!(qos_class(&spec));
    Simulated { status, next }
}

fn crashed(now: &str) -> Value {
    json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_load_follows_each_pod_and_picks_the_least_loaded_node() {
        let key = |n: &str| ObjKey {
            resource: res::PODS.into(),
            namespace: "default".into(),
            name: n.into(),
        };
        let nodes = vec!["a".to_string(), "b".to_string()];
        let mut load = NodeLoad::default();
        assert_eq!(
            load.least_loaded(&nodes).as_deref(),
            Some("a"),
            "tie: by name"
        );
        load.set(&key("p1"), Some("a"));
        load.set(&key("p1"), Some("a"));
        assert_eq!(load.least_loaded(&nodes).as_deref(), Some("b"));
        load.set(&key("p2"), Some("b"));
        load.set(&key("p3"), Some("b"));
        assert_eq!(load.least_loaded(&nodes).as_deref(), Some("a"));
        // A Pod that ends or is deleted frees its place; one rebound moves its count.
        load.set(&key("p2"), None);
        load.set(&key("p3"), Some("a"));
        assert_eq!(load.count.get("a"), Some(&2));
        assert_eq!(load.count.get("b"), None);
        assert_eq!(load.least_loaded(&nodes).as_deref(), Some("b"));
        assert_eq!(load.least_loaded(&[]), None);
    }

    fn env() -> Env {
        Env {
            now: "2024-01-01T00:00:00Z".into(),
            pod_ip: "10.244.0.5".into(),
            node: "mooring-node-0".into(),
        }
    }

    fn pod(ann: Value, image: &str, restart: &str) -> Value {
        json!({"metadata": {"name": "p", "namespace": "default", "uid": "u", "annotations": ann},
               "spec": {"restartPolicy": restart, "nodeName": "mooring-node-0",
                        "containers": [{"name": "c", "image": image}]}})
    }

    #[test]
    fn normal_pod_becomes_ready() {
        let p = pod(json!({}), "nginx:1", "Always");
        let s = simulate(&p, 0.0, &env());
        assert_eq!(s.status["phase"], "Pending");
        assert_eq!(s.next, Some(START));
        let s = simulate(&p, START, &env());
        assert_eq!(s.status["phase"], "Running");
        assert_eq!(s.status["containerStatuses"][0]["ready"], false);
        let s = simulate(&p, START + READY_AFTER, &env());
        assert_eq!(s.status["containerStatuses"][0]["ready"], true);
        assert_eq!(s.status["conditions"][2]["type"], "Ready");
        assert_eq!(s.status["conditions"][2]["status"], "True");
        assert_eq!(s.next, None);
    }

    #[test]
    fn crashloop_restarts_and_is_never_ready() {
        let p = pod(json!({}), "app:crashloop", "Always");
        let s = simulate(&p, START + CRASH_RUN + 1.0, &env());
        assert_eq!(
            s.status["containerStatuses"][0]["state"]["waiting"]["reason"],
            "CrashLoopBackOff"
        );
        assert_eq!(s.status["containerStatuses"][0]["restartCount"], 1);
        let s = simulate(&p, START + 100.0, &env());
        assert!(
            s.status["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap_or(0)
                >= 3
        );
        assert_eq!(s.status["conditions"][2]["status"], "False");
        assert_eq!(s.status["phase"], "Running");
    }

    #[test]
    fn job_pods_terminate() {
        let p = pod(json!({}), "busybox", "Never");
        let s = simulate(&p, START + DEFAULT_RUN_SECONDS, &env());
        assert_eq!(s.status["phase"], "Succeeded");
        let p = pod(json!({FAIL_ANNOTATION: "job"}), "busybox", "OnFailure");
        let s = simulate(&p, START + DEFAULT_RUN_SECONDS, &env());
        assert_eq!(s.status["phase"], "Failed");
        assert_eq!(
            s.status["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            1
        );
    }

    #[test]
    fn image_pull_and_never_ready() {
        let p = pod(json!({FAIL_ANNOTATION: "image-pull"}), "nginx", "Always");
        let s = simulate(&p, 50.0, &env());
        assert_eq!(s.status["phase"], "Pending");
        assert_eq!(
            s.status["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ImagePullBackOff"
        );
        let p = pod(json!({}), "nginx:never-ready", "Always");
        let s = simulate(&p, 50.0, &env());
        assert_eq!(s.status["phase"], "Running");
        assert_eq!(s.status["conditions"][2]["reason"], "ContainersNotReady");
    }

    #[test]
    fn image_ids_look_real() {
        assert!(image_id("nginx:1.25").starts_with("docker.io/library/nginx@sha256:"));
        assert!(image_id("ghcr.io/a/b:1").starts_with("ghcr.io/a/b@sha256:"));
        assert!(image_id("localhost:5000/b").starts_with("localhost:5000/b@sha256:"));
    }
}
