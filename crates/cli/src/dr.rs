//! `mooring dr …`: disaster-recovery plans from the command line.
//!
//! `status` shows where a plan stands (which side serves, the running operation's steps,
//! the last failover, failback and drill with their RTO/RPO against the objectives).
//! `validate` runs the plan's checks *now*, from this process, against one side — the
//! seed's `validate_dr_recovery` — with the controller's own checks code on a
//! [`Context::offline`](mooring_controller::Context::offline), the destination clusters
//! read from the Argo CD cluster Secrets and the admin's outbound allowlist from
//! `mooring-cm`, so a check the controller would refuse is refused here too.
//!
//! `failover`, `failback` and `drill` never act on the clusters themselves: they write a
//! request into the plan's `status.request` (through the status subresource, guarded by
//! the resourceVersion read, so two people cannot both start one) and the controller runs
//! it, recording every step in the plan's status. With `--wait` (the default for a drill)
//! the command follows those steps as they start and end until the operation finishes.
//! A request is refused upfront when an operation or a drill is running, or when the
//! plan's phase does not allow it (a failback only from `StandbyActive`).
//!
//! Exit codes: 0 passed, 1 failed (a check, an operation, a drill, or the wait timed
//! out), 2 usage or access errors.

use crate::output::{emit, print_table, Output};
use anyhow::{bail, Context as _};
use clap::{Subcommand, ValueEnum};
use mooring_core::dr::{
    DisasterRecoveryPlan, DisasterRecoveryPlanStatus, DrRequest, OperationSummary, Phase,
    StepStatus,
};
use mooring_core::time;
use mooring_engine::dr::report::{
    human_seconds, validation_report, REPORT_JSON_KEY, REPORT_MARKDOWN_KEY,
};
use mooring_engine::dr::request::request_refusal;
use mooring_engine::dr::{Side, DRILL, FAILBACK, FAILOVER};
use mooring_k8s::k8s_openapi::api::core::v1::{ConfigMap, Event};
use mooring_k8s::kube;
use mooring_k8s::kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The Event reason the controller records for a request it does not start.
pub const REQUEST_REFUSED: &str = "RequestRefused";

