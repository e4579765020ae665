//! The kube boundary, enforced from `cargo metadata` (see `docs/architecture.md`).
//!
//! `mooring-k8s` owns client construction, cluster connection, discovery, CRDs and the
//! resource descriptors, and is the only crate that depends on kube-rs: the controller,
//! the server and the CLI reach kube-rs types through its re-export (`mooring_k8s::kube`),
//! so there is one kube-rs version and one way in. The crates that decide and read
//! (`core`, `engine`, `source`, `render`, and `policy` once it is its own crate) never
//! see kube, the Kubernetes client, or tokio. A new dependency that breaks this fails here,
//! naming the crate and the dependency, instead of being noticed in review.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// The crates that hold Mooring's vocabulary and rules: no kube, no tokio, no cluster.
/// `mooring-policy` is checked when it exists.
const PURE: &[&str] = &[
    "mooring-core",
    "mooring-engine",
    "mooring-source",
    "mooring-render",
    "mooring-policy",
    "mooring-notify",
];

/// Never a direct (normal or build) dependency of a pure crate.
const FORBIDDEN_DIRECT: &[&str] = &[
    "kube",
    "kube-client",
    "kube-core",
    "kube-runtime",
    "kube-derive",
    "k8s-openapi",
    "tokio",
    "mooring-k8s",
    "mooring-apiserver",
    "mooring-controller",
    "mooring-server",
    "mooring",
];

/// Never pulled in by a pure crate at all, however indirectly.
const FORBIDDEN_ANYWHERE: &[&str] = &[
    "kube",
    "kube-client",
    "kube-core",
    "kube-runtime",
    "k8s-openapi",
    "tokio",
    "mooring-k8s",
];

/// Known, documented exceptions: (crate, dependency, why). Allowed directly and indirectly.
const ALLOWED: &[(&str, &str, &str)] = &[(
    "mooring-engine",
    "k8s-openapi",
    "engine::schema decodes built-in kinds into k8s-openapi's generated types to report \
     bad fields; those are plain serde data types with no client, I/O or runtime",
)];

/// Exceptions allowed only indirectly (the crate's own code cannot name them).
const ALLOWED_INDIRECT: &[(&str, &str, &str)] = &[
    (
        "mooring-source",
        "tokio",
        "gix's HTTP transport uses reqwest's blocking client, which runs tokio inside it",
    ),
    (
        "mooring-policy",
        "k8s-openapi",
        "through mooring-engine (schema validation of constraint parameters), the \
         exception above",
    ),
    (
        "mooring-notify",
        "k8s-openapi",
        "through mooring-engine (the shared Go-template function set), the exception above",
    ),
];

/// The one crate that may depend on kube-rs (and k8s-openapi's client-side use) directly;
/// everyone else, tests included, goes through `mooring_k8s::kube`.
const KUBE_DIRECT: &[(&str, &str)] = &[("mooring-k8s", "normal")];

fn metadata() -> Value {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(&workspace)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

fn allowed(krate: &str, dep: &str) -> bool {
    ALLOWED.iter().any(|(c, d, _)| *c == krate && *d == dep)
}

fn allowed_indirect(krate: &str, dep: &str) -> bool {
    allowed(krate, dep)
        || ALLOWED_INDIRECT
            .iter()
            .any(|(c, d, _)| *c == krate && *d == dep)
}

/// `(crate, dependency, kind)` for every declared dependency of every workspace member;
/// kind is `normal`, `dev` or `build`.
fn declared(meta: &Value) -> Vec<(String, String, String)> {
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut out = Vec::new();
    for pkg in meta["packages"].as_array().expect("packages") {
        if !members.contains(pkg["id"].as_str().unwrap_or_default()) {
            continue;
        }
        let krate = pkg["name"].as_str().expect("package name");
        for dep in pkg["dependencies"].as_array().expect("dependencies") {
            let name = dep["name"].as_str().expect("dependency name");
            let kind = dep["kind"].as_str().unwrap_or("normal");
            out.push((krate.to_string(), name.to_string(), kind.to_string()));
        }
    }
    out
}

#[test]
fn pure_crates_never_depend_on_kube_tokio_or_the_cluster_crates() {
    let meta = metadata();
    let mut broken = Vec::new();
    for (krate, dep, kind) in declared(&meta) {
        if PURE.contains(&krate.as_str())
            && kind != "dev"
            && FORBIDDEN_DIRECT.contains(&dep.as_str())
            && !allowed(&krate, &dep)
        {
            broken.push(format!("{krate} depends on {dep} ({kind})"));
        }
    }
    assert!(
        broken.is_empty(),
        "the pure crates must not see kube, tokio or the cluster crates:\n{}",
        broken.join("\n")
    );
}

#[test]
fn pure_crates_never_pull_kube_or_tokio_in_indirectly() {
    let meta = metadata();
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("package id"),
                p["name"].as_str().expect("package name"),
            )
        })
        .collect();
    let nodes: BTreeMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .map(|n| (n["id"].as_str().expect("node id"), n))
        .collect();
    // Normal (non-dev, non-build) edges only: what the library itself links.
    let normal_deps = |id: &str| -> Vec<String> {
        nodes[id]["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .is_some_and(|ks| ks.iter().any(|k| k["kind"].is_null()))
            })
            .map(|d| d["pkg"].as_str().expect("dep pkg").to_string())
            .collect()
    };
    let mut checked = 0;
    let mut broken = Vec::new();
    for (id, name) in &names {
        if !PURE.contains(name) || !nodes.contains_key(id) {
            continue;
        }
        checked += 1;
        // Walk the graph, remembering how each crate was reached, to name the path.
        let mut via: BTreeMap<String, String> = BTreeMap::new();
        let mut stack = vec![id.to_string()];
        while let Some(cur) = stack.pop() {
            for dep in normal_deps(&cur) {
                if via.contains_key(&dep) {
                    continue;
                }
                via.insert(dep.clone(), cur.clone());
                stack.push(dep);
            }
        }
        for dep in via.keys() {
            let dep_name = names[dep.as_str()];
            if FORBIDDEN_ANYWHERE.contains(&dep_name) && !allowed_indirect(name, dep_name) {
                let mut path = vec![dep_name.to_string()];
                let mut cur = dep.clone();
                while let Some(parent) = via.get(&cur) {
                    path.push(names[parent.as_str()].to_string());
                    if parent == id {
                        break;
                    }
                    cur = parent.clone();
                }
                path.reverse();
                broken.push(path.join(" -> "));
            }
        }
    }
    assert!(
        checked >= 4,
        "the pure crates were not found in cargo metadata"
    );
    assert!(
        broken.is_empty(),
        "the pure crates must not pull in kube, k8s-openapi or tokio:\n{}",
        broken.join("\n")
    );
}

#[test]
fn only_mooring_k8s_depends_on_kube_rs() {
    let meta = metadata();
    let mut broken = Vec::new();
    for (krate, dep, kind) in declared(&meta) {
        let kube_rs = dep.starts_with("kube") || (dep == "k8s-openapi" && !allowed(&krate, &dep));
        if kube_rs && !KUBE_DIRECT.contains(&(krate.as_str(), kind.as_str())) {
            broken.push(format!(
                "{krate} depends on {dep} ({kind}); use mooring_k8s::{{kube, k8s_openapi}}"
            ));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
