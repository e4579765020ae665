//! `mooring app …`: Argo CD's application commands, against the management cluster.
//!
//! Flags follow `argocd app` so muscle memory carries over (`get --refresh`,
//! `sync --prune --revision`, `wait --sync --health --timeout`, `rollback NAME ID`).
//! Everything goes through the Application objects: `sync` sets `operation`, the
//! controller runs it, and `wait`/`sync` follow its progress in `status`.

use crate::output::{emit, print_table, Output};
use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use mooring_controller::app_rollback::{RollbackRequest, RollbackTo};
use mooring_core::app::{OperationPhase, OperationState};
use mooring_k8s::kube;
use mooring_k8s::kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct Common {
    #[command(flatten)]
    pub management: crate::connect::ManagementArgs,
    /// Namespace of the Application (or ApplicationSet) objects, for those outside the
    /// control plane ("applications in any namespace"; default: the control-plane
    /// namespace). `NAMESPACE/NAME` names one too, as with `argocd app`.
    #[arg(long = "app-namespace", short = 'N', global = true)]
    pub app_namespace: Option<String>,
}

impl Common {
    /// The namespace of the Application objects a command means.
    pub fn app_namespace<'a>(&'a self, m: &'a crate::connect::Management) -> &'a str {
        self.app_namespace.as_deref().unwrap_or(m.namespace())
    }
}

