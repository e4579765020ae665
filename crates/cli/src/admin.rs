//! `mooring admin export` / `mooring admin import FILE [--prune] [--dry-run]`: backup and
//! restore of the control plane, as `argocd admin export` / `import`. Which objects, the
//! written form and the import rules are `mooring_engine::backup`'s; this module lists,
//! prints, creates, updates and deletes them.
//!
//! Import refuses a malformed or hostile file before writing anything; creates and
//! updates are validated by the API server (`--dry-run` asks it with server-side dry run
//! and writes nothing). Pruning an Application removes its finalizers first, as Argo CD's
//! import does, so the Application object goes without its deployed resources being
//! deleted (a restore must never tear down workloads).

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use mooring_engine::backup::{self, Kind, Scope, Step};
use mooring_k8s::k8s_openapi::api::core::v1::{ConfigMap, Secret};
use mooring_k8s::kube;
use mooring_k8s::kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::{json, Value};
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Print a backup of the control plane (Applications, AppProjects, ApplicationSets,
    /// RollbackPolicies, DisasterRecoveryPlans, Mooring's ConfigMaps, cluster, repository
    /// and Mooring's Secrets) as a YAML stream.
    Export(ExportArgs),
    /// Restore a backup written by `export` (`-` reads standard input).
    Import(ImportArgs),
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to this file instead of standard output (created 0600: it holds Secrets).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The backup file, or `-` for standard input.
    pub source: String,
    /// Delete the Applications, AppProjects, ApplicationSets, RollbackPolicies, DR plans
    /// and cluster/repository Secrets of the control plane that the backup does not have
    /// (never other objects, nor the installation's settings ConfigMaps and Secrets).
    #[arg(long)]
    pub prune: bool,
    /// Validate with the API server and print what would be done; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The ConfigMaps a backup holds, named by their owners.
const CONFIG_MAPS: [&str; 4] = [
    mooring_core::app::SETTINGS_CONFIGMAP,
    mooring_server::store::RBAC_CONFIGMAP,
    mooring_notify::config::CONFIG_MAP,
    mooring_controller::image::CONFIG_MAP,
];

/// The Secrets a backup holds by name (cluster and repository Secrets go by label).
const SECRETS: [&str; 2] = [
    mooring_server::store::SECRET,
    mooring_notify::config::SECRET,
];

fn scope(namespace: &str) -> Scope<'_> {
    Scope {
        namespace,
        config_maps: &CONFIG_MAPS,
        secrets: &SECRETS,
    }
}

fn resource(kind: Kind) -> ApiResource {
    use mooring_k8s::resources as r;
    match kind {
        Kind::ConfigMap => ApiResource::erase::<ConfigMap>(&()),
        Kind::Secret => ApiResource::erase::<Secret>(&()),
        Kind::AppProject => r::appproject_resource(),
        Kind::RollbackPolicy => r::rollback_policy_resource(),
        Kind::DisasterRecoveryPlan => r::disaster_recovery_plan_resource(),
        Kind::ApplicationSet => r::applicationset_resource(),
        Kind::Application => r::application_resource(),
    }
}

pub async fn run(command: AdminCommand, common: crate::app::Common) -> anyhow::Result<ExitCode> {
    let m = crate::connect::connect(&common.management).await?;
    match command {
        AdminCommand::Export(args) => export(&m, args).await,
        AdminCommand::Import(args) => import(&m, args).await,
    }
}

/// The live objects of the backup's selection, by kind, and the kinds the cluster does
/// not serve (their CRDs are not installed).
async fn live(m: &crate::connect::Management) -> anyhow::Result<(Vec<(Kind, Value)>, Vec<Kind>)> {
    let scope = scope(m.namespace());
    let mut out = Vec::new();
    let mut unserved = Vec::new();
    for kind in Kind::ALL {
        let api: Api<DynamicObject> =
            Api::namespaced_with(m.client.clone(), m.namespace(), &resource(kind));
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(kube::Error::Api(e)) if e.code == 404 => {
                unserved.push(kind);
                continue;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("listing {} in namespace {}", kind.name(), m.namespace())
                })
            }
        };
        let ar = resource(kind);
        for item in list.items {
            let mut v = serde_json::to_value(&item)?;
            // Lists leave apiVersion/kind out of their items.
            v["apiVersion"] = json!(ar.api_version);
            v["kind"] = json!(ar.kind);
            if scope.selects(kind, &v) {
                out.push((kind, v));
            }
        }
    }
    Ok((out, unserved))
}

/// `group/Kind` as Argo CD prints it (just `Kind` for the core group).
fn kind_label(kind: Kind) -> String {
    if kind.group().is_empty() {
        kind.name().to_string()
    } else {
        format!("{}/{}", kind.group(), kind.name())
    }
}

