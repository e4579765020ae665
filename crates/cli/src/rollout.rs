//! `mooring rollout …`: the `kubectl argo rollouts` commands, against any cluster.
//!
//! Every command acts on the public fields of Argo Rollouts' objects, exactly as the
//! kubectl plugin and Argo CD's Rollout actions do, so the rollout controller (Mooring's
//! or Argo's own) cannot tell who asked:
//!
//! | command | effect |
//! |---|---|
//! | `promote` | `spec.paused: false` when paused by a user; else clears `status.pauseConditions` (the controller moves past the pause); else, on a canary, skips the current step (`status.currentStepIndex + 1`) |
//! | `promote --full` | `status.promoteFull: true`: every remaining step, analysis and pause is skipped |
//! | `abort` / `retry` | `status.abort: true` / `false` |
//! | `pause` | `spec.paused: true` |
//! | `undo [--to-revision N]` | `spec.template` := the pod template of the ReplicaSet of revision N (default: the previous one), without its `rollouts-pod-template-hash` label |
//! | `set-image CONTAINER=IMAGE…` | the containers' images (`*` is every container) |
//!
//! Status fields are merge-patched through the `status` subresource. `undo` and
//! `set-image` send one merge patch computed from the object as read and naming its
//! `resourceVersion`, so a concurrent edit makes the API server refuse it (409) instead
//! of anything being half-applied; an unknown container or revision changes nothing. `--cluster NAME` targets a destination cluster registered as an Argo CD
//! cluster Secret in the management cluster; without it the management cluster itself
//! is used (`--kubeconfig`, `$KUBECONFIG`, then the one `mooring up` wrote).
//!
//! `get`, `list`, `watch` and `status` summarise a Rollout the way the plugin does (status icon,
//! step, set and actual weight, images of the stable and canary ReplicaSets, replica
//! counts, then the ReplicaSets by revision with their pods and AnalysisRuns). The summary
//! is `mooring_engine::rollout::status::RolloutView` (what `-o json|yaml` prints); the
//! patches are `mooring_engine::rollout::command`'s. This module fetches the objects,
//! renders the view as the plugin's table and runs the watch loop. Exit codes:
//! 0 ok; 1 when `watch`/`status` end on a Degraded or aborted rollout or time out; 2 for usage
//! and runtime errors, including a command that has nothing to act on (aborting a
//! rollout that is fully promoted, retrying one that is not aborted).

use crate::output::{emit, print_table, Output};
use anyhow::{bail, Context as _};
use futures::StreamExt as _;
use mooring_k8s::kube::{
    self,
    api::{Api, DynamicObject, ListParams, Patch, PatchParams},
};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mooring_controller::rollout_tree::RolloutTree;
use mooring_engine::rollout::command;
use mooring_engine::rollout::status::{
    self, Outcome, ReplicaSetState, Role, RolloutView, Strategy,
};

#[derive(clap::Args, Debug)]
pub struct RolloutCommon {
    /// Kubeconfig of the management cluster (default: $KUBECONFIG, then the one `mooring up` wrote).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the Rollout.
    #[arg(short = 'n', long, global = true, default_value = "default")]
    pub namespace: String,
    /// A destination cluster registered in the management cluster (its name or server
    /// URL, as `mooring cluster list` shows them); default: the management cluster.
    #[arg(long, global = true)]
    pub cluster: Option<String>,
    /// The control-plane namespace, where the cluster Secrets of `--cluster` live
    /// (default: the kubeconfig context's namespace, then argocd).
    #[arg(
        long = "control-plane-namespace",
        global = true,
        env = "MOORING_NAMESPACE"
    )]
    pub control_plane_namespace: Option<String>,
}