#[derive(Subcommand, Debug)]
pub enum AppCommand {
    /// Create (or update) Applications from a manifest file.
    Create {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// List applications.
    List {
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show an application, its resources and conditions.
    Get {
        name: String,
        /// Ask the controller to compare with Git now.
        #[arg(long)]
        refresh: bool,
        /// Compare with Git now, rendering every source anew (no manifest cache).
        #[arg(long)]
        hard_refresh: bool,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show the differences between Git and the cluster (exit 1 when there are any).
    Diff { name: String },
    /// Print the rendered manifests of the app's target revision (every source).
    Manifests {
        name: String,
        #[arg(long)]
        revision: Option<String>,
        #[command(flatten)]
        sources: SourceRevisions,
    },
    /// Sync an application to its target (or a given) revision.
    Sync {
        name: String,
        /// Delete resources no longer in Git.
        #[arg(long)]
        prune: bool,
        #[arg(long)]
        revision: Option<String>,
        #[command(flatten)]
        sources: SourceRevisions,
        /// Sync the manifests rendered from this local directory (a directory of
        /// manifests or a kustomization) instead of Git's, as `argocd app sync --local`.
        /// Refused while automated sync is on; the app shows OutOfSync with Git after.
        #[arg(long, conflicts_with_all = ["revision", "revisions"])]
        local: Option<PathBuf>,
        /// Return once the operation is requested.
        #[arg(long = "async")]
        no_wait: bool,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Wait until an application is synced / healthy / done operating.
    Wait {
        name: String,
        #[arg(long)]
        sync: bool,
        #[arg(long)]
        health: bool,
        #[arg(long)]
        operation: bool,
        /// Seconds (0 = forever).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    /// Deployment history.
    History {
        name: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Sync back to a history entry (refused while automated sync is on).
    /// Roll back to a history entry (`ID`) or a commit (`--revision`), then verify: exit 0
    /// only when the app is at that revision, applied and Healthy (else exit 1 naming what
    /// is wrong); shows the destination's pods and records `RollbackCompleted` /
    /// `RollbackFailed` (and POSTs `rollback_completed` / `rollback_failed` to
    /// `--notify-webhook`).
    Rollback {
        name: String,
        /// The history entry (`mooring app history NAME`).
        #[arg(required_unless_present = "revision", conflicts_with = "revision")]
        id: Option<i64>,
        /// A commit of the app's source instead of a history entry.
        #[arg(long)]
        revision: Option<String>,
        #[arg(long)]
        prune: bool,
        /// Seconds to wait for the app to be at the revision and Healthy.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Monitoring webhook that gets the outcome as JSON (`event`, `application`,
        /// `from_revision`, `to_revision`, `timestamp`); checked against the admin's
        /// outbound allowlist like every user URL.
        #[arg(long, env = "MOORING_ROLLBACK_WEBHOOK")]
        notify_webhook: Option<String>,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Delete an application (and, with --cascade, its resources).
    Delete {
        name: String,
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        cascade: bool,
    },
}

/// Revisions of chosen sources of a multi-source application (`spec.sources`), as
/// `argocd app sync --revisions R --source-positions N`.
#[derive(Args, Debug, Default)]
pub struct SourceRevisions {
    /// Revision for the source at the matching --source-positions (repeatable; only for
    /// applications with spec.sources).
    #[arg(long = "revisions")]
    pub revisions: Vec<String>,
    /// 1-based position in spec.sources of the source each --revisions applies to.
    #[arg(long = "source-positions")]
    pub positions: Vec<i64>,
}

/// The revisions `app` is asked to use: `--revision` for a single-source app, or
/// `--revisions`/`--source-positions` for one with `spec.sources` (the rule is
/// [`mooring_core::app::requested_revisions`]).
fn requested(
    app: &Value,
    revision: Option<&str>,
    sources: &SourceRevisions,
) -> anyhow::Result<mooring_core::app::Revisions> {
    let typed: mooring_core::app::Application =
        serde_json::from_value(app.clone()).context("reading the Application")?;
    Ok(mooring_core::app::requested_revisions(
        &typed,
        revision,
        &sources.revisions,
        &sources.positions,
    )?)
}

/// The revision(s) of a `revision`/`revisions` object, short, comma-separated.
fn short_revisions(v: &Value) -> String {
    mooring_core::app::Revisions::of(v)
        .commits()
        .iter()
        .map(|c| c.chars().take(7).collect::<String>())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn apps(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &mooring_k8s::resources::application_resource(),
    )
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

pub(crate) async fn get_app(api: &Api<DynamicObject>, name: &str) -> anyhow::Result<Value> {
    let o = api
        .get_opt(name)
        .await
        .with_context(|| format!("reading application {name}"))?
        .with_context(|| format!("application {name:?} not found (see `mooring app list`)"))?;
    Ok(serde_json::to_value(o)?)
}

fn automated(app: &Value) -> bool {
    app.pointer("/spec/syncPolicy/automated")
        .is_some_and(|a| !a.is_null())
}

/// The Applications API of the namespace an app reference (`NAME` or `NAMESPACE/NAME`)
/// names, and the bare name.
pub(crate) fn app_ref<'a>(
    client: &kube::Client,
    default_namespace: &'a str,
    reference: &'a str,
) -> (Api<DynamicObject>, &'a str) {
    let (ns, name) = mooring_core::app::qualified_name(reference, default_namespace);
    (apps(client, ns), name)
}

pub async fn run(cmd: AppCommand, common: Common) -> anyhow::Result<ExitCode> {
    let m = crate::connect::connect(&common.management).await?;
    let client = m.client.clone();
    let default_ns = common.app_namespace(&m).to_string();
    match cmd {
        AppCommand::Create { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let docs = mooring_core::yaml::parse_all(&text)
                .with_context(|| format!("parsing {}", file.display()))?;
            let mut n = 0;
            for d in docs.into_iter().filter(|d| d["kind"] == "Application") {
                let name = s(&d, "/metadata/name").to_string();
                let ns = d
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(&default_ns)
                    .to_string();
                if !m.control_plane.namespace_enabled(&ns) {
                    eprintln!(
                        "warning: Application {ns}/{name} will be ignored by the controller: {}",
                        mooring_controller::ignored_reason(&m.control_plane, &ns)
                    );
                }
                apps(&client, &ns)
                    .patch(
                        &name,
                        &PatchParams::apply("mooring-cli").force(),
                        &Patch::Apply(&d),
                    )
                    .await
                    .with_context(|| format!("creating application {name}"))?;
                println!("application.argoproj.io/{name} created");
                n += 1;
            }
            if n == 0 {
                bail!("{} contains no Application", file.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        AppCommand::List { output } => {
            // `-N NS`: that namespace; otherwise every namespace the control plane reads.
            let list = match &common.app_namespace {
                Some(ns) => apps(&client, ns).list(&Default::default()).await,
                None => {
                    Api::<DynamicObject>::all_with(
                        client.clone(),
                        &mooring_k8s::resources::application_resource(),
                    )
                    .list(&Default::default())
                    .await
                }
            }
            .context("listing applications")?;
            let items: Vec<Value> = list
                .items
                .into_iter()
                .filter(|o| {
                    common.app_namespace.is_some()
                        || m.control_plane
                            .namespace_enabled(o.metadata.namespace.as_deref().unwrap_or_default())
                })
                .filter_map(|o| serde_json::to_value(o).ok())
                .collect();
            if output != Output::Table {
                return emit(&Value::Array(items), output).map(|_| ExitCode::SUCCESS);
            }
            let mut rows = vec![[
                "NAME",
                "CLUSTER",
                "NAMESPACE",
                "PROJECT",
                "STATUS",
                "HEALTH",
                "SYNCPOLICY",
                "REVISION",
            ]
            .map(String::from)
            .to_vec()];
            for a in &items {
                rows.push(vec![
                    m.control_plane
                        .qualified_name(s(a, "/metadata/namespace"), s(a, "/metadata/name")),
                    s(a, "/spec/destination/server").to_string() + s(a, "/spec/destination/name"),
                    s(a, "/spec/destination/namespace").into(),
                    s(a, "/spec/project").into(),
                    s(a, "/status/sync/status").into(),
                    s(a, "/status/health/status").into(),
                    if automated(a) {
                        "Auto".into()
                    } else {
                        "Manual".into()
                    },
                    a.pointer("/status/sync")
                        .map(short_revisions)
                        .unwrap_or_default(),
                ]);
            }
            print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        AppCommand::Get {
            name,
            refresh,
            hard_refresh,
            output,
        } => {
            let (api, name) = app_ref(&client, &default_ns, &name);
            if refresh || hard_refresh {
                let level = if hard_refresh { "hard" } else { "normal" };
                // Full precision: the value only has to change on every request.
                let stamp = mooring_core::time::now().to_string();
                api.patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"annotations": {
                        mooring_controller::reconcile::REFRESH_ANNOTATION: level,
                        "mooring.dev/refresh": stamp,
                    }}})),
                )
                .await
                .with_context(|| format!("requesting a refresh of {name}"))?;
                tokio::time::sleep(Duration::from_millis(800)).await;
            }
            let a = get_app(&api, name).await?;
            if output != Output::Table {
                return emit(&a, output).map(|_| ExitCode::SUCCESS);
            }
            println!(
                "Name:           {}",
                m.control_plane
                    .qualified_name(s(&a, "/metadata/namespace"), s(&a, "/metadata/name"))
            );
            let app_ns = s(&a, "/metadata/namespace");
            if !m.control_plane.namespace_enabled(app_ns) {
                println!(
                    "Ignored:        {}",
                    mooring_controller::ignored_reason(&m.control_plane, app_ns)
                );
            }
            println!("Project:        {}", s(&a, "/spec/project"));
            println!(
                "Server:         {}{}",
                s(&a, "/spec/destination/server"),
                s(&a, "/spec/destination/name")
            );
            println!("Namespace:      {}", s(&a, "/spec/destination/namespace"));
            let multi = a
                .pointer("/spec/sources")
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty());
            match multi {
                None => {
                    println!("Repo:           {}", s(&a, "/spec/source/repoURL"));
                    println!("Target:         {}", s(&a, "/spec/source/targetRevision"));
                    println!("Path:           {}", s(&a, "/spec/source/path"));
                }
                Some(list) => {
                    // One line per source with the commit it was compared at.
                    let revisions = a
                        .pointer("/status/sync/revisions")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    println!("Sources:");
                    for (i, src) in list.iter().enumerate() {
                        let mut line = format!(
                            "  {}. {} @ {}",
                            i + 1,
                            s(src, "/repoURL"),
                            match s(src, "/targetRevision") {
                                "" => "HEAD",
                                t => t,
                            }
                        );
                        if !s(src, "/path").is_empty() {
                            line.push_str(&format!("  path {}", s(src, "/path")));
                        }
                        if !s(src, "/ref").is_empty() {
                            line.push_str(&format!("  ref {}", s(src, "/ref")));
                        }
                        if let Some(r) = revisions.get(i).and_then(Value::as_str) {
                            line.push_str(&format!(
                                "  ({})",
                                r.chars().take(7).collect::<String>()
                            ));
                        }
                        println!("{line}");
                    }
                }
            }
            println!(
                "Sync Policy:    {}",
                if automated(&a) { "Automated" } else { "Manual" }
            );
            println!(
                "Sync Status:    {} ({})",
                s(&a, "/status/sync/status"),
                a.pointer("/status/sync")
                    .map(short_revisions)
                    .unwrap_or_default()
            );
            println!("Health Status:  {}", s(&a, "/status/health/status"));
            match operation_state(&a) {
                Ok(Some(op)) => println!("Operation:      {} — {}", op.phase, op.message()),
                Ok(None) => {}
                Err(e) => println!("Operation:      {e}"),
            }
            if let Some(conds) = a.pointer("/status/conditions").and_then(Value::as_array) {
                for c in conds {
                    println!("Condition:      {}: {}", s(c, "/type"), s(c, "/message"));
                }
            }
            println!();
            let mut rows = vec![[
                "GROUP",
                "KIND",
                "NAMESPACE",
                "NAME",
                "STATUS",
                "HEALTH",
                "MESSAGE",
            ]
            .map(String::from)
            .to_vec()];
            for r in a
                .pointer("/status/resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                rows.push(vec![
                    s(r, "/group").into(),
                    s(r, "/kind").into(),
                    s(r, "/namespace").into(),
                    s(r, "/name").into(),
                    s(r, "/status").into(),
                    s(r, "/health/status").into(),
                    s(r, "/health/message").into(),
                ]);
            }
            print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        AppCommand::Diff { name } => {
            let (api, name) = app_ref(&client, &default_ns, &name);
            let (ctx, app) = offline(&m, &api, name).await?;
            let cluster = ctx.cluster_for(&app.spec.destination)?;
            let (rev, desired) =
                mooring_controller::state::desired_state(&ctx, &app, &Default::default(), &cluster)
                    .await?;
            let compared =
                mooring_controller::state::compare(&ctx, &app, &cluster, rev, desired).await?;
            let mut differs = false;
            for d in &compared.diffs {
                if d.status == mooring_core::app::SyncStatusCode::OutOfSync {
                    differs = true;
                    println!("===== {} ======", d.key);
                    println!("{}", d.unified);
                }
            }
            Ok(if differs {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        AppCommand::Manifests {
            name,
            revision,
            sources,
        } => {
            let (api, name) = app_ref(&client, &default_ns, &name);
            let a = get_app(&api, name).await?;
            let wanted = requested(&a, revision.as_deref(), &sources)
                .with_context(|| format!("revisions of {name}"))?;
            let (ctx, app) = offline(&m, &api, name).await?;
            let cluster = ctx.cluster_for(&app.spec.destination)?;
            let (_, desired) =
                mooring_controller::state::desired_state(&ctx, &app, &wanted, &cluster).await?;
            for d in desired {
                println!("---");
                print!(
                    "{}",
                    serde_saphyr::to_string(&mooring_engine::diff::mask_secret(&d))?
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AppCommand::Sync {
            name,
            prune,
            revision,
            sources,
            local,
            no_wait,
            timeout,
        } => {
            let (api, name) = app_ref(&client, &default_ns, &name);
            let a = get_app(&api, name).await?;
            let mut sync = json!({"prune": prune});
            if let Some(dir) = &local {
                if automated(&a) {
                    bail!(
                        "cannot sync {name}: {}",
                        mooring_engine::delivery::LOCAL_SYNC_WITH_AUTOMATED
                    );
                }
                if a.pointer("/spec/sources")
                    .is_some_and(|s| s.as_array().is_some_and(|l| !l.is_empty()))
                {
                    bail!("cannot sync {name} with --local: it has several sources (spec.sources)");
                }
                // The same render, export and symlink rule as `mooring deploy`.
                let objects = crate::deploy::render(dir)?;
                let manifests: Vec<String> = objects
                    .iter()
                    .map(serde_json::to_string)
                    .collect::<Result<_, _>>()?;
                sync["manifests"] = json!(manifests);
            } else {
                let wanted = requested(&a, revision.as_deref(), &sources)
                    .with_context(|| format!("cannot sync {name}"))?;
                wanted.write_into(&mut sync);
            }
            let op = json!({"sync": sync, "initiatedBy": {"username": "mooring-cli"}});
            request_operation(&api, name, op).await?;
            if no_wait {
                println!("sync of {name} requested");
                return Ok(ExitCode::SUCCESS);
            }
            let started = operation_id(&a);
            wait_operation(&api, name, &started, timeout).await
        }
        AppCommand::Wait {
            name,
            sync,
            health,
            operation,
            timeout,
        } => {
            let (api, name) = app_ref(&client, &default_ns, &name);
            let (sync, health) = if !sync && !health && !operation {
                (true, true)
            } else {
                (sync, health)
            };
            let start = Instant::now();
            let mut last = String::new();
            loop {
                let a = get_app(&api, name).await?;
                let st = s(&a, "/status/sync/status");
                let he = s(&a, "/status/health/status");
                // The operation's state matters only when waiting for the operation.
                let op = match operation_state(&a) {
                    Ok(state) => state.map(|o| o.phase).unwrap_or_default(),
                    Err(e) if operation => return Err(e),
                    Err(_) => OperationPhase::default(),
                };
                let line = format!("{name}: sync {st:10} health {he:12} operation {op}");
                if line != last {
                    eprintln!("{line}");
                    last = line;
                }
                let ok = (!sync || st == "Synced")
                    && (!health || he == "Healthy")
                    && (!operation
                        || (!op.is_running() && a.get("operation").is_none_or(Value::is_null)));
                if ok {
                    return Ok(ExitCode::SUCCESS);
                }
                if timeout > 0 && start.elapsed() > Duration::from_secs(timeout) {
                    eprintln!("timed out after {timeout}s waiting for {name}; see `mooring app get {name}`");
                    return Ok(ExitCode::from(1));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        AppCommand::History { name, output } => {
            let (api, name) = app_ref(&client, &default_ns, &name);
            let a = get_app(&api, name).await?;
            let h = a.pointer("/status/history").cloned().unwrap_or(json!([]));
            if output != Output::Table {
                return emit(&h, output).map(|_| ExitCode::SUCCESS);
            }
            let mut rows = vec![["ID", "DATE", "REVISION"].map(String::from).to_vec()];
            for e in h.as_array().into_iter().flatten() {
                rows.push(vec![
                    e.get("id").map(Value::to_string).unwrap_or_default(),
                    s(e, "/deployedAt").into(),
                    mooring_core::app::Revisions::of(e).to_string(),
                ]);
            }
            print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        AppCommand::Rollback {
            name,
            id,
            revision,
            prune,
            timeout,
            notify_webhook,
            output,
        } => {
            let (ns, name) = mooring_core::app::qualified_name(&name, &default_ns);
            let to = match (id, revision) {
                (Some(id), _) => RollbackTo::History(id),
                (None, Some(r)) => RollbackTo::Revision(r),
                (None, None) => bail!("give a history ID or --revision"),
            };
            crate::rollback_verify::run(
                &m,
                RollbackRequest {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    to,
                    prune,
                    timeout: Duration::from_secs(timeout),
                    initiator: "mooring-cli".into(),
                },
                notify_webhook.as_deref(),
                output,
            )
            .await
        }
        AppCommand::Delete { name, cascade } => {
            let (api, name) = app_ref(&client, &default_ns, &name);
            if cascade {
                // Added to the finalizers already there (the post-delete ones stay).
                get_app(&api, name).await?;
                mooring_k8s::update_finalizers(&api, name, |list| {
                    mooring_core::app::finalizers_with(
                        list,
                        mooring_controller::reconcile::RESOURCES_FINALIZER,
                    )
                })
                .await
                .with_context(|| format!("marking {name} for cascading deletion"))?;
            }
            api.delete(name, &DeleteParams::default())
                .await
                .with_context(|| format!("deleting {name}"))?;
            println!(
                "application.argoproj.io/{name} deleted{}",
                if cascade {
                    " (its resources are being removed)"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) async fn offline(
    m: &crate::connect::Management,
    api: &Api<DynamicObject>,
    name: &str,
) -> anyhow::Result<(
    std::sync::Arc<mooring_controller::Context>,
    mooring_core::app::Application,
)> {
    let a = get_app(api, name).await?;
    let app: mooring_core::app::Application =
        serde_json::from_value(a).context("reading the Application")?;
    // Settings the running controller was started with (`mooring up` records its
    // repository aliases in the `mooring-cm` ConfigMap, as Argo CD keeps `argocd-cm`).
    let opts =
        crate::connect::offline_options(&m.client, &m.control_plane, "mooring-cli-repos").await;
    Ok((
        mooring_controller::Context::offline(m.client.clone(), opts).await?,
        app,
    ))
}

async fn request_operation(api: &Api<DynamicObject>, name: &str, op: Value) -> anyhow::Result<()> {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"operation": op})),
    )
    .await
    .with_context(|| format!("requesting a sync of {name}"))?;
    Ok(())
}

/// Follow an operation to its end, printing progress; exit 1 when it failed.
async fn wait_operation(
    api: &Api<DynamicObject>,
    name: &str,
    previous_id: &str,
    timeout: u64,
) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let a = get_app(api, name).await?;
        let op = operation_state(&a)?.unwrap_or_default();
        let pending = a.get("operation").is_some_and(|o| !o.is_null());
        // Our operation is the one that started after the request.
        let fresh = op.id() != previous_id;
        let line = format!("{name}: {} {}", op.phase, op.message());
        if fresh && line != last {
            eprintln!("{line}");
            last = line;
        }
        if fresh && !pending && !op.phase.is_running() && !op.phase.is_unset() {
            println!(
                "Operation:  Sync\nPhase:      {}\nMessage:    {}\nRevision:   {}",
                op.phase,
                op.message(),
                op.synced_revisions()
                    .map(|r| r.to_string())
                    .unwrap_or_default()
            );
            return Ok(if op.phase == OperationPhase::Succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        if start.elapsed() > Duration::from_secs(timeout) {
            eprintln!("timed out after {timeout}s; the operation continues (see `mooring app get {name}`)");
            return Ok(ExitCode::from(1));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The app's `status.operationState`, typed (`None` when there is none).
fn operation_state(a: &Value) -> anyhow::Result<Option<OperationState>> {
    Ok(a.pointer("/status/operationState")
        .filter(|v| !v.is_null())
        .map(OperationState::from_value)
        .transpose()?)
}

/// The id of the app's current operation state, empty when there is none. An unreadable
/// state has no id Mooring wrote: the next operation (which replaces it) is a new one.
fn operation_id(a: &Value) -> String {
    match operation_state(a) {
        Ok(state) => state.map(|o| o.id().to_string()).unwrap_or_default(),
        Err(e) => {
            eprintln!("warning: {e}");
            String::new()
        }
    }
}