async fn export(m: &crate::connect::Management, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let (objects, unserved) = live(m).await?;
    if !m.control_plane.application_namespaces.is_empty() {
        eprintln!(
            "warning: only the control-plane namespace {} is exported; Applications and ApplicationSets in the other namespaces of application.namespaces ({}) are not",
            m.namespace(),
            m.control_plane.application_namespaces.join(", ")
        );
    }
    for kind in unserved {
        eprintln!(
            "warning: {} is not served by this cluster (CRD not installed): none exported",
            kind_label(kind)
        );
    }
    let mut text = String::new();
    for (_, obj) in objects {
        text.push_str("---\n");
        text.push_str(&serde_saphyr::to_string(&backup::export_form(obj))?);
    }
    match args.out {
        None => print!("{text}"),
        Some(path) => {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            f.write_all(text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(kind: Kind, obj: &Value) -> String {
    format!(
        "{} {} in namespace {}",
        kind_label(kind),
        obj["metadata"]["name"].as_str().unwrap_or_default(),
        obj["metadata"]["namespace"].as_str().unwrap_or_default()
    )
}

async fn import(m: &crate::connect::Management, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let text = if args.source == "-" {
        let mut s = String::new();
        std::io::stdin()
            .take(backup::MAX_BACKUP_BYTES as u64 + 1)
            .read_to_string(&mut s)
            .context("reading the backup from standard input")?;
        s
    } else {
        let path = PathBuf::from(&args.source);
        let size = std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        if size > backup::MAX_BACKUP_BYTES as u64 {
            bail!(
                "{} is {size} bytes, over the {}-byte limit of a backup",
                path.display(),
                backup::MAX_BACKUP_BYTES
            );
        }
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
    };
    let objects = backup::parse_backup(&text, &scope(m.namespace()))?;
    let (live, unserved) = live(m).await?;
    let missing: Vec<String> = unserved
        .iter()
        .filter(|k| objects.iter().any(|(o, _)| o == *k))
        .map(|k| kind_label(*k))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the backup has {} objects, which this cluster does not serve; nothing was written: install Mooring's CRDs first (`mooring install | kubectl apply -f -`, or `mooring crds | kubectl apply -f -`)",
            missing.join(", ")
        );
    }
    let steps = backup::plan(&scope(m.namespace()), objects, live);
    let suffix = if args.dry_run { " (dry run)" } else { "" };
    let post = PostParams {
        dry_run: args.dry_run,
        ..Default::default()
    };
    let (mut created, mut updated, mut pruned, mut kept) = (0, 0, 0, 0);
    for step in steps {
        match step {
            Step::Create(kind, obj) => {
                let api = api(m, kind);
                let o: DynamicObject = serde_json::from_value(obj.clone())?;
                api.create(&post, &o)
                    .await
                    .with_context(|| format!("creating {}", describe(kind, &obj)))?;
                // A status subresource ignores status on create: write it there.
                if obj.get("status").is_some()
                    && matches!(kind, Kind::RollbackPolicy | Kind::DisasterRecoveryPlan)
                    && !args.dry_run
                {
                    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                    api.patch_status(
                        name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": obj["status"]})),
                    )
                    .await
                    .with_context(|| format!("restoring the status of {}", describe(kind, &obj)))?;
                }
                println!("{} created{suffix}", describe(kind, &obj));
                created += 1;
            }
            Step::Update(kind, obj) => {
                let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                let o: DynamicObject = serde_json::from_value(obj.clone())?;
                api(m, kind)
                    .replace(name, &post, &o)
                    .await
                    .with_context(|| format!("updating {}", describe(kind, &obj)))?;
                println!("{} updated{suffix}", describe(kind, &obj));
                updated += 1;
            }
            Step::Unchanged(_, _) => kept += 1,
            Step::Prune(kind, obj) if args.prune => {
                let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                let api = api(m, kind);
                if !args.dry_run {
                    if kind == Kind::Application
                        && obj["metadata"]["finalizers"]
                            .as_array()
                            .is_some_and(|f| !f.is_empty())
                    {
                        api.patch(
                            name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                        )
                        .await
                        .with_context(|| {
                            format!("removing the finalizers of {}", describe(kind, &obj))
                        })?;
                    }
                    match api.delete(name, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(e)) if e.code == 404 => {}
                        Err(e) => {
                            return Err(e)
                                .with_context(|| format!("pruning {}", describe(kind, &obj)))
                        }
                    }
                }
                println!("{} pruned{suffix}", describe(kind, &obj));
                pruned += 1;
            }
            Step::Prune(kind, obj) => {
                println!(
                    "{} is not in the backup (--prune deletes it)",
                    describe(kind, &obj)
                );
            }
        }
    }
    println!(
        "import into namespace {}{suffix}: {created} created, {updated} updated, {kept} unchanged, {pruned} pruned",
        m.namespace()
    );
    Ok(ExitCode::SUCCESS)
}

fn api(m: &crate::connect::Management, kind: Kind) -> Api<DynamicObject> {
    Api::namespaced_with(m.client.clone(), m.namespace(), &resource(kind))
}