#[derive(Subcommand, Debug)]
pub enum DrCommand {
    /// Phase, sides, conditions, the running operation's steps, the last failover,
    /// failback and drill (RTO/RPO against the objectives), the next drill.
    Status {
        plan: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Run the plan's validation checks now against one side (default: the active one);
    /// exit 1 when a check fails.
    Validate {
        plan: String,
        #[arg(long, value_enum)]
        side: Option<SideArg>,
        /// The Prometheus PromQL checks query when the plan names none (default: the
        /// `prometheus.address` of `mooring-cm`, which `mooring up` records).
        #[arg(long, value_name = "URL")]
        prometheus: Option<String>,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Ask the controller to fail over to the standby region.
    Failover {
        plan: String,
        /// The incident this failover answers (recorded, reported, notified).
        #[arg(long)]
        incident: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Ask the controller to fail back to the primary region (from StandbyActive).
    Failback {
        plan: String,
        /// The incident (default: the last failover's).
        #[arg(long)]
        incident: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Run a drill now: inject the failure, fail over, validate, restore, fail back,
    /// report. Waits for the report unless `--no-wait`.
    Drill {
        plan: String,
        /// The drill's incident id (default: `drill-YYYYMMDD-HHMMSS`).
        #[arg(long)]
        incident: Option<String>,
        /// Only write the request.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds (the drill goes on).
        #[arg(long, default_value_t = 1800)]
        timeout: u64,
        /// `json`: print the report's JSON; `yaml`: the same as YAML.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
}

/// `--wait` and `--timeout` of `failover` and `failback`.
#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    /// Follow the operation's steps until it finishes.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this many seconds (the operation goes on).
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SideArg {
    Primary,
    Standby,
}

impl From<SideArg> for Side {
    fn from(s: SideArg) -> Side {
        match s {
            SideArg::Primary => Side::Primary,
            SideArg::Standby => Side::Standby,
        }
    }
}

pub async fn run(cmd: DrCommand, common: crate::app::Common) -> anyhow::Result<ExitCode> {
    let m = crate::connect::connect(&common.management).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(
        m.client.clone(),
        m.namespace(),
        &mooring_k8s::resources::disaster_recovery_plan_resource(),
    );
    match cmd {
        DrCommand::Status { plan, output } => {
            let (p, _) = get_plan(&api, &plan).await?;
            status(&p, output)?;
            Ok(ExitCode::SUCCESS)
        }
        DrCommand::Validate {
            plan,
            side,
            prometheus,
            output,
        } => {
            let (p, _) = get_plan(&api, &plan).await?;
            validate(&m, &p, side.map(Side::from), prometheus, output).await
        }
        DrCommand::Failover {
            plan,
            incident,
            wait,
        } => {
            if incident.trim().is_empty() {
                bail!("--incident must not be empty");
            }
            let req = request(&api, &plan, FAILOVER, Some(incident)).await?;
            if !wait.wait {
                return Ok(ExitCode::SUCCESS);
            }
            wait_operation(&api, &plan, &req, wait.timeout).await
        }
        DrCommand::Failback {
            plan,
            incident,
            wait,
        } => {
            let req = request(&api, &plan, FAILBACK, incident).await?;
            if !wait.wait {
                return Ok(ExitCode::SUCCESS);
            }
            wait_operation(&api, &plan, &req, wait.timeout).await
        }
        DrCommand::Drill {
            plan,
            incident,
            no_wait,
            timeout,
            output,
        } => {
            let incident = incident
                .unwrap_or_else(|| format!("drill-{}", time::now().strftime("%Y%m%d-%H%M%S")));
            let req = request(&api, &plan, DRILL, Some(incident)).await?;
            if no_wait {
                if output != Output::Table {
                    emit(&req, output)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            wait_drill(&m, &api, &plan, &req, timeout, output).await
        }
    }
}

/// The plan `name` (in the control-plane namespace), typed, and its resourceVersion.
async fn get_plan(
    api: &Api<DynamicObject>,
    name: &str,
) -> anyhow::Result<(DisasterRecoveryPlan, String)> {
    let Some(o) = api
        .get_opt(name)
        .await
        .with_context(|| format!("reading DisasterRecoveryPlan {name}"))?
    else {
        bail!("no DisasterRecoveryPlan named {name:?} (see `kubectl get disasterrecoveryplans -n argocd`)");
    };
    let rv = o.metadata.resource_version.clone().unwrap_or_default();
    let v = serde_json::to_value(o)?;
    let p: DisasterRecoveryPlan = serde_json::from_value(v)
        .with_context(|| format!("DisasterRecoveryPlan {name} does not parse"))?;
    Ok((p, rv))
}

/// Who asks: `git config user.name`, then $USER.
fn requester() -> String {
    std::process::Command::new("git")
        .args(["config", "--get", "user.name"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("USER").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// Write `status.request` (refused when the plan's state does not allow it).
async fn request(
    api: &Api<DynamicObject>,
    name: &str,
    kind: &str,
    incident: Option<String>,
) -> anyhow::Result<DrRequest> {
    let (plan, rv) = get_plan(api, name).await?;
    let st = plan.status.clone().unwrap_or_default();
    if let Some(why) = request_refusal(kind, &st) {
        bail!(
            "cannot start a {} of {name}: {why}",
            kind.to_ascii_lowercase()
        );
    }
    let incident = incident.or_else(|| {
        (kind == FAILBACK)
            .then(|| st.last_failover.as_ref().map(|f| f.incident.clone()))
            .flatten()
    });
    let req = DrRequest {
        kind: kind.to_string(),
        incident,
        requested_at: time::now_rfc3339(),
        requested_by: Some(requester()),
    };
    // The resourceVersion read: a concurrent request (or a controller write) in between
    // makes this one fail instead of overwriting it.
    let patch = json!({
        "metadata": {"resourceVersion": rv},
        "status": {"request": req},
    });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| match e {
            kube::Error::Api(ae) if ae.code == 409 => anyhow::anyhow!(
                "DisasterRecoveryPlan {name} changed while the request was written (another request, or the controller); run the command again"
            ),
            e => anyhow::Error::new(e).context(format!("writing the request into {name}'s status")),
        })?;
    // On stderr, with the progress: stdout is the result (`-o json` stays parseable).
    eprintln!(
        "{} of {name} requested{} by {}",
        kind.to_ascii_lowercase(),
        req.incident
            .as_deref()
            .map(|i| format!(" (incident {i})"))
            .unwrap_or_default(),
        req.requested_by.as_deref().unwrap_or("unknown")
    );
    Ok(req)
}

/// Whether an operation or drill started at `started_at` is the one `req` asked for.
fn started_after(started_at: &str, req: &DrRequest) -> bool {
    match (time::parse(started_at), time::parse(&req.requested_at)) {
        (Ok(s), Ok(r)) => s.as_second() >= r.as_second(),
        _ => false,
    }
}

/// Prints step transitions once each.
#[derive(Default)]
struct Progress {
    seen: BTreeMap<String, String>,
}

impl Progress {
    fn show(&mut self, prefix: &str, steps: &[StepStatus]) {
        for s in steps {
            let name = format!("{prefix}{}", s.name);
            if self.seen.get(&name) == Some(&s.phase) {
                continue;
            }
            let line = match s.phase.as_str() {
                "Running" => format!("▶ {name}"),
                "Pending" => continue,
                phase => {
                    let secs = duration(s.started_at.as_deref(), s.finished_at.as_deref())
                        .map(|d| format!(" ({})", human_seconds(d)))
                        .unwrap_or_default();
                    let mark = match phase {
                        "Succeeded" => "✔",
                        "Skipped" => "–",
                        _ => "✘",
                    };
                    let msg = if s.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", s.message)
                    };
                    format!("{mark} {name} {phase}{secs}{msg}")
                }
            };
            eprintln!("{line}");
            self.seen.insert(name, s.phase.clone());
        }
    }
}

fn duration(from: Option<&str>, to: Option<&str>) -> Option<f64> {
    let a = time::parse(from?).ok()?;
    let b = match to {
        Some(t) => time::parse(t).ok()?,
        None => time::now(),
    };
    Some(b.duration_since(a).as_secs_f64().max(0.0))
}

/// Follow a failover or failback to its end.
async fn wait_operation(
    api: &Api<DynamicObject>,
    name: &str,
    req: &DrRequest,
    timeout: u64,
) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let mut progress = Progress::default();
    loop {
        let (plan, _) = get_plan(api, name).await?;
        let st = plan.status.unwrap_or_default();
        if let Some(op) = st
            .operation
            .as_ref()
            .filter(|o| o.kind == req.kind && started_after(&o.started_at, req))
        {
            progress.show("", &op.steps);
            if op.phase != "Running" {
                println!(
                    "{} {}: {}{}",
                    op.kind,
                    op.incident,
                    op.phase,
                    if op.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", op.message)
                    }
                );
                if let Some(rto) = op.rto_seconds {
                    println!("RTO: {}", human_seconds(rto));
                }
                if let Some(rpo) = op.rpo_seconds {
                    println!("RPO: {}", human_seconds(rpo));
                }
                return Ok(if op.phase == "Succeeded" {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                });
            }
        }
        let started = st
            .operation
            .as_ref()
            .is_some_and(|o| o.kind == req.kind && started_after(&o.started_at, req));
        if st.request.is_none() && !started {
            return refused(api, name).await;
        }
        if start.elapsed() > Duration::from_secs(timeout) {
            eprintln!(
                "timed out after {timeout}s waiting for the {}; it goes on (see `mooring dr status {name}`){}",
                req.kind.to_ascii_lowercase(),
                failing_conditions(&st)
            );
            return Ok(ExitCode::from(1));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The plan's False conditions, as `; Ready: message`.
fn failing_conditions(st: &DisasterRecoveryPlanStatus) -> String {
    st.conditions
        .iter()
        .filter(|c| c.status != "True")
        .map(|c| format!("; {}: {}", c.type_, c.message))
        .collect()
}

/// Follow a drill to its report.
async fn wait_drill(
    m: &crate::connect::Management,
    api: &Api<DynamicObject>,
    name: &str,
    req: &DrRequest,
    timeout: u64,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let mut progress = Progress::default();
    let incident = req.incident.clone().unwrap_or_default();
    loop {
        let (plan, _) = get_plan(api, name).await?;
        let st = plan.status.clone().unwrap_or_default();
        if let Some(d) = st.drill.as_ref().filter(|d| d.incident == incident) {
            progress.show("", &d.steps);
            if let Some(f) = &d.failover {
                progress.show("failover/", &f.steps);
            }
            if let Some(b) = &d.failback {
                progress.show("failback/", &b.steps);
            }
        }
        if let Some(last) = st
            .last_drill
            .as_ref()
            .filter(|l| l.incident == incident && st.drill.is_none())
        {
            let report = match &last.report {
                Some(cm) => read_report(m, cm).await?,
                None => BTreeMap::new(),
            };
            match output {
                Output::Table => {
                    match report.get(REPORT_MARKDOWN_KEY) {
                        Some(md) => print!("{md}"),
                        None => println!("{}", summary_line("Drill", last, &plan)),
                    }
                    if let Some(cm) = &last.report {
                        println!("\nreport: ConfigMap {}/{cm}", m.namespace());
                    }
                }
                Output::Json | Output::Yaml => {
                    let raw = report.get(REPORT_JSON_KEY).with_context(|| {
                        format!(
                            "the drill's report ConfigMap {} has no {REPORT_JSON_KEY}",
                            last.report.as_deref().unwrap_or("(none)")
                        )
                    })?;
                    let v: Value = serde_json::from_str(raw)
                        .with_context(|| format!("{REPORT_JSON_KEY} is not JSON"))?;
                    emit(&v, output)?;
                }
            }
            return Ok(if last.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        let ours = st.drill.as_ref().is_some_and(|d| d.incident == incident)
            || st
                .last_drill
                .as_ref()
                .is_some_and(|l| l.incident == incident);
        if st.request.is_none() && !ours {
            return refused(api, name).await;
        }
        if start.elapsed() > Duration::from_secs(timeout) {
            eprintln!(
                "timed out after {timeout}s waiting for drill {incident}; it goes on (see `mooring dr status {name}`){}",
                failing_conditions(&st)
            );
            return Ok(ExitCode::from(1));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The controller took the request without starting it: say why (its newest
/// `RequestRefused` Event on the plan) and exit 1.
async fn refused(api: &Api<DynamicObject>, name: &str) -> anyhow::Result<ExitCode> {
    let ns = api
        .namespace()
        .unwrap_or(mooring_core::app::CONTROL_PLANE_NAMESPACE)
        .to_string();
    let events: Api<Event> = Api::namespaced(api.clone().into_client(), &ns);
    let why = events
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|e| {
                    e.reason.as_deref() == Some(REQUEST_REFUSED)
                        && e.involved_object.name.as_deref() == Some(name)
                        && e.involved_object.kind.as_deref() == Some(mooring_core::dr::KIND)
                })
                .max_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0))
                .and_then(|e| e.message)
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| "no reason recorded (see `mooring dr status`)".into());
    eprintln!("the controller refused the request: {why}");
    Ok(ExitCode::from(1))
}

async fn read_report(
    m: &crate::connect::Management,
    name: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let api: Api<ConfigMap> = Api::namespaced(m.client.clone(), m.namespace());
    let cm = api
        .get_opt(name)
        .await
        .with_context(|| format!("reading the report ConfigMap {name}"))?
        .with_context(|| format!("the report ConfigMap {name} does not exist"))?;
    Ok(cm.data.unwrap_or_default())
}

/// `Failover INC-1: passed, RTO 19.0s (objective 15m ✅), RPO 2.5s (objective 5m ✅), finished …`
fn summary_line(what: &str, s: &OperationSummary, plan: &DisasterRecoveryPlan) -> String {
    let objectives = plan.spec.objectives.clone().unwrap_or_default();
    let measure = |label: &str, v: Option<f64>, objective: Option<&String>| -> String {
        let Some(v) = v else {
            return String::new();
        };
        let vs = objective
            .map(|o| {
                let met = time::parse_go_duration(o).map(|d| v <= d.as_secs_f64());
                format!(
                    " (objective {o}{})",
                    match met {
                        Some(true) => " ✅",
                        Some(false) => " ❌",
                        None => "",
                    }
                )
            })
            .unwrap_or_default();
        format!(", {label} {}{vs}", human_seconds(v))
    };
    format!(
        "{what} {}: {}{}{}{}{}",
        s.incident,
        if s.passed { "passed" } else { "failed" },
        measure("RTO", s.rto_seconds, objectives.rto.as_ref()),
        measure("RPO", s.rpo_seconds, objectives.rpo.as_ref()),
        s.finished_at
            .as_deref()
            .map(|f| format!(", finished {f}"))
            .unwrap_or_default(),
        if s.message.is_empty() {
            String::new()
        } else {
            format!(" — {}", s.message)
        }
    )
}

fn region(r: &mooring_core::dr::RegionSpec) -> String {
    match r.region.as_deref().filter(|s| !s.is_empty()) {
        Some(region) => format!("{} ({region})", r.cluster),
        None => r.cluster.clone(),
    }
}

fn status(plan: &DisasterRecoveryPlan, output: Output) -> anyhow::Result<()> {
    let st = plan.status.clone().unwrap_or_default();
    if output != Output::Table {
        return emit(
            &json!({
                "name": plan.name(),
                "namespace": plan.namespace(),
                "primary": plan.spec.primary,
                "standby": plan.spec.standby,
                "objectives": plan.spec.objectives,
                "status": st,
            }),
            output,
        );
    }
    let active = match st.phase {
        Phase::StandbyActive | Phase::FailingBack => "standby",
        _ => "primary",
    };
    println!("Plan:         {}/{}", plan.namespace(), plan.name());
    println!("Phase:        {} (serving: {active})", st.phase.as_str());
    println!("Primary:      {}", region(&plan.spec.primary));
    println!("Standby:      {}", region(&plan.spec.standby));
    if let Some(o) = &plan.spec.objectives {
        println!(
            "Objectives:   RTO {}, RPO {}",
            o.rto.as_deref().unwrap_or("—"),
            o.rpo.as_deref().unwrap_or("—")
        );
    }
    if !st.conditions.is_empty() {
        println!("Conditions:");
        let mut rows = vec![vec![
            "  TYPE".to_string(),
            "STATUS".into(),
            "SINCE".into(),
            "MESSAGE".into(),
        ]];
        for c in &st.conditions {
            rows.push(vec![
                format!("  {}", c.type_),
                c.status.clone(),
                c.last_transition_time.clone().unwrap_or_default(),
                c.message.clone(),
            ]);
        }
        print_table(&rows);
    }
    if let Some(r) = &st.request {
        println!(
            "Requested:    {}{} by {} at {} (not started yet)",
            r.kind,
            r.incident
                .as_deref()
                .map(|i| format!(" {i}"))
                .unwrap_or_default(),
            r.requested_by.as_deref().unwrap_or("unknown"),
            r.requested_at
        );
    }
    let steps_table = |steps: &[StepStatus]| {
        let mut rows = vec![vec![
            "  STEP".to_string(),
            "PHASE".into(),
            "DURATION".into(),
            "MESSAGE".into(),
        ]];
        for s in steps {
            rows.push(vec![
                format!("  {}", s.name),
                s.phase.clone(),
                duration(s.started_at.as_deref(), s.finished_at.as_deref())
                    .map(human_seconds)
                    .unwrap_or_default(),
                s.message.clone(),
            ]);
        }
        print_table(&rows);
    };
    if let Some(op) = &st.operation {
        println!(
            "Operation:    {} {} ({}) {}, started {}{}",
            op.kind,
            op.incident,
            op.trigger,
            op.phase,
            op.started_at,
            duration(Some(&op.started_at), op.finished_at.as_deref())
                .map(|d| format!(", {}", human_seconds(d)))
                .unwrap_or_default()
        );
        steps_table(&op.steps);
        for c in &op.validation {
            println!(
                "  {}",
                validation_report(std::slice::from_ref(c))
                    .lines()
                    .next()
                    .unwrap_or_default()
            );
        }
    }
    if let Some(d) = &st.drill {
        println!(
            "Drill:        {} ({}, {}) stage {}, started {}",
            d.incident, d.failure_mode, d.trigger, d.stage, d.started_at
        );
        steps_table(&d.steps);
    }
    if let Some(s) = &st.last_failover {
        println!("Last failover: {}", summary_line("", s, plan).trim_start());
    }
    if let Some(s) = &st.last_failback {
        println!("Last failback: {}", summary_line("", s, plan).trim_start());
    }
    if let Some(s) = &st.last_drill {
        println!("Last drill:   {}", summary_line("", s, plan).trim_start());
        if let Some(cm) = &s.report {
            println!("              report: ConfigMap {}/{cm}", plan.namespace());
        }
    }
    println!(
        "Next drill:   {}",
        st.next_drill.as_deref().unwrap_or(
            if plan
                .spec
                .drill
                .as_ref()
                .and_then(|d| d.schedule.as_ref())
                .is_some()
            {
                "not scheduled yet"
            } else {
                "none scheduled (no drill.schedule)"
            }
        )
    );
    Ok(())
}

/// The checks, now, from this process.
async fn validate(
    m: &crate::connect::Management,
    plan: &DisasterRecoveryPlan,
    side: Option<Side>,
    prometheus: Option<String>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let st = plan.status.clone().unwrap_or_default();
    let side = side.unwrap_or(match st.phase {
        Phase::StandbyActive | Phase::FailingBack => Side::Standby,
        _ => Side::Primary,
    });
    // The controller's own Prometheus: the flag, else what `mooring up` recorded.
    let prometheus = match prometheus {
        Some(p) => Some(p),
        None => crate::connect::settings(&m.client, m.namespace())
            .await
            .and_then(|d| d.get(crate::connect::PROMETHEUS_ADDRESS_KEY).cloned())
            .filter(|a| !a.trim().is_empty()),
    };
    let opts = mooring_controller::ControllerOptions {
        cache_dir: std::env::temp_dir().join("mooring-cli-repos"),
        control_plane: m.control_plane.clone(),
        prometheus_address: prometheus,
        ..Default::default()
    };
    let ctx = mooring_controller::Context::offline(m.client.clone(), opts).await?;
    // The admin's allowlist, as the controller follows it.
    ctx.outbound.load_config(m.client.clone()).await;
    register_clusters(m, &ctx, plan).await?;
    let results = mooring_controller::dr::checks::run(&ctx, plan, side).await;
    if output == Output::Table {
        println!(
            "Validating the {} side of {} ({})",
            side.as_str(),
            plan.name(),
            region(match side {
                Side::Primary => &plan.spec.primary,
                Side::Standby => &plan.spec.standby,
            })
        );
        print!("{}", validation_report(&results));
    } else {
        emit(
            &json!({
                "plan": plan.name(),
                "side": side.as_str(),
                "passed": results.iter().all(|r| r.passed),
                "checks": results,
            }),
            output,
        )?;
    }
    Ok(if results.iter().all(|r| r.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Make the plan's clusters (by name) reachable through `ctx`, from the cluster Secrets.
/// An unregistered cluster is left out: the checks that need it say so.
async fn register_clusters(
    m: &crate::connect::Management,
    ctx: &mooring_controller::Context,
    plan: &DisasterRecoveryPlan,
) -> anyhow::Result<()> {
    let wanted = [&plan.spec.primary.cluster, &plan.spec.standby.cluster];
    for s in crate::connect::cluster_secrets(m).await? {
        let v = serde_json::to_value(&s)?;
        let Ok(e) = mooring_k8s::registry::parse_secret(&v) else {
            continue;
        };
        if !wanted.contains(&&e.name) {
            continue;
        }
        let client = mooring_k8s::registry::client(&e)
            .await
            .with_context(|| format!("connecting to cluster {}", e.name))?;
        ctx.outbound
            .protect(&e.server, &format!("the API server of cluster {}", e.name));
        let cluster = mooring_k8s::cluster::ClusterClient::without_cache(&e.name, client);
        let mut clusters = ctx
            .clusters
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        clusters.insert(e.server.clone(), cluster.clone());
        clusters.insert(e.name.clone(), cluster);
    }
    Ok(())
}
