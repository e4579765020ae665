//! `mooring install [--namespace argocd] [--shards N] [--ha] [--image IMAGE]`: the
//! manifests that run Mooring inside Kubernetes, printed as one YAML stream for
//! `mooring install | kubectl apply -f -` (server-side apply or plain apply).
//!
//! The manifests are the kustomize base in the repository's `deploy/` directory, compiled
//! into the binary (`include_str!`), so `mooring install` with its defaults and
//! `kubectl kustomize deploy/` are the same objects by construction (a test compares
//! them, and another that `deploy/crds.yaml` is what [`mooring_k8s::crds::all`]
//! generates). The flags then do what a kustomize overlay would:
//!
//! | flag | change |
//! |---|---|
//! | `--namespace NS` | every namespaced object, the `Namespace` itself and the ServiceAccount subjects of the bindings (kustomize's `namespace:`); the components find it through `metadata.namespace` (downward API), so no argument changes |
//! | `--shards N` | the controller StatefulSet's `replicas` and its `--shards=N` argument |
//! | `--ha` | two server replicas, the server's PodDisruptionBudget becomes `minAvailable: 1`, and both workloads prefer to spread over nodes (pod anti-affinity on `kubernetes.io/hostname`) |
//! | `--image IMAGE` | every container's image (kustomize's `images:`) |
//!
//! `examples/install-ha` writes `--namespace mooring-system --shards 3 --ha` as a kustomize
//! overlay (a test compares the two). A bad value (`--shards 0`, a namespace that is not a
//! DNS-1123 label) is a usage error (exit 2) before anything is printed.

use clap::Args;
use serde_json::{json, Value};
use std::process::ExitCode;

/// The files of `deploy/`, in the order of its kustomization's `resources:`.
const DEPLOY_FILES: [(&str, &str); 7] = [
    (
        "namespace.yaml",
        include_str!("../../../deploy/namespace.yaml"),
    ),
    ("crds.yaml", include_str!("../../../deploy/crds.yaml")),
    ("rbac.yaml", include_str!("../../../deploy/rbac.yaml")),
    ("config.yaml", include_str!("../../../deploy/config.yaml")),
    (
        "controller.yaml",
        include_str!("../../../deploy/controller.yaml"),
    ),
    ("server.yaml", include_str!("../../../deploy/server.yaml")),
    (
        "network-policies.yaml",
        include_str!("../../../deploy/network-policies.yaml"),
    ),
];

/// The base's namespace (its kustomization's `namespace:`).
pub const BASE_NAMESPACE: &str = "argocd";

/// Names of the two workloads (and of their ServiceAccounts, Services and PDBs).
const CONTROLLER: &str = "mooring-controller";
const SERVER: &str = "mooring-server";

/// Server replicas with `--ha`.
const HA_SERVER_REPLICAS: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("--shards must be at least 1, got {0}")]
    Shards(u32),
    #[error("--namespace {name:?} is not a valid namespace name: {}", .reasons.join("; "))]
    Namespace { name: String, reasons: Vec<String> },
    #[error("--image must not be empty or contain whitespace, got {0:?}")]
    Image(String),
    #[error("deploy/{file} (compiled in) is not valid YAML: {source}")]
    Base {
        file: &'static str,
        #[source]
        source: mooring_core::yaml::YamlError,
    },
    #[error("deploy/ has no {kind} {name}: the base and `mooring install` disagree")]
    Missing {
        kind: &'static str,
        name: &'static str,
    },
}

#[derive(Args, Debug, Clone)]
pub struct InstallArgs {
    /// The control-plane namespace (Argo CD's default: argocd).
    #[arg(long, short = 'n', default_value = BASE_NAMESPACE)]
    pub namespace: String,
    /// Controller shards: StatefulSet replicas, each owning destination clusters through
    /// a Lease.
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// High availability: two server replicas with a PodDisruptionBudget of minAvailable 1,
    /// replicas spread over nodes.
    #[arg(long)]
    pub ha: bool,
    /// The container image (default: the one `deploy/` names, this version's tag).
    #[arg(long)]
    pub image: Option<String>,
}

