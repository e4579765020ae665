//! `mooring deploy PATH --cluster NAME | --kubeconfig FILE`: the push delivery model, for
//! clusters CI reaches directly, without a controller.
//!
//! 1. **Render** PATH (a directory of manifests or a kustomization) as an Application
//!    source would be rendered (`mooring_render`). The tree rendered is an export of the
//!    enclosing Git work tree (or PATH itself) made by `mooring_source::export_dir`, so a
//!    symbolic link leaving it is refused before anything is read, as in `mooring check`.
//! 2. **Gate**: the Gatekeeper ConstraintTemplates and constraints in force in the target
//!    cluster, plus those in the YAML files of `--policy DIR`, review every object as
//!    Gatekeeper's admission webhook would (`mooring_policy::gate`); the `.rego` files of
//!    `--policy DIR` run as conftest policies (package `main`) on every object. One
//!    `deny` (or conftest failure) and nothing is applied (exit 1).
//! 3. **Diff** every object against the live one (`mooring_engine::diff`, Secrets masked).
//! 4. **Apply** with server-side apply, field manager `mooring-deploy`, in Kubernetes'
//!    kind order. `--dry-run` stops after the diff (the server validates each object with
//!    a dry-run apply) and writes nothing.
//! 5. **Prune** (`--prune`) as kubectl's ApplySet (KEP-3659) does: the parent Secret
//!    `NAME` in the namespace records the applyset's id, tooling and member group-kinds;
//!    every applied object is labelled `applyset.kubernetes.io/part-of: <id>`; what carries
//!    the label and no longer renders is deleted. An object without the label is never
//!    touched. The parent is widened to the new group-kinds before applying and narrowed
//!    after the prune, as the KEP asks, so an interrupted run leaves nothing untracked.
//! 6. **Wait** (`--wait`) until every applied object is Healthy (`mooring_engine::health`).
//!
//! Exit codes: 0 deployed (or nothing to do), 1 refused by policy, a diff in `--dry-run`
//! with `--exit-code`, or `--wait` timed out / Degraded, 2 usage or runtime error.

