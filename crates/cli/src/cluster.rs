//! `mooring cluster add|list|rm`: destination clusters as Argo CD cluster Secrets in the
//! management cluster (see `mooring_k8s::registry`). The running controller picks a new
//! Secret up at once through its watch.

use crate::output::{emit, print_table, Output};
use anyhow::{bail, Context as _};
use mooring_k8s::kube::{self, api::Api};
use mooring_k8s::registry::{self, ClusterEntry};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Cluster Secrets live in the control-plane namespace (`--namespace`), where the
/// controller reads them.
#[derive(clap::Args, Debug)]
pub struct ClusterCommon {
    #[command(flatten)]
    pub management: crate::connect::ManagementArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum RegistryCommand {
    /// Register the cluster of a kubeconfig context (its credentials are copied into the
    /// cluster Secret).
    Add {
        /// The context (default: the current one).
        context: Option<String>,
        /// The kubeconfig holding the context (default: $KUBECONFIG, then ~/.kube/config).
        #[arg(long = "from")]
        from: Option<PathBuf>,
        /// Name of the cluster in Mooring (default: the context name).
        #[arg(long)]
        name: Option<String>,
        /// Labels for the ApplicationSet clusters generator (repeatable `KEY=VALUE`).
        #[arg(long = "label", short = 'l', value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// List registered clusters with reachability, server version and application count.
    List {
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Unregister a cluster (its Applications report it as not registered).
    Rm { name: String },
}

pub(crate) fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn secrets(
    client: &kube::Client,
    ns: &str,
) -> Api<mooring_k8s::k8s_openapi::api::core::v1::Secret> {
    Api::namespaced(client.clone(), ns)
}

/// Create or update the cluster Secret for `entry`.
pub async fn register(client: &kube::Client, ns: &str, entry: &ClusterEntry) -> anyhow::Result<()> {
    let secret = registry::secret_for(entry, ns);
    let name = secret["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    secrets(client, ns)
        .patch(
            &name,
            &kube::api::PatchParams::apply("mooring").force(),
            &kube::api::Patch::Apply(&secret),
        )
        .await
        .with_context(|| format!("writing cluster Secret {ns}/{name}"))?;
    Ok(())
}

pub async fn run(command: RegistryCommand, common: ClusterCommon) -> anyhow::Result<ExitCode> {
    let m = crate::connect::connect(&common.management).await?;
    let client = m.client.clone();
    let namespace = m.namespace().to_string();
    match command {
        RegistryCommand::Add {
            context,
            from,
            name,
            labels,
        } => {
            let from = match from {
                Some(p) => p,
                None => default_kubeconfig()?,
            };
            let mut entry =
                registry::entry_from_kubeconfig(&from, context.as_deref(), name.as_deref())?;
            entry.labels.extend(labels);
            let target = registry::client(&entry).await?;
            let reach = match tokio::time::timeout(
                Duration::from_secs(6),
                target.apiserver_version(),
            )
            .await
            {
                Ok(Ok(v)) => format!("reachable, {}", v.git_version),
                Ok(Err(e)) => format!("NOT reachable now ({e}); the controller keeps retrying"),
                Err(_) => "NOT reachable now (timed out); the controller keeps retrying".into(),
            };
            register(&client, &namespace, &entry).await?;
            println!(
                "cluster {} ({}) registered: {reach}",
                entry.name, entry.server
            );
            Ok(ExitCode::SUCCESS)
        }
        RegistryCommand::List { output } => list(&m, output).await,
        RegistryCommand::Rm { name } => {
            let api = secrets(&client, &namespace);
            for s in crate::connect::cluster_secrets(&m).await? {
                let v = serde_json::to_value(&s)?;
                if registry::parse_secret(&v).is_ok_and(|e| e.name == name || e.server == name) {
                    let secret_name = s.metadata.name.clone().unwrap_or_default();
                    api.delete(&secret_name, &Default::default()).await?;
                    println!("cluster {name} unregistered");
                    return Ok(ExitCode::SUCCESS);
                }
            }
            bail!("no registered cluster named {name:?} (see `mooring cluster list`)")
        }
    }
}

fn default_kubeconfig() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").context("no HOME to find ~/.kube/config; pass --from")?;
    Ok(PathBuf::from(home).join(".kube/config"))
}

async fn list(m: &crate::connect::Management, output: Output) -> anyhow::Result<ExitCode> {
    let client = &m.client;
    let secrets = crate::connect::cluster_secrets(m).await?;
    let mut entries = vec![ClusterEntry {
        project: String::new(),
        name: mooring_core::app::IN_CLUSTER_NAME.into(),
        server: mooring_core::app::IN_CLUSTER.into(),
        config: Default::default(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
    }];
    for s in secrets {
        let v = serde_json::to_value(&s)?;
        match registry::parse_secret(&v) {
            Ok(e) if e.server == mooring_core::app::IN_CLUSTER => entries[0].labels = e.labels,
            Ok(e) => entries.push(e),
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    // Applications per destination (by server or name).
    // No Application CRD (a bare cluster): no applications.
    let apps = match Api::<kube::api::DynamicObject>::all_with(
        client.clone(),
        &mooring_k8s::resources::application_resource(),
    )
    .list(&Default::default())
    .await
    {
        Ok(list) => list.items,
        Err(kube::Error::Api(e)) if e.code == 404 => vec![],
        Err(e) => return Err(e).context("listing applications"),
    };
    let destinations: Vec<(String, String)> = apps
        .iter()
        .filter_map(|a| serde_json::to_value(a).ok())
        .map(|a| {
            let s = |p: &str| {
                a.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            (s("/spec/destination/server"), s("/spec/destination/name"))
        })
        .collect();
    let mut rows = Vec::new();
    for e in &entries {
        let (status, version) = if e.server == mooring_core::app::IN_CLUSTER {
            probe(client.clone()).await
        } else {
            match registry::client(e).await {
                Ok(c) => probe(c).await,
                Err(err) => (format!("invalid: {err}"), String::new()),
            }
        };
        let count = destinations
            .iter()
            .filter(|(server, name)| *server == e.server || (!name.is_empty() && *name == e.name))
            .count();
        rows.push(json!({
            "name": e.name, "server": e.server, "status": status, "version": version,
            "applications": count, "labels": e.labels,
        }));
    }
    match output {
        Output::Table => {
            let mut table = vec![vec![
                "NAME".to_string(),
                "SERVER".into(),
                "STATUS".into(),
                "VERSION".into(),
                "APPS".into(),
                "LABELS".into(),
            ]];
            for r in &rows {
                let labels: Vec<String> = r["labels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect()
                    })
                    .unwrap_or_default();
                table.push(vec![
                    r["name"].as_str().unwrap_or("").into(),
                    r["server"].as_str().unwrap_or("").into(),
                    r["status"].as_str().unwrap_or("").into(),
                    r["version"].as_str().unwrap_or("").into(),
                    r["applications"].to_string(),
                    labels.join(","),
                ]);
            }
            print_table(&table);
        }
        Output::Json | Output::Yaml => emit(&rows, output)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Reachability and version, within a few seconds.
async fn probe(client: kube::Client) -> (String, String) {
    match tokio::time::timeout(Duration::from_secs(6), client.apiserver_version()).await {
        Ok(Ok(v)) => ("Reachable".into(), v.git_version),
        Ok(Err(e)) => (format!("Unreachable: {e}"), String::new()),
        Err(_) => ("Unreachable: timed out".into(), String::new()),
    }
}