/// Print the manifests.
pub fn run(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let objects = manifests(&args)?;
    let mut out = String::new();
    for o in &objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(o)?);
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// The objects of `deploy/`, as kustomize reads them (comments dropped, in file order).
pub fn base() -> Result<Vec<Value>, InstallError> {
    let mut all = Vec::new();
    for (file, text) in DEPLOY_FILES {
        let docs = mooring_core::yaml::parse_all(text)
            .map_err(|source| InstallError::Base { file, source })?;
        all.extend(docs);
    }
    Ok(all)
}

/// The manifests for `args`: [`base`] with the overlay of the flags applied.
pub fn manifests(args: &InstallArgs) -> Result<Vec<Value>, InstallError> {
    if args.shards == 0 {
        return Err(InstallError::Shards(args.shards));
    }
    let reasons = mooring_core::validation::is_dns1123_label(&args.namespace);
    if !reasons.is_empty() {
        return Err(InstallError::Namespace {
            name: args.namespace.clone(),
            reasons,
        });
    }
    if let Some(image) = &args.image {
        if image.is_empty() || image.chars().any(char::is_whitespace) {
            return Err(InstallError::Image(image.clone()));
        }
    }
    let mut objects = base()?;
    for o in &mut objects {
        set_namespace(o, &args.namespace);
        if let Some(image) = &args.image {
            set_image(o, image);
        }
    }
    let controller = find(&mut objects, "StatefulSet", CONTROLLER)?;
    controller["spec"]["replicas"] = json!(args.shards);
    set_arg(controller, "--shards", &args.shards.to_string());
    if args.ha {
        spread_over_nodes(controller, CONTROLLER);
        let server = find(&mut objects, "Deployment", SERVER)?;
        let replicas = server["spec"]["replicas"].as_u64().unwrap_or(1);
        server["spec"]["replicas"] = json!(replicas.max(HA_SERVER_REPLICAS));
        spread_over_nodes(server, SERVER);
        let pdb = find(&mut objects, "PodDisruptionBudget", SERVER)?;
        if let Some(spec) = pdb["spec"].as_object_mut() {
            spec.remove("maxUnavailable");
            spec.insert("minAvailable".into(), json!(1));
        }
    }
    Ok(objects)
}

/// The object of `kind` named `name`.
fn find<'a>(
    objects: &'a mut [Value],
    kind: &'static str,
    name: &'static str,
) -> Result<&'a mut Value, InstallError> {
    objects
        .iter_mut()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .ok_or(InstallError::Missing { kind, name })
}

/// kustomize's namespace transformer: namespaced objects (those the base gives a
/// namespace), the Namespace object, and ServiceAccount subjects of bindings.
fn set_namespace(o: &mut Value, ns: &str) {
    if o["kind"] == "Namespace" {
        o["metadata"]["name"] = json!(ns);
        return;
    }
    if o["metadata"].get("namespace").is_some() {
        o["metadata"]["namespace"] = json!(ns);
    }
    if let Some(subjects) = o.get_mut("subjects").and_then(Value::as_array_mut) {
        for s in subjects {
            if s["kind"] == "ServiceAccount" {
                s["namespace"] = json!(ns);
            }
        }
    }
}