use anyhow::{bail, Context as _};
use clap::Args;
use mooring_core::ResourceKey;
use mooring_engine::delivery::{self, Member};
use mooring_k8s::cluster::ClusterClient;
use mooring_k8s::kube;
use mooring_k8s::kube::api::{Api, DynamicObject, ListParams};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "mooring-deploy";

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["cluster", "kubeconfig"])))]
pub struct DeployArgs {
    /// A directory of manifests or a kustomization.
    pub path: PathBuf,
    /// A cluster registered with Mooring (cluster Secret in the control plane of the
    /// management cluster, found by the usual kubeconfig rule or --management-kubeconfig);
    /// `in-cluster` is the management cluster itself.
    #[arg(long)]
    pub cluster: Option<String>,
    /// The target cluster's kubeconfig (any Kubernetes API).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The management cluster's kubeconfig, for --cluster.
    #[arg(long)]
    pub management_kubeconfig: Option<PathBuf>,
    /// The control-plane namespace of the management cluster, for --cluster.
    #[arg(long)]
    pub control_plane_namespace: Option<String>,
    /// Namespace of namespaced objects that name none, and of the applyset's parent.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// The applyset's name (its parent Secret; default: PATH's directory name).
    #[arg(long)]
    pub name: Option<String>,
    /// Delete what an earlier deploy of this applyset applied and PATH no longer renders.
    #[arg(long)]
    pub prune: bool,
    /// Render, check and diff (the server validates each object); write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// More policies to enforce: Gatekeeper ConstraintTemplates and constraints (YAML
    /// files) and conftest policies (`.rego` files, package `main`).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Wait until every applied object is Healthy.
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait waits.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

pub async fn run(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args
            .path
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "deploy".into()),
    };
    check_name("--name", &name)?;
    check_name("--namespace", &args.namespace)?;
    if args.dry_run && args.wait {
        bail!("--dry-run applies nothing; it cannot be combined with --wait");
    }

    // 1. Render.
    let objects = render(&args.path)?;

    // The target.
    let client = target_client(&args).await?;
    let cluster = ClusterClient::without_cache("deploy-target", client.clone());
    cluster
        .refresh_discovery()
        .await
        .context("reading the target cluster's API discovery")?;
    let mut desired = Vec::new();
    for mut o in objects {
        let av = o
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let kind = o
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match cluster.is_namespaced(&av, &kind).await {
            Some(true) => {
                if o.pointer("/metadata/namespace").and_then(Value::as_str).is_none_or(str::is_empty) {
                    o["metadata"]["namespace"] = json!(args.namespace);
                }
            }
            Some(false) => {
                if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("namespace");
                }
            }
            None => bail!(
                "the target cluster does not serve {av} {kind} (rendered object {}); install its CRD first",
                describe_obj(&o)
            ),
        }
        desired.push(o);
    }

    // The applyset.
    let id = delivery::applyset_id(&name, &args.namespace, "Secret", "");
    for o in &mut desired {
        o["metadata"]["labels"][delivery::APPLYSET_PART_OF] = json!(id);
    }
    let members: Vec<Member> = desired.iter().filter_map(member_of).collect();
    let parent_key = ResourceKey::new("", "Secret", &args.namespace, &name);
    let parent = cluster.get("v1", &parent_key).await?;
    if let Some(p) = &parent {
        let their_id = p.pointer(&format!(
            "/metadata/labels/{}",
            delivery::APPLYSET_ID.replace('/', "~1")
        ));
        if their_id.and_then(Value::as_str) != Some(id.as_str()) {
            bail!("Secret {}/{name} exists and is not this applyset's parent (no {} label {id}); choose another --name", args.namespace, delivery::APPLYSET_ID);
        }
        let tooling = p
            .pointer(&format!(
                "/metadata/annotations/{}",
                delivery::APPLYSET_TOOLING.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .unwrap_or("");
        if !tooling.starts_with("mooring/") {
            bail!("the applyset {}/{name} is managed by {tooling:?}, not mooring: refusing to take it over", args.namespace);
        }
    }
    let previous_gks = parent
        .as_ref()
        .and_then(|p| {
            p.pointer(&format!(
                "/metadata/annotations/{}",
                delivery::APPLYSET_GROUP_KINDS.replace('/', "~1")
            ))
            .and_then(Value::as_str)
        })
        .map(delivery::parse_group_kinds)
        .unwrap_or_default();
    let previous_nss: Vec<String> = parent
        .as_ref()
        .and_then(|p| {
            p.pointer(&format!(
                "/metadata/annotations/{}",
                delivery::APPLYSET_NAMESPACES.replace('/', "~1")
            ))
            .and_then(Value::as_str)
        })
        .map(|s| {
            s.split(',')
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();

    // Live state.
    let mut live = Vec::new();
    for o in &desired {
        let av = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if let Some(key) = ResourceKey::of(o) {
            if let Some(l) = cluster.get(av, &key).await? {
                // An object of another applyset is not taken over (KEP-3659).
                let theirs = l
                    .pointer(&format!(
                        "/metadata/labels/{}",
                        delivery::APPLYSET_PART_OF.replace('/', "~1")
                    ))
                    .and_then(Value::as_str);
                if let Some(other) = theirs.filter(|t| *t != id) {
                    bail!("{key} belongs to another applyset ({other}); nothing was applied");
                }
                live.push(l);
            }
        }
    }

    // 2. Gate.
    let denied = gate(&client, &cluster, args.policy.as_deref(), &desired, &live).await?;
    if let Some(report) = denied {
        eprintln!("{report}");
        eprintln!("deploy refused by policy: nothing applied");
        return Ok(ExitCode::from(1));
    }

    // 3. Diff.
    let mut changed = 0;
    for o in &desired {
        let key = ResourceKey::of(o);
        let l = live.iter().find(|l| ResourceKey::of(l) == key);
        let d = mooring_engine::diff::diff(
            Some(o),
            l,
            &mooring_engine::diff::DiffOptions {
                manager: Some(FIELD_MANAGER),
                ..Default::default()
            },
        )?;
        if d.status != mooring_core::app::SyncStatusCode::Synced {
            changed += 1;
            println!(
                "=== {} ({})",
                d.key,
                if l.is_none() { "new" } else { "changed" }
            );
            print!("{}", d.unified);
        }
    }

    // What a prune would delete.
    let mut group_kinds = previous_gks.clone();
    let mut namespaces = previous_nss.clone();
    namespaces.push(args.namespace.clone());
    namespaces.sort();
    namespaces.dedup();
    group_kinds.sort();
    group_kinds.dedup();
    let pruned = if args.prune {
        let live_members = list_members(&client, &id, &group_kinds, &namespaces).await?;
        delivery::prune_set(&live_members, &members)
    } else {
        vec![]
    };
    for p in &pruned {
        println!(
            "=== {}/{} {}/{} (prune)",
            p.group, p.kind, p.namespace, p.name
        );
    }

    if args.dry_run {
        // The server validates each object (a dry-run apply), except those in a namespace
        // that does not exist yet (the deploy would create it first).
        let mut skipped = 0;
        for o in &desired {
            let ns = o
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            let ns_missing = !ns.is_empty()
                && cluster
                    .get("v1", &ResourceKey::new("", "Namespace", "", ns))
                    .await?
                    .is_none();
            if ns_missing {
                skipped += 1;
                continue;
            }
            cluster
                .apply(o, FIELD_MANAGER, true)
                .await
                .with_context(|| format!("the server refuses {}", describe_obj(o)))?;
        }
        if skipped > 0 {
            println!("{skipped} object(s) not validated by the server: their namespace does not exist yet");
        }
        println!(
            "Dry run: {changed} object(s) to apply, {} to prune; nothing written",
            pruned.len()
        );
        return Ok(ExitCode::SUCCESS);
    }

    // 4. Apply: the parent first, widened to old ∪ new group-kinds and namespaces.
    let record = delivery::applyset_record(&members, &args.namespace);
    let previous = delivery::ApplySetRecord {
        group_kinds: previous_gks
            .iter()
            .map(|(g, k)| {
                if g.is_empty() {
                    k.clone()
                } else {
                    format!("{k}.{g}")
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        namespaces: previous_nss.join(","),
    };
    write_parent(
        &cluster,
        &name,
        &args.namespace,
        &id,
        &record.union(&previous),
    )
    .await?;
    let mut order: Vec<&Value> = desired.iter().collect();
    order.sort_by_key(|o| mooring_engine::sync::kind_rank(o["kind"].as_str().unwrap_or("")));
    for o in &order {
        cluster
            .apply(o, FIELD_MANAGER, false)
            .await
            .with_context(|| format!("applying {}", describe_obj(o)))?;
        println!("applied {}", describe_obj(o));
    }

    // 5. Prune, then narrow the parent to what is there now.
    for p in &pruned {
        let av = api_version_of(&cluster, &p.group, &p.kind).await?;
        cluster
            .delete(
                &av,
                &ResourceKey::new(&p.group, &p.kind, &p.namespace, &p.name),
                Some("background"),
            )
            .await
            .with_context(|| format!("pruning {}/{} {}", p.kind, p.namespace, p.name))?;
        println!(
            "pruned {} {}{}",
            p.group_kind(),
            if p.namespace.is_empty() {
                String::new()
            } else {
                format!("{}/", p.namespace)
            },
            p.name
        );
    }
    if args.prune {
        write_parent(&cluster, &name, &args.namespace, &id, &record).await?;
    }
    println!(
        "deployed {} object(s) as applyset {}/{name} ({id}){}",
        desired.len(),
        args.namespace,
        if args.prune {
            format!(", pruned {}", pruned.len())
        } else {
            String::new()
        }
    );

    // 6. Wait.
    if args.wait {
        return wait(&cluster, &desired, args.timeout).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// A name that can only be a Kubernetes name (it becomes a Secret's name and a label).
fn check_name(flag: &str, name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !ok {
        bail!("{flag} {name:?} is not a Kubernetes name (lowercase letters, digits, '-' and '.')");
    }
    Ok(())
}

/// Render PATH from an export of its Git work tree (or of PATH itself). `app sync
/// --local` renders its directory with this too.
pub(crate) fn render(path: &Path) -> anyhow::Result<Vec<Value>> {
    let dir = path
        .canonicalize()
        .with_context(|| format!("{} does not exist", path.display()))?;
    if !dir.is_dir() {
        bail!("{} is not a directory", path.display());
    }
    // The root: the nearest ancestor holding `.git` (kustomize overlays name `../../base`),
    // else PATH.
    let root = dir
        .ancestors()
        .find(|a| a.join(".git").exists())
        .unwrap_or(&dir)
        .to_path_buf();
    let rel = dir
        .strip_prefix(&root)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let export = tempfile::Builder::new()
        .prefix("mooring-deploy-")
        .tempdir()
        .context("creating a temporary directory")?;
    let refused = mooring_source::export_dir(
        &root,
        export.path(),
        &mooring_source::Limits::default(),
        &|top| top == ".git",
    )?;
    if !refused.is_empty() {
        let list: Vec<String> = refused.iter().map(|e| format!("  {e}")).collect();
        bail!(
            "{} holds entries that cannot be deployed (nothing was applied):\n{}",
            root.display(),
            list.join("\n")
        );
    }
    let source = mooring_core::app::ApplicationSource {
        path: Some(if rel.is_empty() { ".".into() } else { rel }),
        ..Default::default()
    };
    let objects = mooring_render::render(
        export.path(),
        &source,
        &mooring_render::RenderOptions::default(),
    )
    .with_context(|| format!("rendering {}", path.display()))?;
    if objects.is_empty() {
        bail!("{} renders no objects", path.display());
    }
    Ok(objects)
}

async fn target_client(args: &DeployArgs) -> anyhow::Result<kube::Client> {
    if let Some(kc) = &args.kubeconfig {
        return Ok(mooring_k8s::client_from_kubeconfig(kc).await?);
    }
    let Some(name) = &args.cluster else {
        bail!("give --cluster NAME or --kubeconfig FILE");
    };
    let m = crate::connect::connect(&crate::connect::ManagementArgs {
        kubeconfig: args.management_kubeconfig.clone(),
        namespace: args.control_plane_namespace.clone(),
    })
    .await?;
    if name == "in-cluster" {
        return Ok(m.client.clone());
    }
    for s in crate::connect::cluster_secrets(&m).await? {
        let v = serde_json::to_value(&s)?;
        if let Ok(entry) = mooring_k8s::registry::parse_secret(&v) {
            if entry.name == *name || entry.server == *name {
                return Ok(mooring_k8s::registry::client(&entry).await?);
            }
        }
    }
    bail!(
        "no cluster {name:?} is registered in {} (see `mooring cluster list`)",
        m.namespace()
    )
}

fn describe_obj(o: &Value) -> String {
    ResourceKey::of(o).map_or_else(|| "an object without a name".into(), |k| k.to_string())
}

fn member_of(o: &Value) -> Option<Member> {
    let key = ResourceKey::of(o)?;
    Some(Member {
        group: key.group.clone(),
        kind: key.kind.clone(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    })
}

/// The preferred apiVersion the cluster serves for a group and kind.
async fn api_version_of(
    cluster: &ClusterClient,
    group: &str,
    kind: &str,
) -> anyhow::Result<String> {
    let discovery = kube::Discovery::new(cluster.client().clone())
        .run()
        .await
        .context("reading the target cluster's API discovery")?;
    for g in discovery.groups() {
        if g.name() != group {
            continue;
        }
        for (ar, _) in g.recommended_resources() {
            if ar.kind == kind {
                return Ok(ar.api_version);
            }
        }
    }
    bail!("the target cluster does not serve {kind}.{group}")
}

/// The live objects labelled as members of applyset `id`, of the recorded group-kinds.
async fn list_members(
    client: &kube::Client,
    id: &str,
    group_kinds: &[(String, String)],
    namespaces: &[String],
) -> anyhow::Result<Vec<Member>> {
    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .context("reading the target cluster's API discovery")?;
    let lp = ListParams::default().labels(&format!("{}={id}", delivery::APPLYSET_PART_OF));
    let mut out = Vec::new();
    for (group, kind) in group_kinds {
        let Some((ar, caps)) = discovery
            .groups()
            .filter(|g| g.name() == group)
            .flat_map(|g| g.recommended_resources())
            .find(|(ar, _)| ar.kind == *kind)
        else {
            continue;
        };
        let lists: Vec<Api<DynamicObject>> = if caps.scope == kube::discovery::Scope::Namespaced {
            namespaces
                .iter()
                .map(|ns| Api::namespaced_with(client.clone(), ns, &ar))
                .collect()
        } else {
            vec![Api::all_with(client.clone(), &ar)]
        };
        for api in lists {
            let items = api.list(&lp).await.with_context(|| {
                format!(
                    "listing {kind} labelled {}={id}",
                    delivery::APPLYSET_PART_OF
                )
            })?;
            for i in items.items {
                out.push(Member {
                    group: group.clone(),
                    kind: kind.clone(),
                    namespace: i.metadata.namespace.unwrap_or_default(),
                    name: i.metadata.name.unwrap_or_default(),
                });
            }
        }
    }
    Ok(out)
}

/// Create or update the applyset's parent Secret recording `members`.
async fn write_parent(
    cluster: &ClusterClient,
    name: &str,
    namespace: &str,
    id: &str,
    record: &delivery::ApplySetRecord,
) -> anyhow::Result<()> {
    let mut annotations = serde_json::Map::new();
    annotations.insert(
        delivery::APPLYSET_TOOLING.into(),
        json!(format!("mooring/v{}", env!("CARGO_PKG_VERSION"))),
    );
    annotations.insert(
        delivery::APPLYSET_GROUP_KINDS.into(),
        json!(record.group_kinds),
    );
    if !record.namespaces.is_empty() {
        annotations.insert(
            delivery::APPLYSET_NAMESPACES.into(),
            json!(record.namespaces),
        );
    }
    let parent = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {delivery::APPLYSET_ID: id},
            "annotations": annotations,
        },
        "type": "Opaque",
    });
    // The namespace itself may be new.
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
    if cluster
        .get("v1", &ResourceKey::new("", "Namespace", "", namespace))
        .await?
        .is_none()
    {
        cluster.apply(&ns, FIELD_MANAGER, false).await?;
    }
    cluster
        .apply(&parent, FIELD_MANAGER, false)
        .await
        .with_context(|| format!("writing the applyset parent Secret {namespace}/{name}"))?;
    Ok(())
}

/// The Gatekeeper review: `Some(report)` when a `deny` violation blocks the deploy.
async fn gate(
    client: &kube::Client,
    cluster: &Arc<ClusterClient>,
    policy_dir: Option<&Path>,
    desired: &[Value],
    live: &[Value],
) -> anyhow::Result<Option<String>> {
    let mut policy: Vec<Value> = Vec::new();
    let mut rego: Vec<mooring_policy::RegoSource> = Vec::new();
    let templates = mooring_k8s::resources::constraint_template_resource();
    if cluster
        .is_namespaced(&templates.api_version, &templates.kind)
        .await
        .is_some()
    {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &templates);
        let ts = api
            .list(&ListParams::default())
            .await
            .context("listing the target cluster's ConstraintTemplates")?;
        for t in ts.items {
            let t = serde_json::to_value(t)?;
            if let Some(kind) = t
                .pointer("/spec/crd/spec/names/kind")
                .and_then(Value::as_str)
            {
                let res = mooring_k8s::resources::constraint_resource(kind);
                if cluster
                    .is_namespaced(&res.api_version, &res.kind)
                    .await
                    .is_some()
                {
                    let api: Api<DynamicObject> = Api::all_with(client.clone(), &res);
                    for c in api
                        .list(&ListParams::default())
                        .await
                        .with_context(|| format!("listing {kind} constraints"))?
                        .items
                    {
                        policy.push(serde_json::to_value(c)?);
                    }
                }
            }
            policy.push(t);
        }
    }
    if let Some(dir) = policy_dir {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading --policy {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "yaml" || e == "yml" || e == "rego")
                    && !p.to_string_lossy().ends_with("_test.rego")
            })
            .collect();
        files.sort();
        for f in files {
            let meta = std::fs::symlink_metadata(&f)?;
            if !meta.is_file() {
                bail!(
                    "--policy {}: {} is not a regular file",
                    dir.display(),
                    f.display()
                );
            }
            let text =
                std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
            if f.extension().is_some_and(|e| e == "rego") {
                rego.push(mooring_policy::RegoSource::new(
                    f.display().to_string(),
                    text,
                ));
                continue;
            }
            policy.extend(
                mooring_core::yaml::parse_all(&text)
                    .with_context(|| format!("parsing {}", f.display()))?
                    .into_iter()
                    .filter(|v| !v.is_null()),
            );
        }
    }
    // conftest policies (`deny`/`violation` in package `main`, as `conftest test`): a
    // failure refuses the deploy like a Gatekeeper `deny`.
    let mut denied: Vec<String> = Vec::new();
    if !rego.is_empty() {
        let conftest =
            mooring_policy::conftest::Conftest::load(&rego, &[], mooring_policy::Limits::default())
                .map_err(|e| {
                    anyhow::anyhow!("--policy: the conftest policies do not compile: {e}")
                })?;
        let inputs: Vec<mooring_policy::conftest::Input> = desired
            .iter()
            .map(|o| mooring_policy::conftest::Input {
                path: describe_obj(o),
                documents: vec![o.clone()],
            })
            .collect();
        let report = conftest
            .test(&inputs, &Default::default())
            .map_err(|e| anyhow::anyhow!("--policy: conftest evaluation failed: {e}"))?;
        for sub in &report.subjects {
            for f in &sub.findings {
                let line = format!("{}: {} ({})", sub.filename, f.message, f.rule);
                match f.severity {
                    mooring_policy::report::Severity::Failure => denied.push(line),
                    _ => eprintln!("policy warning: {line}"),
                }
            }
        }
    }
    if policy.is_empty() {
        return Ok((!denied.is_empty()).then(|| {
            format!(
                "{} policy violation(s):\n{}",
                denied.len(),
                denied.join("\n")
            )
        }));
    }
    let mut gk = mooring_policy::gatekeeper::Gatekeeper::from_objects(
        policy.iter(),
        mooring_policy::Limits::default(),
    )
    .map_err(|e| {
        anyhow::anyhow!("the policy in force does not compile, so nothing can be checked: {e}")
    })?;
    gk.set_inventory(desired.iter());
    let mut namespaces: BTreeMap<String, Value> = BTreeMap::new();
    for o in desired {
        if let Some(ns) = o.pointer("/metadata/namespace").and_then(Value::as_str) {
            if !namespaces.contains_key(ns) {
                if let Some(n) = cluster
                    .get("v1", &ResourceKey::new("", "Namespace", "", ns))
                    .await?
                {
                    namespaces.insert(ns.to_string(), n);
                }
            }
        }
    }
    let nss: BTreeMap<&str, &Value> = namespaces.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let reviews = mooring_policy::gate::review(
        &gk,
        mooring_policy::gate::Scope::Unknown,
        desired,
        live,
        &nss,
    );
    let verdict = mooring_policy::gate::Verdict::of(reviews)
        .map_err(|e| anyhow::anyhow!("policy evaluation failed: {e}"))?;
    if !verdict.warned.is_empty() {
        eprintln!(
            "policy warnings:\n{}",
            mooring_policy::gate::describe(&verdict.warned)
        );
    }
    if verdict.denied.is_empty() && denied.is_empty() {
        return Ok(None);
    }
    let count = verdict.denied.len() + denied.len();
    if !verdict.denied.is_empty() {
        denied.insert(0, mooring_policy::gate::describe(&verdict.denied));
    }
    Ok(Some(format!(
        "{count} policy violation(s):\n{}",
        denied.join("\n")
    )))
}

/// Poll every applied object's health until all are Healthy.
async fn wait(
    cluster: &ClusterClient,
    desired: &[Value],
    timeout: u64,
) -> anyhow::Result<ExitCode> {
    use mooring_core::app::HealthStatusCode as H;
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let mut waiting = Vec::new();
        let mut degraded = Vec::new();
        for o in desired {
            let Some(key) = ResourceKey::of(o) else {
                continue;
            };
            let live = cluster
                .get(o["apiVersion"].as_str().unwrap_or(""), &key)
                .await?;
            let status = match &live {
                None => H::Missing,
                Some(l) => mooring_engine::health::assess(l, None).map_or(H::Healthy, |h| h.status),
            };
            match status {
                H::Healthy => {}
                H::Degraded => degraded.push(key.to_string()),
                s => waiting.push(format!("{key} {}", s.as_str())),
            }
        }
        if !degraded.is_empty() {
            eprintln!("Degraded: {}", degraded.join(", "));
            return Ok(ExitCode::from(1));
        }
        if waiting.is_empty() {
            println!("all {} object(s) Healthy", desired.len());
            return Ok(ExitCode::SUCCESS);
        }
        let line = format!("waiting for {}", waiting.join(", "));
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        if start.elapsed() > Duration::from_secs(timeout) {
            eprintln!("timed out after {timeout}s: {}", waiting.join(", "));
            return Ok(ExitCode::from(1));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
