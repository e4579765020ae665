//! `mooring appset generate FILE`: print the Applications an ApplicationSet would
//! produce, without a cluster — the same pure generator the controller runs.
//!
//! Inputs that normally come from the management cluster and Git are given locally:
//!
//! - **clusters generator**: `--cluster NAME=SERVER[,LABEL=VALUE…]` flags stand for
//!   Argo CD cluster Secrets (repeatable). As in Argo CD, `in-cluster`
//!   (`https://kubernetes.default.svc`) is added for an empty selector.
//! - **git generators**: read the working tree of `--repo-root DIR` (default: the Git
//!   checkout containing FILE), whatever `repoURL` and `revision` say. This answers "what
//!   would this set generate from my checkout", the question asked before a commit;
//!   hidden directories (`.git`) and symbolic links are skipped.
//!
//! Fields of the set Mooring does not act on are printed as warnings on stderr (the
//! controller's `UnsupportedFieldWarning` condition); a generator Mooring does not
//! implement fails the generation, naming it, as in the controller.

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use mooring_check::LocalInputs;
use mooring_core::appset::ApplicationSet;
use mooring_engine::appset::ClusterInfo;
use mooring_k8s::kube;
use mooring_k8s::kube::api::{Api, DynamicObject};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum AppSetCommand {
    /// Print the Applications an ApplicationSet manifest generates (no cluster needed).
    Generate(GenerateArgs),
    /// List ApplicationSets in the management cluster.
    List {
        #[arg(short, long, value_enum, default_value_t)]
        output: crate::app::Output,
    },
    /// Show an ApplicationSet: conditions and the Applications it generated.
    Get {
        name: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: crate::app::Output,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    Yaml,
    Json,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// ApplicationSet manifest (YAML or JSON; every ApplicationSet in the file).
    pub file: PathBuf,
    #[arg(short, long, value_enum, default_value = "yaml")]
    pub output: Output,
    /// A cluster for the clusters generator: NAME=SERVER[,LABEL=VALUE...] (repeatable).
    #[arg(long = "cluster", value_name = "NAME=SERVER[,LABEL=VALUE...]")]
    pub clusters: Vec<String>,
    /// Local checkout the git generators read (default: the Git checkout containing FILE).
    #[arg(long)]
    pub repo_root: Option<PathBuf>,
}

/// Parse `NAME=SERVER[,LABEL=VALUE...]`.
pub fn parse_cluster(s: &str) -> anyhow::Result<ClusterInfo> {
    let mut parts = s.split(',');
    let first = parts.next().unwrap_or_default();
    let Some((name, server)) = first
        .split_once('=')
        .filter(|(n, s)| !n.is_empty() && !s.is_empty())
    else {
        bail!("--cluster {s:?}: expected NAME=SERVER[,LABEL=VALUE...]");
    };
    let mut labels = BTreeMap::new();
    for p in parts {
        let Some((k, v)) = p.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            bail!("--cluster {s:?}: label {p:?} is not LABEL=VALUE");
        };
        labels.insert(k.to_string(), v.to_string());
    }
    labels.insert("argocd.argoproj.io/secret-type".into(), "cluster".into());
    Ok(ClusterInfo {
        name: name.into(),
        server: server.into(),
        labels,
        ..ClusterInfo::default()
    })
}

fn checkout_root(file: &Path) -> PathBuf {
    let start = std::fs::canonicalize(file)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let mut dir = start.as_path();
    loop {
        if dir.join(".git").exists() {
            return dir.to_path_buf();
        }
        match dir.parent() {
            Some(p) => dir = p,
            None => return start,
        }
    }
}

/// Generate the Applications of every ApplicationSet in the file.
pub fn generate(args: &GenerateArgs) -> anyhow::Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let docs = mooring_core::yaml::parse_all(&text)
        .with_context(|| format!("parsing {}", args.file.display()))?;
    let clusters = args
        .clusters
        .iter()
        .map(|c| parse_cluster(c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let inputs = LocalInputs {
        clusters,
        root: args
            .repo_root
            .clone()
            .unwrap_or_else(|| checkout_root(&args.file)),
    };
    let mut apps = Vec::new();
    let mut found = false;
    for doc in docs {
        if doc["kind"] != "ApplicationSet" {
            continue;
        }
        found = true;
        // What the controller would report as UnsupportedFieldWarning.
        for u in mooring_engine::unsupported::applicationset(&doc) {
            eprintln!(
                "warning: ApplicationSet {:?}: {u}",
                doc["metadata"]["name"].as_str().unwrap_or("")
            );
        }
        let set: ApplicationSet = serde_json::from_value(doc)
            .with_context(|| format!("{}: not a valid ApplicationSet", args.file.display()))?;
        let out = mooring_engine::appset::generate(&set, &inputs)
            .with_context(|| format!("ApplicationSet {:?}", set.name()))?;
        apps.extend(out);
    }
    if !found {
        bail!("{} holds no ApplicationSet", args.file.display());
    }
    Ok(apps)
}

fn sets(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &mooring_k8s::resources::applicationset_resource(),
    )
}