impl RolloutCommon {
    fn management(&self) -> crate::connect::ManagementArgs {
        crate::connect::ManagementArgs {
            kubeconfig: self.kubeconfig.clone(),
            namespace: self.control_plane_namespace.clone(),
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum RolloutCommand {
    /// List the rollouts of the namespace (`list rollouts` works too).
    List {
        /// Optional `rollouts`, as in `kubectl argo rollouts list rollouts`.
        #[arg(value_parser = ["rollouts", "rollout", "ro"], hide = true)]
        kind: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show a rollout: status, step, weights, images, replicas, ReplicaSets with their
    /// pods, AnalysisRuns (`get rollout NAME` works too).
    Get {
        /// NAME, or `rollout NAME`.
        #[arg(num_args = 1..=2, required = true, value_name = "NAME")]
        args: Vec<String>,
        /// Keep printing it on every change, as `watch`.
        #[arg(short, long)]
        watch: bool,
        /// With --watch: give up after this long (`90`, `90s`, `5m`, `1h`; 0 = never).
        #[arg(long, default_value = "0", value_parser = parse_duration)]
        timeout: u64,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Print the rollout again on every change until it is Healthy and fully promoted
    /// (exit 0) or Degraded/aborted (exit 1). `-o json` prints one JSON line per change.
    Watch {
        name: String,
        /// Give up after this long (`90`, `90s`, `5m`, `1h`; 0 = never); exit 1.
        #[arg(long, default_value = "0", value_parser = parse_duration)]
        timeout: u64,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// One line per status change (`Paused - CanaryPauseStep`) until the rollout is
    /// Healthy and fully promoted (exit 0) or Degraded/aborted (exit 1).
    Status {
        name: String,
        /// Give up after this long (`90`, `90s`, `5m`, `1h`; 0 = never); exit 1.
        #[arg(long, default_value = "0", value_parser = parse_duration)]
        timeout: u64,
    },
    /// Resume a paused rollout, or skip the current step.
    Promote {
        name: String,
        /// Skip every remaining step, analysis and pause.
        #[arg(long)]
        full: bool,
    },
    /// Abort the update: traffic and replicas go back to the stable version.
    Abort { name: String },
    /// Retry an aborted rollout.
    Retry { name: String },
    /// Pause the rollout (`promote` resumes it).
    Pause { name: String },
    /// Roll back to the pod template of an earlier revision.
    Undo {
        name: String,
        /// The revision to go back to (default: the previous one).
        #[arg(long = "to-revision")]
        to_revision: Option<i64>,
    },
    /// Update container images: `CONTAINER=IMAGE` (repeatable; `*=IMAGE` for every container).
    SetImage {
        name: String,
        #[arg(required = true, value_parser = parse_image)]
        images: Vec<(String, String)>,
    },
}

/// Seconds, or a number with `s`, `m` or `h` (one home: `mooring_core::time`).
fn parse_duration(s: &str) -> Result<u64, String> {
    mooring_core::time::parse_whole_seconds(s, mooring_core::time::UP_TO_HOURS).ok_or_else(|| {
        format!("expected a duration like 90, 90s, 5m or 1h (at most 2^64 s), got {s:?}")
    })
}

fn parse_image(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((c, i)) if !c.is_empty() && !i.is_empty() && !i.chars().any(char::is_whitespace) => {
            Ok((c.to_string(), i.to_string()))
        }
        _ => Err(format!("expected CONTAINER=IMAGE (or *=IMAGE), got {s:?}")),
    }
}

/// The client of the cluster the command targets.
async fn target_client(common: &RolloutCommon) -> anyhow::Result<kube::Client> {
    let m = crate::connect::connect(&common.management()).await?;
    crate::connect::destination(&m, common.cluster.as_deref()).await
}

struct Ctx {
    client: kube::Client,
    ns: String,
}

impl Ctx {
    fn rollouts(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.ns,
            &mooring_k8s::resources::rollout_resource(),
        )
    }

    async fn list_rollouts(&self) -> anyhow::Result<Vec<Value>> {
        match self.rollouts().list(&ListParams::default()).await {
            Ok(l) => l
                .items
                .into_iter()
                .map(|o| Ok(serde_json::to_value(o)?))
                .collect(),
            Err(kube::Error::Api(e)) if e.code == 404 => bail!(
                "this cluster serves no argoproj.io Rollouts: install the Argo Rollouts CRDs (`mooring crds | kubectl apply -f -`)"
            ),
            Err(e) => Err(e).context("listing rollouts"),
        }
    }

    async fn list_all_rollouts(&self) -> anyhow::Result<Vec<Value>> {
        let api: Api<DynamicObject> = Api::all_with(
            self.client.clone(),
            &mooring_k8s::resources::rollout_resource(),
        );
        match api.list(&ListParams::default()).await {
            Ok(l) => l
                .items
                .into_iter()
                .map(|o| Ok(serde_json::to_value(o)?))
                .collect(),
            Err(kube::Error::Api(e)) if e.code == 404 => bail!(
                "this cluster serves no argoproj.io Rollouts: install the Argo Rollouts CRDs (`mooring crds | kubectl apply -f -`)"
            ),
            Err(e) => Err(e).context("listing rollouts"),
        }
    }

    async fn get_rollout(&self, name: &str) -> anyhow::Result<Value> {
        match self.rollouts().get_opt(name).await {
            Ok(Some(o)) => Ok(serde_json::to_value(o)?),
            Ok(None) => {
                let names: Vec<String> = self
                    .list_rollouts()
                    .await?
                    .iter()
                    .filter_map(|r| r.pointer("/metadata/name")?.as_str().map(str::to_string))
                    .collect();
                bail!(
                    "rollout {name:?} not found in namespace {ns}; {others}",
                    ns = self.ns,
                    others = if names.is_empty() {
                        "there are no rollouts there (pick another with -n NAMESPACE)".to_string()
                    } else {
                        format!("rollouts there: {}", names.join(", "))
                    }
                )
            }
            Err(kube::Error::Api(e)) if e.code == 404 => bail!(
                "this cluster serves no argoproj.io Rollouts: install the Argo Rollouts CRDs (`mooring crds | kubectl apply -f -`)"
            ),
            Err(e) => Err(e).with_context(|| format!("reading rollout {name}")),
        }
    }

    /// The rollout with its ReplicaSets, their pods and its AnalysisRuns.
    async fn tree(&self, rollout: Value) -> anyhow::Result<RolloutTree> {
        RolloutTree::read(&self.client, rollout)
            .await
            .context("reading the rollout's ReplicaSets, pods and AnalysisRuns")
    }
}

/// The plugin's status icon of a phase.
fn icon(phase: &str) -> &'static str {
    match phase {
        "Healthy" | "Successful" => "✔",
        "Paused" | "Suspended" => "॥",
        "Degraded" | "Failed" | "Error" => "✖",
        "Progressing" | "Pending" | "Running" => "◌",
        _ => "⚠",
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}

fn tags(tags: &[Role]) -> Vec<&'static str> {
    tags.iter().map(|t| t.as_str()).collect()
}

/// The plugin's `get rollout` view.
fn render(info: &RolloutView) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let status = info.status.as_str();
    let message = info.message.as_str();
    let row = |out: &mut String, k: &str, v: &str| {
        let key = if k.is_empty() {
            String::new()
        } else {
            format!("{k}:")
        };
        let _ = writeln!(out, "{}", format!("{key:<17}{v}").trim_end());
    };
    row(&mut out, "Name", &info.name);
    row(&mut out, "Namespace", &info.namespace);
    let mut st = format!("{} {status}", icon(status));
    if !message.is_empty() {
        let _ = write!(st, "\n{:<17}{message}", "Message:");
    }
    row(&mut out, "Status", &st);
    row(&mut out, "Strategy", info.strategy.as_str());
    if info.strategy == Strategy::Canary {
        if let Some(step) = &info.step {
            row(&mut out, "  Step", step);
        }
        row(&mut out, "  SetWeight", &opt(info.set_weight));
        row(&mut out, "  ActualWeight", &opt(info.actual_weight));
    }
    let images: Vec<String> = info
        .images
        .iter()
        .map(|img| {
            let tags: Vec<String> = img
                .tags
                .iter()
                .map(|t| format!("({})", t.as_str()))
                .collect();
            format!("{} {}", img.image, tags.join(", "))
                .trim_end()
                .to_string()
        })
        .collect();
    for (n, img) in images.iter().enumerate() {
        row(&mut out, if n == 0 { "Images" } else { "" }, img);
    }
    let r = &info.replicas;
    row(&mut out, "Replicas", "");
    for (label, n) in [
        ("  Desired", r.desired),
        ("  Current", r.current),
        ("  Updated", r.updated),
        ("  Ready", r.ready),
        ("  Available", r.available),
    ] {
        row(&mut out, label, &n.to_string());
    }
    out.push('\n');
    let mut lines: Vec<[String; 4]> = vec![
        ["NAME".into(), "KIND".into(), "STATUS".into(), "INFO".into()],
        [
            format!("⟳ {}", info.name),
            "Rollout".into(),
            format!("{} {status}", icon(status)),
            String::new(),
        ],
    ];
    // Revisions, newest first, with their ReplicaSet, pods and AnalysisRuns.
    let mut revisions: Vec<Option<i64>> = info
        .replica_sets
        .iter()
        .map(|rs| rs.revision)
        .chain(info.analysis_runs.iter().map(|a| a.revision))
        .collect();
    revisions.sort_by_key(|r| std::cmp::Reverse(*r));
    revisions.dedup();
    let count = revisions.len();
    for (n, rev) in revisions.iter().enumerate() {
        let last = n + 1 == count;
        let (branch, indent) = if last {
            ("└──", "   ")
        } else {
            ("├──", "│  ")
        };
        lines.push([
            format!(
                "{branch}# revision:{}",
                rev.map_or("?".to_string(), |r| r.to_string())
            ),
            String::new(),
            String::new(),
            String::new(),
        ]);
        let mut children: Vec<(String, &str, String, String)> = Vec::new();
        let mut pods_of: Vec<Vec<(String, String)>> = Vec::new();
        for rs in info.replica_sets.iter().filter(|rs| rs.revision == *rev) {
            let tags = tags(&rs.tags);
            let (desired, ready) = (rs.desired, rs.ready);
            let st = match rs.state() {
                ReplicaSetState::ScaledDown => "• ScaledDown",
                ReplicaSetState::Healthy => "✔ Healthy",
                ReplicaSetState::Progressing => "◌ Progressing",
            }
            .to_string();
            children.push((
                format!("⧉ {}", rs.name),
                "ReplicaSet",
                st,
                format!(
                    "{}{ready}/{desired} ready",
                    if tags.is_empty() {
                        String::new()
                    } else {
                        format!("{} ", tags.join(","))
                    }
                ),
            ));
            pods_of.push(
                rs.pods
                    .iter()
                    .map(|p| {
                        (
                            p.name.clone(),
                            if p.ready {
                                "✔ Running".to_string()
                            } else {
                                format!("◌ {}", p.phase)
                            },
                        )
                    })
                    .collect(),
            );
        }
        for ar in info.analysis_runs.iter().filter(|ar| ar.revision == *rev) {
            let mut counts = Vec::new();
            for (c, sym) in [
                (ar.successful, "✔"),
                (ar.failed, "✖"),
                (ar.error, "⚠"),
                (ar.inconclusive, "?"),
            ] {
                if c > 0 {
                    counts.push(format!("{sym} {c}"));
                }
            }
            children.push((
                format!("α {}", ar.name),
                "AnalysisRun",
                format!("{} {}", icon(&ar.phase), ar.phase),
                counts.join(","),
            ));
            pods_of.push(vec![]);
        }
        let kids = children.len();
        for (k, ((name, kind, st, extra), pods)) in children.iter().zip(&pods_of).enumerate() {
            let last_kid = k + 1 == kids;
            let b = if last_kid { "└──" } else { "├──" };
            lines.push([
                format!("{indent}{b}{name}"),
                kind.to_string(),
                st.clone(),
                extra.clone(),
            ]);
            let sub = if last_kid { "   " } else { "│  " };
            for (p, (pod, pst)) in pods.iter().enumerate() {
                let pb = if p + 1 == pods.len() {
                    "└──"
                } else {
                    "├──"
                };
                lines.push([
                    format!("{indent}{sub}{pb}□ {pod}"),
                    "Pod".into(),
                    pst.clone(),
                    String::new(),
                ]);
            }
        }
    }
    let width = |c: usize| {
        lines
            .iter()
            .filter(|l| !l[1].is_empty())
            .map(|l| l[c].chars().count())
            .max()
            .unwrap_or(0)
            + 2
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    for l in &lines {
        let line = if l[1].is_empty() {
            l[0].clone()
        } else {
            format!("{:<w0$}{:<w1$}{:<w2$}{}", l[0], l[1], l[2], l[3])
        };
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

fn list_row(info: &RolloutView) -> Vec<String> {
    let r = &info.replicas;
    vec![
        info.namespace.clone(),
        info.name.clone(),
        info.strategy.as_str().to_string(),
        info.status.clone(),
        opt(info.step.as_ref()),
        opt(info.set_weight),
        format!("{}/{}", r.ready, r.current),
        r.desired.to_string(),
        r.updated.to_string(),
        r.available.to_string(),
    ]
}

pub async fn run(cmd: RolloutCommand, common: RolloutCommon) -> anyhow::Result<ExitCode> {
    let ctx = Ctx {
        client: target_client(&common).await?,
        ns: common.namespace.clone(),
    };
    match cmd {
        RolloutCommand::List {
            kind: _,
            all_namespaces,
            output,
        } => {
            let mut infos = Vec::new();
            let rollouts = if all_namespaces {
                ctx.list_all_rollouts().await?
            } else {
                ctx.list_rollouts().await?
            };
            for r in &rollouts {
                infos.push(RolloutView::of(r));
            }
            match output {
                Output::Table => {
                    if infos.is_empty() {
                        if all_namespaces {
                            eprintln!("no rollouts in any namespace");
                        } else {
                            eprintln!("no rollouts in namespace {}", ctx.ns);
                        }
                        return Ok(ExitCode::SUCCESS);
                    }
                    let mut rows = vec![[
                        "NAMESPACE",
                        "NAME",
                        "STRATEGY",
                        "STATUS",
                        "STEP",
                        "SET-WEIGHT",
                        "READY",
                        "DESIRED",
                        "UP-TO-DATE",
                        "AVAILABLE",
                    ]
                    .map(String::from)
                    .to_vec()];
                    rows.extend(infos.iter().map(list_row));
                    if !all_namespaces {
                        for r in &mut rows {
                            r.remove(0);
                        }
                    }
                    print_table(&rows);
                }
                o => emit(&serde_json::to_value(&infos)?, o)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Get {
            args,
            watch: keep_watching,
            timeout,
            output,
        } => {
            let name = match args.as_slice() {
                [name] => name.clone(),
                [kind, name] if matches!(kind.as_str(), "rollout" | "rollouts" | "ro") => {
                    name.clone()
                }
                [kind, _] => bail!(
                    "`get {kind} NAME`: only rollouts can be shown (`mooring rollout get NAME`)"
                ),
                _ => bail!("`mooring rollout get NAME`"),
            };
            if keep_watching {
                return watch(&ctx, &name, timeout, output).await;
            }
            let r = ctx.get_rollout(&name).await?;
            let info = ctx.tree(r).await?.view();
            match output {
                Output::Table => print!("{}", render(&info)),
                o => emit(&serde_json::to_value(&info)?, o)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Watch {
            name,
            timeout,
            output,
        } => watch(&ctx, &name, timeout, output).await,
        RolloutCommand::Status { name, timeout } => status(&ctx, &name, timeout).await,
        RolloutCommand::Promote { name, full } => {
            let r = ctx.get_rollout(&name).await?;
            let (spec, status) = command::promote_patches(&r, full)?;
            apply_patches(&ctx, &name, spec, status).await?;
            println!(
                "rollout '{name}' {}",
                if full { "fully promoted" } else { "promoted" }
            );
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Abort { name } => {
            let r = ctx.get_rollout(&name).await?;
            apply_patches(&ctx, &name, None, Some(command::abort_patch(&r)?)).await?;
            println!("rollout '{name}' aborted");
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Retry { name } => {
            let r = ctx.get_rollout(&name).await?;
            apply_patches(&ctx, &name, None, Some(command::retry_patch(&r)?)).await?;
            println!("rollout '{name}' retried");
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Pause { name } => {
            ctx.get_rollout(&name).await?;
            apply_patches(&ctx, &name, Some(command::pause_patch()), None).await?;
            println!("rollout '{name}' paused");
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Undo { name, to_revision } => {
            let r = ctx.get_rollout(&name).await?;
            let tree = ctx.tree(r).await?;
            let (revision, patch) =
                command::undo_patch(&tree.rollout, &tree.replica_sets, to_revision)?;
            ctx.rollouts()
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .with_context(|| format!("updating rollout {name}"))?;
            println!("rollout '{name}' undo: pod template of revision {revision}");
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::SetImage { name, images } => {
            let r = ctx.get_rollout(&name).await?;
            let patch = command::set_image_patch(&r, &images)?;
            ctx.rollouts()
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .with_context(|| format!("updating rollout {name}"))?;
            println!("rollout '{name}' image updated");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn apply_patches(
    ctx: &Ctx,
    name: &str,
    spec: Option<Value>,
    status: Option<Value>,
) -> anyhow::Result<()> {
    let api = ctx.rollouts();
    if let Some(p) = status {
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&p))
            .await
            .with_context(|| format!("updating the status of rollout {name}"))?;
    }
    if let Some(p) = spec {
        api.patch(name, &PatchParams::default(), &Patch::Merge(&p))
            .await
            .with_context(|| format!("updating rollout {name}"))?;
    }
    Ok(())
}

/// How `watch` and `status` print each change.
#[derive(Clone, Copy, PartialEq)]
enum Follow {
    View(Output),
    StatusLines,
}

async fn watch(ctx: &Ctx, name: &str, timeout: u64, output: Output) -> anyhow::Result<ExitCode> {
    follow(ctx, name, timeout, Follow::View(output)).await
}

async fn status(ctx: &Ctx, name: &str, timeout: u64) -> anyhow::Result<ExitCode> {
    follow(ctx, name, timeout, Follow::StatusLines).await
}

/// Follows the Rollout through a watch (which resumes by itself after a dropped
/// connection), and re-reads its ReplicaSets and AnalysisRuns every two seconds between
/// Rollout events so that pods turning ready show up too. Prints only what changed.
async fn follow(ctx: &Ctx, name: &str, timeout: u64, mode: Follow) -> anyhow::Result<ExitCode> {
    use kube::runtime::watcher;
    // Not found → the helpful error, before waiting for anything.
    let mut current = ctx.get_rollout(name).await?;
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(ctx.rollouts(), config).boxed();
    let deadline =
        (timeout > 0).then(|| tokio::time::Instant::now() + Duration::from_secs(timeout));
    let mut refresh = tokio::time::interval(Duration::from_secs(2));
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_view = String::new();
    let mut first = true;
    loop {
        if !first {
            let timed_out = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = timed_out => {
                    eprintln!(
                        "timed out after {timeout}s following rollout {name}; see `mooring rollout get {name} -n {}`",
                        ctx.ns
                    );
                    return Ok(ExitCode::from(1));
                }
                _ = refresh.tick(), if matches!(mode, Follow::View(_)) => {}
                next = stream.next() => match next {
                    None => bail!("the watch on rollout {name} ended"),
                    Some(Err(e)) => {
                        tracing::debug!("watch error (the watcher retries): {e}");
                        continue;
                    }
                    Some(Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => {
                        current = serde_json::to_value(o)?;
                    }
                    Some(Ok(watcher::Event::Delete(_))) => bail!("rollout {name} was deleted"),
                    Some(Ok(_)) => continue,
                },
            }
        }
        first = false;
        let done = status::finished(&current);
        let (view, info) = match mode {
            Follow::View(output) => {
                let info = ctx.tree(current.clone()).await?.view();
                let view = match output {
                    Output::Table => render(&info),
                    Output::Json => format!("{}\n", serde_json::to_value(&info)?),
                    Output::Yaml => {
                        format!(
                            "---\n{}",
                            serde_saphyr::to_string(&serde_json::to_value(&info)?)?
                        )
                    }
                };
                (view, info)
            }
            Follow::StatusLines => {
                let info = RolloutView::of(&current);
                let line = if info.message.is_empty() {
                    format!("{}\n", info.status)
                } else {
                    format!("{} - {}\n", info.status, info.message)
                };
                (line, info)
            }
        };
        if view != last_view {
            if mode == Follow::View(Output::Table) && !last_view.is_empty() {
                println!();
            }
            print!("{view}");
            last_view = view;
        }
        match done {
            Some(Outcome::Promoted) => return Ok(ExitCode::SUCCESS),
            Some(Outcome::Failed) => {
                let message = info.message.as_str();
                eprintln!(
                    "rollout {name} is {}: {}",
                    info.status,
                    match (message.is_empty(), info.abort) {
                        (false, _) => message,
                        (true, true) => "aborted",
                        (true, false) => "no message",
                    }
                );
                return Ok(ExitCode::from(1));
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mooring_core::rollout::{POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION};
    use serde_json::json;

    fn rollout(status: Value) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "ml-model-serving", "namespace": "ml", "generation": 2,
                         "annotations": {REVISION_ANNOTATION: "2"}},
            "spec": {
                "replicas": 4,
                "template": {"metadata": {"labels": {"app": "m"}},
                             "spec": {"containers": [{"name": "server", "image": "m:2"}],
                                      "initContainers": [{"name": "fetch", "image": "f:1"}]}},
                "strategy": {"canary": {"steps": [
                    {"setWeight": 10}, {"pause": {}}, {"analysis": {}}, {"setWeight": 50}, {"pause": {"duration": "1m"}}
                ]}},
            },
            "status": status,
        })
    }

    #[test]
    fn merge_diff_round_trips() {
        let from = json!({"metadata": {"labels": {"a": "1", "h": "x"}, "annotations": {"k": "v"}},
                          "spec": {"containers": [{"name": "s", "image": "1"}]}});
        let to = json!({"metadata": {"labels": {"a": "1"}},
                        "spec": {"containers": [{"name": "s", "image": "0"}], "nodeName": "n"}});
        let d = mooring_core::merge_patch::diff(&from, &to);
        let mut applied = from.clone();
        mooring_core::merge_patch::apply(&mut applied, &d);
        assert_eq!(applied, to);
    }

    /// The summary's rules are tested in `mooring_engine::rollout::status`; here, that the
    /// view of a paused canary renders its icon, images and revision tree.
    #[test]
    fn render_shows_status_images_and_revisions() {
        let r = rollout(json!({
            "observedGeneration": "2", "phase": "Paused", "message": "CanaryPauseStep",
            "currentStepIndex": 1, "stableRS": "a", "currentPodHash": "b",
            "replicas": 5, "updatedReplicas": 1, "readyReplicas": 5, "availableReplicas": 5,
            "pauseConditions": [{"reason": "CanaryPauseStep"}],
        }));
        let rs = |hash: &str, rev: &str, image: &str, avail: i64| {
            json!({"metadata": {"name": format!("m-{hash}"), "annotations": {REVISION_ANNOTATION: rev},
                                "labels": {POD_TEMPLATE_HASH_LABEL: hash}},
                   "spec": {"replicas": avail, "template": {"spec": {"containers": [{"name": "server", "image": image}]}}},
                   "status": {"replicas": avail, "readyReplicas": avail, "availableReplicas": avail}})
        };
        let tree = RolloutTree {
            rollout: r,
            replica_sets: vec![rs("a", "1", "m:1", 4), rs("b", "2", "m:2", 1)],
            pods: vec![],
            analysis_runs: vec![
                json!({"metadata": {"name": "m-b-2-2", "annotations": {REVISION_ANNOTATION: "2"}},
                "status": {"phase": "Failed", "metricResults": [{"name": "success-rate", "successful": 2, "failed": 1}]}}),
            ],
        };
        let text = render(&tree.view());
        assert!(text.contains("॥ Paused"), "{text}");
        assert!(text.contains("m:2 (canary)"), "{text}");
        assert!(
            text.contains("# revision:2") && text.contains("α m-b-2-2"),
            "{text}"
        );
    }

    /// The whole `get` view of the engine's golden rollout, as printed before the summary
    /// moved to the engine.
    #[test]
    fn golden_render() {
        let objects: Value = serde_json::from_str(include_str!(
            "../../engine/src/rollout/status/golden_objects.json"
        ))
        .expect("golden file is JSON");
        let list = |k: &str| objects[k].as_array().cloned().expect("a list");
        let tree = RolloutTree {
            rollout: objects["rollout"].clone(),
            replica_sets: list("replicaSets"),
            pods: list("pods"),
            analysis_runs: list("analysisRuns"),
        };
        assert_eq!(
            render(&tree.view()),
            include_str!("rollout/golden_render.txt")
        );
        let row = list_row(&tree.view());
        assert_eq!(
            row,
            [
                "ml",
                "ml-model-serving",
                "Canary",
                "Progressing",
                "3/5",
                "50",
                "5/6",
                "4",
                "2",
                "5"
            ]
        );
    }

    /// Whatever a hostile or half-written object holds, its view renders without panicking.
    #[test]
    fn malformed_rollouts_render() {
        for r in [
            json!(null),
            json!("rollout"),
            json!({"spec": "x", "status": 7}),
            json!({"metadata": {"name": 5}, "spec": {"strategy": {"canary": {"steps": 5}}},
                   "status": {"currentStepIndex": -3, "phase": ["Healthy"], "canary": {"weights": "x"}}}),
            json!({"spec": {"strategy": {"blueGreen": {}}}, "status": {"blueGreen": 1, "pauseConditions": "yes"}}),
        ] {
            let tree = RolloutTree {
                rollout: r,
                replica_sets: vec![
                    json!(1),
                    json!({"metadata": {"labels": "x", "annotations": {REVISION_ANNOTATION: "x"}}}),
                ],
                pods: vec![json!(7)],
                analysis_runs: vec![json!({"status": {"metricResults": "x"}})],
            };
            let v = tree.view();
            let _ = render(&v);
            let _ = list_row(&v);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("1h"), Ok(3600));
        for bad in ["", "m", "5d", "-1", "1.5m", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_arguments_are_checked() {
        assert!(parse_image("server=m:1").is_ok());
        assert!(parse_image("*=m:1").is_ok());
        for bad in ["server", "=m:1", "server=", "server=m 1"] {
            assert!(parse_image(bad).is_err(), "{bad}");
        }
    }
}