/// The containers of a workload's pod template.
fn containers(o: &mut Value) -> impl Iterator<Item = &mut Value> {
    o.pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

fn set_image(o: &mut Value, image: &str) {
    for c in containers(o) {
        c["image"] = json!(image);
    }
}

/// Replace the value of `--flag=VALUE` in every container's args.
fn set_arg(o: &mut Value, flag: &str, value: &str) {
    let prefix = format!("{flag}=");
    for c in containers(o) {
        if let Some(args) = c.get_mut("args").and_then(Value::as_array_mut) {
            for a in args.iter_mut() {
                if a.as_str().is_some_and(|s| s.starts_with(&prefix)) {
                    *a = json!(format!("{prefix}{value}"));
                }
            }
        }
    }
}

/// Preferred pod anti-affinity on the node's host name, as Argo CD's HA manifests.
fn spread_over_nodes(o: &mut Value, name: &str) {
    o["spec"]["template"]["spec"]["affinity"] = json!({
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }],
        },
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> InstallArgs {
        InstallArgs {
            namespace: BASE_NAMESPACE.into(),
            shards: 1,
            ha: false,
            image: None,
        }
    }

    fn get<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
        objs.iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name}"))
    }

    /// `deploy/crds.yaml` is exactly what the Rust types generate (`mooring crds`).
    #[test]
    fn deploy_crds_are_generated_from_the_types() {
        let file: Vec<Value> = mooring_core::yaml::parse_all(DEPLOY_FILES[1].1).expect("yaml");
        assert!(
            file == mooring_k8s::crds::all(),
            "deploy/crds.yaml is stale: regenerate it with `mooring crds > deploy/crds.yaml` \
             (keeping its header comment)"
        );
    }

    /// The images of deploy/ are this version's.
    #[test]
    fn deploy_images_carry_the_crate_version() {
        let objs = manifests(&args()).expect("manifests");
        let mut n = 0;
        for o in &objs {
            for c in o
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                assert_eq!(
                    c["image"],
                    format!("mooring:{}", env!("CARGO_PKG_VERSION")),
                    "{}: after a version bump, update the image tag in deploy/controller.yaml \
                     and deploy/server.yaml (and the Containerfile's build hint)",
                    o["metadata"]["name"]
                );
                n += 1;
            }
        }
        assert_eq!(n, 2);
    }

    #[test]
    fn defaults_are_the_base() {
        assert_eq!(
            manifests(&args()).expect("manifests"),
            base().expect("base")
        );
    }

    #[test]
    fn flags_act_as_an_overlay() {
        let objs = manifests(&InstallArgs {
            namespace: "mooring-system".into(),
            shards: 3,
            ha: true,
            image: Some("registry.example.com/mooring@sha256:abc".into()),
        })
        .expect("manifests");
        assert_eq!(
            get(&objs, "Namespace", "mooring-system")["kind"],
            "Namespace"
        );
        for o in &objs {
            let ns = &o["metadata"]["namespace"];
            assert!(ns.is_null() || ns == "mooring-system", "{o}");
            for s in o["subjects"].as_array().into_iter().flatten() {
                assert_eq!(s["namespace"], "mooring-system");
            }
        }
        let sts = get(&objs, "StatefulSet", CONTROLLER);
        assert_eq!(sts["spec"]["replicas"], 3);
        let args = &sts["spec"]["template"]["spec"]["containers"][0]["args"];
        assert!(args
            .as_array()
            .expect("args")
            .contains(&json!("--shards=3")));
        assert_eq!(
            sts["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.example.com/mooring@sha256:abc"
        );
        let server = get(&objs, "Deployment", SERVER);
        assert_eq!(server["spec"]["replicas"], 2);
        assert!(server["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"].is_object());
        let pdb = get(&objs, "PodDisruptionBudget", SERVER);
        assert_eq!(
            pdb["spec"],
            json!({"minAvailable": 1, "selector": pdb["spec"]["selector"]})
        );
        // CRDs and cluster roles stay cluster-scoped.
        assert!(get(&objs, "ClusterRole", CONTROLLER)["metadata"]["namespace"].is_null());
    }

    #[test]
    fn bad_flags_are_refused() {
        let e = manifests(&InstallArgs {
            shards: 0,
            ..args()
        })
        .expect_err("0 shards");
        assert!(e.to_string().contains("--shards"), "{e}");
        for ns in ["Argo", "a.b", "", "-x", &"x".repeat(64)] {
            let e = manifests(&InstallArgs {
                namespace: ns.into(),
                ..args()
            })
            .expect_err(ns);
            assert!(e.to_string().contains("--namespace"), "{e}");
        }
        for image in ["", "a b"] {
            manifests(&InstallArgs {
                image: Some(image.into()),
                ..args()
            })
            .expect_err(image);
        }
    }
}