fn condition<'a>(set: &'a Value, type_: &str) -> Option<&'a Value> {
    set["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// One table row: name, applications, up to date, sync policy, error.
fn row(set: &Value) -> Vec<String> {
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let error = condition(set, "ErrorOccurred")
        .filter(|c| c["status"] == "True")
        .map(|c| str_of(&c["message"]))
        .unwrap_or_default();
    vec![
        str_of(&set["metadata"]["name"]),
        set["status"]["resources"]
            .as_array()
            .map_or(0, Vec::len)
            .to_string(),
        condition(set, "ResourcesUpToDate")
            .map(|c| str_of(&c["status"]))
            .unwrap_or_else(|| "Unknown".into()),
        set["spec"]["syncPolicy"]["applicationsSync"]
            .as_str()
            .unwrap_or("sync")
            .to_string(),
        error,
    ]
}

pub async fn run(command: AppSetCommand, common: crate::app::Common) -> anyhow::Result<ExitCode> {
    use crate::app::Output as Out;
    match command {
        AppSetCommand::List { output } => {
            let m = crate::connect::connect(&common.management).await?;
            let list = sets(&m.client, common.app_namespace(&m))
                .list(&Default::default())
                .await
                .context("listing ApplicationSets")?;
            let items: Vec<Value> = list
                .items
                .into_iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?;
            if output == Out::Table {
                let mut rows = vec![vec![
                    "NAME".into(),
                    "APPLICATIONS".into(),
                    "UP-TO-DATE".into(),
                    "APPLICATIONS-SYNC".into(),
                    "ERROR".into(),
                ]];
                rows.extend(items.iter().map(row));
                crate::app::print_table(&rows);
            } else {
                crate::app::emit(&Value::Array(items), output)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AppSetCommand::Get { name, output } => {
            let m = crate::connect::connect(&common.management).await?;
            let (ns, name) = mooring_core::app::qualified_name(&name, common.app_namespace(&m));
            let (ns, name) = (ns.to_string(), name.to_string());
            let set = sets(&m.client, &ns)
                .get_opt(&name)
                .await
                .with_context(|| format!("reading ApplicationSet {name}"))?
                .with_context(|| {
                    format!("ApplicationSet {name:?} not found (see `mooring appset list`)")
                })?;
            let set = serde_json::to_value(set)?;
            if output != Out::Table {
                crate::app::emit(&set, output)?;
                return Ok(ExitCode::SUCCESS);
            }
            let r = row(&set);
            println!("Name:               {}", r[0]);
            println!("Namespace:          {ns}");
            println!("Applications sync:  {}", r[3]);
            println!("Up to date:         {}", r[2]);
            for c in set["status"]["conditions"].as_array().into_iter().flatten() {
                println!(
                    "Condition:          {}={} {}",
                    c["type"].as_str().unwrap_or_default(),
                    c["status"].as_str().unwrap_or_default(),
                    c["message"].as_str().unwrap_or_default()
                );
            }
            println!();
            let mut rows = vec![vec!["APPLICATION".to_string(), "NAMESPACE".to_string()]];
            for res in set["status"]["resources"].as_array().into_iter().flatten() {
                rows.push(vec![
                    res["name"].as_str().unwrap_or_default().to_string(),
                    res["namespace"].as_str().unwrap_or_default().to_string(),
                ]);
            }
            crate::app::print_table(&rows);
            Ok(
                if condition(&set, "ErrorOccurred").is_some_and(|c| c["status"] == "True") {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                },
            )
        }
        AppSetCommand::Generate(args) => {
            let apps = generate(&args)?;
            match args.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&apps)?),
                Output::Yaml => {
                    for a in &apps {
                        println!("---");
                        print!("{}", serde_saphyr::to_string(a)?);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_flags() {
        let c =
            parse_cluster("prod-eu=https://eu:6443,environment=production,workload-type=inference")
                .expect("valid");
        assert_eq!(
            (c.name.as_str(), c.server.as_str()),
            ("prod-eu", "https://eu:6443")
        );
        assert_eq!(c.labels["environment"], "production");
        for bad in ["", "x", "=https://s", "x=", "x=s,novalue"] {
            assert!(parse_cluster(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_seed_generates_three_inference_apps() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ml-platform");
        let args = GenerateArgs {
            file: root.join("applicationsets/ml-inference-services.yaml"),
            output: Output::Yaml,
            clusters: vec![
                "prod-us-east=https://10.0.0.1:6443,environment=production,workload-type=inference".into(),
                "prod-eu-west=https://10.0.0.2:6443,environment=production,workload-type=inference".into(),
                "prod-ap-south=https://10.0.0.3:6443,environment=production,workload-type=inference".into(),
                "staging=https://10.0.0.4:6443,environment=staging,workload-type=inference".into(),
            ],
            repo_root: Some(root),
        };
        let apps = generate(&args).expect("generate");
        let names: Vec<&str> = apps
            .iter()
            .map(|a| a["metadata"]["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                "inference-prod-us-east",
                "inference-prod-eu-west",
                "inference-prod-ap-south"
            ]
        );
        let replicas: Vec<i64> = apps
            .iter()
            .map(|a| {
                a["spec"]["source"]["kustomize"]["replicas"][0]["count"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(-1)
            })
            .collect();
        assert_eq!(replicas, [6, 4, 3]);
        assert_eq!(
            apps[1]["spec"]["destination"]["server"],
            "https://10.0.0.2:6443"
        );
    }
}
