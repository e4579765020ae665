//! Rendering against real trees on disk and the real kustomize (`kustomize` or
//! `kubectl kustomize` on PATH; install kubectl or kustomize if these tests say it is
//! missing).

use mooring_core::app::{ApplicationSource, DirectorySource, KustomizeSource};
use mooring_render::{
    inputs_touched, kustomize_inputs, render, source_inputs, source_type, RenderCache, RenderError,
    RenderOptions, SourceType,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

fn source(path: &str) -> ApplicationSource {
    ApplicationSource {
        repo_url: "https://git.example/ml-platform.git".into(),
        path: Some(path.into()),
        ..Default::default()
    }
}

fn dir_source(path: &str, recurse: bool, include: &str, exclude: &str) -> ApplicationSource {
    ApplicationSource {
        directory: Some(DirectorySource {
            recurse,
            include: (!include.is_empty()).then(|| include.into()),
            exclude: (!exclude.is_empty()).then(|| exclude.into()),
        }),
        ..source(path)
    }
}

fn names(objs: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = objs
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().expect("kind"),
                o["metadata"]["name"].as_str().expect("name")
            )
        })
        .collect();
    v.sort();
    v
}

fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n")
}

fn opts() -> RenderOptions {
    RenderOptions::default()
}

fn err(root: &Path, s: &ApplicationSource, o: &RenderOptions) -> RenderError {
    match render(root, s, o) {
        Ok(objs) => panic!("expected an error, rendered {:?}", names(&objs)),
        Err(e) => e,
    }
}

/// A plain directory: multi-document YAML with empty documents, JSON (object and array),
/// a List, a subdirectory, and files that are not manifests.
fn plain_tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    write(
        r,
        "app/a.yaml",
        &format!(
            "---\n{}---\n---\n# only a comment\n---\n{}",
            cm("a1"),
            cm("a2")
        ),
    );
    write(
        r,
        "app/b.json",
        r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"}, "spec": {"ports": [{"port": 80}]}}"#,
    );
    write(
        r,
        "app/c.yml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c1}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c2}\n",
    );
    write(
        r,
        "app/d.json",
        r#"[{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d1"}}]"#,
    );
    write(r, "app/sub/e.yaml", &cm("e"));
    write(r, "app/sub/deeper/f.yaml", &cm("f"));
    write(r, "app/README.md", "apiVersion: not a manifest\n");
    write(r, "app/notes.txt", "kind: whatever");
    // Not YAML a Kubernetes object would be, and not looking like one: ignored (Argo CD).
    write(r, "app/ci.yaml", "steps: [unclosed\n");
    t
}

#[test]
fn directory_plain_and_recurse() {
    let t = plain_tree();
    let objs = render(t.path(), &source("app"), &opts()).expect("render");
    assert_eq!(
        names(&objs),
        [
            "ConfigMap/a1",
            "ConfigMap/a2",
            "ConfigMap/c1",
            "ConfigMap/c2",
            "ConfigMap/d1",
            "Service/b"
        ]
    );
    assert_eq!(source_type(t.path(), &source("app")), SourceType::Directory);

    let objs = render(t.path(), &dir_source("app", true, "", ""), &opts()).expect("render");
    assert_eq!(objs.len(), 8, "{:?}", names(&objs));
    assert!(names(&objs).contains(&"ConfigMap/f".to_string()));

    // Path forms Argo CD accepts.
    let objs = render(t.path(), &source("./app/"), &opts()).expect("render ./app/");
    assert_eq!(objs.len(), 6);
}

#[test]
fn directory_include_exclude() {
    let t = plain_tree();
    let yaml_only = dir_source("app", true, "{*.yml,*.yaml}", "");
    let objs = render(t.path(), &yaml_only, &opts()).expect("render");
    assert_eq!(
        names(&objs),
        [
            "ConfigMap/a1",
            "ConfigMap/a2",
            "ConfigMap/c1",
            "ConfigMap/c2",
            "ConfigMap/e",
            "ConfigMap/f"
        ]
    );

    let no_sub = dir_source("app", true, "", "sub/*");
    let objs = render(t.path(), &no_sub, &opts()).expect("render");
    assert_eq!(objs.len(), 6, "{:?}", names(&objs));

    let only_sub = dir_source("app", true, "sub/*", "sub/deeper/*");
    let objs = render(t.path(), &only_sub, &opts()).expect("render");
    assert_eq!(names(&objs), ["ConfigMap/e"]);

    let json = dir_source("app", false, "*.json", "");
    let objs = render(t.path(), &json, &opts()).expect("render");
    assert_eq!(names(&objs), ["ConfigMap/d1", "Service/b"]);

    let e = err(t.path(), &dir_source("app", false, "{*.yaml", ""), &opts());
    assert!(matches!(e, RenderError::InvalidOption { .. }), "{e}");
}

#[test]
fn directory_invalid_manifest_names_file_and_document() {
    let t = tempfile::tempdir().expect("tempdir");
    write(t.path(), "app/ok.yaml", &cm("ok"));
    write(
        t.path(),
        "app/bad.yaml",
        &format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {{a: b}}\n",
            cm("x")
        ),
    );
    let e = err(t.path(), &source("app"), &opts());
    let msg = e.to_string();
    assert!(
        msg.contains("app/bad.yaml") && msg.contains("document 1"),
        "{msg}"
    );
    assert!(msg.contains("metadata.name"), "{msg}");

    // A manifest-looking file that does not parse is an error, naming the file.
    write(
        t.path(),
        "app2/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n",
    );
    let e = err(t.path(), &source("app2"), &opts());
    assert!(e.to_string().contains("app2/broken.yaml"), "{e}");
}

/// base + development/production overlays, as in the example repository.
fn kustomize_tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    write(
        r,
        "apps/model-serving/base/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: model-server\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: model-server}\n  template:\n    metadata:\n      labels: {app: model-server}\n    spec:\n      containers:\n      - name: server\n        image: nginx:1.25\n",
    );
    write(
        r,
        "apps/model-serving/base/service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: model-server\nspec:\n  selector: {app: model-server}\n  ports:\n  - port: 80\n",
    );
    write(
        r,
        "apps/model-serving/base/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\n",
    );
    write(
        r,
        "apps/model-serving/overlays/development/kustomization.yaml",
        "resources:\n- ../../base\nnamePrefix: dev-\nreplicas:\n- name: model-server\n  count: 1\n",
    );
    write(
        r,
        "apps/model-serving/overlays/production/kustomization.yml",
        "resources:\n- ../../base\nnamePrefix: prod-\nreplicas:\n- name: model-server\n  count: 5\npatches:\n- path: patch.yaml\n",
    );
    write(
        r,
        "apps/model-serving/overlays/production/patch.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: model-server\n  annotations: {tier: gold}\n",
    );
    t
}

fn deployment(objs: &[Value]) -> &Value {
    objs.iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment")
}

#[test]
fn kustomize_base_and_overlays() {
    let t = kustomize_tree();
    let dev = source("apps/model-serving/overlays/development");
    let prod = source("apps/model-serving/overlays/production");
    assert_eq!(source_type(t.path(), &dev), SourceType::Kustomize);
    assert_eq!(source_type(t.path(), &prod), SourceType::Kustomize);

    let objs = render(t.path(), &dev, &opts()).expect("render development");
    assert_eq!(
        names(&objs),
        ["Deployment/dev-model-server", "Service/dev-model-server"]
    );
    assert_eq!(deployment(&objs)["spec"]["replicas"], 1);

    let objs = render(t.path(), &prod, &opts()).expect("render production");
    assert_eq!(
        names(&objs),
        ["Deployment/prod-model-server", "Service/prod-model-server"]
    );
    let d = deployment(&objs);
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["annotations"]["tier"], "gold");

    let base = render(t.path(), &source("apps/model-serving/base"), &opts()).expect("base");
    assert_eq!(
        names(&base),
        ["Deployment/model-server", "Service/model-server"]
    );
}

#[test]
fn kustomize_argo_options_applied() {
    let t = kustomize_tree();
    let mut labels = BTreeMap::new();
    labels.insert("team".to_string(), "ml-platform".to_string());
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "owner".to_string(),
        "alice: \"ml\"\n---\nkind: Secret".to_string(),
    );
    let s = ApplicationSource {
        kustomize: Some(KustomizeSource {
            name_prefix: Some("argo-".into()),
            name_suffix: Some("-v2".into()),
            images: vec!["nginx=registry.example:5000/ml/nginx:1.27".into()],
            common_labels: labels,
            common_annotations: annotations,
            namespace: Some("serving".into()),
            replicas: vec![],
        }),
        ..source("apps/model-serving/overlays/production")
    };
    let objs = render(t.path(), &s, &opts()).expect("render with Argo CD options");
    // The wrapper adds its prefix outside the overlay's (see the module docs).
    assert_eq!(
        names(&objs),
        [
            "Deployment/argo-prod-model-server-v2",
            "Service/argo-prod-model-server-v2"
        ]
    );
    let d = deployment(&objs);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example:5000/ml/nginx:1.27"
    );
    assert_eq!(d["metadata"]["labels"]["team"], "ml-platform");
    assert_eq!(d["spec"]["selector"]["matchLabels"]["team"], "ml-platform");
    assert_eq!(d["metadata"]["namespace"], "serving");
    assert_eq!(
        d["metadata"]["annotations"]["owner"], "alice: \"ml\"\n---\nkind: Secret",
        "an annotation value stays a value"
    );
    assert_eq!(d["spec"]["replicas"], 5);
    // No wrapper is left behind in the tree.
    let leftovers: Vec<_> = std::fs::read_dir(t.path())
        .expect("read root")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".mooring"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // An image tag override alone, on the base.
    let s = ApplicationSource {
        kustomize: Some(KustomizeSource {
            images: vec!["nginx:1.27.1".into()],
            ..Default::default()
        }),
        ..source("apps/model-serving/base")
    };
    let objs = render(t.path(), &s, &opts()).expect("render");
    assert_eq!(
        deployment(&objs)["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27.1"
    );
}

#[test]
fn kustomize_replicas_option_overrides_the_overlay() {
    use mooring_core::app::KustomizeReplica;
    let t = kustomize_tree();
    // Production sets 5 replicas; the Argo CD option (what an ApplicationSet template
    // sets per cluster) wins, on the prefixed name kustomize matches by original name.
    let s = ApplicationSource {
        kustomize: Some(KustomizeSource {
            replicas: vec![KustomizeReplica {
                name: "model-server".into(),
                count: serde_json::json!("7"),
            }],
            ..Default::default()
        }),
        ..source("apps/model-serving/overlays/production")
    };
    let objs = render(t.path(), &s, &opts()).expect("render with replicas");
    assert_eq!(deployment(&objs)["spec"]["replicas"], 7);
}

#[test]
fn kustomize_inputs_list_bases() {
    let t = kustomize_tree();
    write(
        t.path(),
        "apps/shared/labels/kustomization.yaml",
        "resources:\n- cm.yaml\n",
    );
    write(t.path(), "apps/shared/labels/cm.yaml", &cm("shared"));
    write(
        t.path(),
        "apps/model-serving/overlays/staging/kustomization.yaml",
        "resources:\n- ../../base\n- ../../../shared/labels\n",
    );
    let inputs =
        kustomize_inputs(t.path(), "apps/model-serving/overlays/production").expect("inputs");
    assert_eq!(
        inputs,
        [
            "apps/model-serving/base",
            "apps/model-serving/overlays/production"
        ]
    );
    let inputs = kustomize_inputs(t.path(), "apps/model-serving/overlays/staging").expect("inputs");
    assert_eq!(
        inputs,
        [
            "apps/model-serving/base",
            "apps/model-serving/overlays/staging",
            "apps/shared/labels"
        ]
    );
    let changed = |p: &str| vec![p.to_string()];
    assert!(inputs_touched(
        &inputs,
        &changed("apps/model-serving/base/deployment.yaml")
    ));
    assert!(inputs_touched(
        &inputs,
        &changed("apps/shared/labels/cm.yaml")
    ));
    assert!(!inputs_touched(
        &inputs,
        &changed("apps/model-serving/overlays/production/patch.yaml")
    ));
    assert!(!inputs_touched(
        &inputs,
        &changed("apps/model-serving/base2/x.yaml")
    ));
    assert!(!inputs_touched(&inputs, &changed("README.md")));

    // A plain directory's inputs are the directory itself.
    let t = plain_tree();
    assert_eq!(kustomize_inputs(t.path(), "app").expect("inputs"), ["app"]);
}

#[test]
fn render_cache_reuses_across_untouched_commits() {
    let t = kustomize_tree();
    let s = source("apps/model-serving/overlays/development");
    let cache = RenderCache::new(16);
    let k1 = RenderCache::key_for(
        &s.repo_url,
        "c1",
        "apps/model-serving/overlays/development",
        &s,
    );
    let first = cache
        .get_or_render(&k1, || render(t.path(), &s, &opts()))
        .expect("render");
    let again = cache
        .get_or_render(&k1, || panic!("must come from the cache"))
        .expect("cached");
    assert!(std::sync::Arc::ptr_eq(&first, &again));

    let inputs =
        kustomize_inputs(t.path(), "apps/model-serving/overlays/development").expect("inputs");
    assert!(!inputs_touched(&inputs, &["docs/README.md".to_string()]));
    let reused = cache.reuse(&k1, "c2").expect("reused");
    assert!(std::sync::Arc::ptr_eq(&first, &reused));
    assert!(cache.get(&k1.at_commit("c2")).is_some());
}

#[test]
fn source_type_detection() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    write(r, "k1/kustomization.yml", "resources: []\n");
    write(r, "k2/Kustomization", "resources: []\n");
    write(
        r,
        "chart/Chart.yaml",
        "apiVersion: v2\nname: chart\nversion: 0.1.0\n",
    );
    write(
        r,
        "both/Chart.yaml",
        "apiVersion: v2\nname: both\nversion: 0.1.0\n",
    );
    write(r, "both/kustomization.yaml", "resources: []\n");
    write(r, "plain/cm.yaml", &cm("x"));
    write(r, "plain/sub/kustomization.yaml", "resources: []\n");
    assert_eq!(source_type(r, &source("k1")), SourceType::Kustomize);
    assert_eq!(source_type(r, &source("k2")), SourceType::Kustomize);
    assert_eq!(source_type(r, &source("chart")), SourceType::Helm);
    assert_eq!(source_type(r, &source("both")), SourceType::Kustomize);
    assert_eq!(source_type(r, &source("plain")), SourceType::Directory);
    let explicit = dir_source("k1", false, "", "");
    assert_eq!(source_type(r, &explicit), SourceType::Directory);

    let mut two = dir_source("k1", false, "", "");
    two.kustomize = Some(KustomizeSource::default());
    let e = err(r, &two, &opts());
    assert!(matches!(e, RenderError::MultipleSourceTypes { .. }), "{e}");
}

// ---------------------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------------------

#[test]
fn hostile_source_paths() {
    let t = plain_tree();
    for bad in ["../x", "app/../../x", "/etc", "/"] {
        let e = err(t.path(), &source(bad), &opts());
        assert!(matches!(e, RenderError::InvalidPath { .. }), "{bad}: {e}");
        assert!(e.to_string().contains(bad), "{e}");
    }
    let e = err(t.path(), &source("nope"), &opts());
    assert!(matches!(e, RenderError::PathNotFound { .. }), "{e}");
    let e = err(t.path(), &source("app/a.yaml"), &opts());
    assert!(matches!(e, RenderError::NotADirectory { .. }), "{e}");
    assert!(kustomize_inputs(t.path(), "../x").is_err());
}

#[test]
fn hostile_symlinks_leaving_root() {
    let outer = tempfile::tempdir().expect("tempdir");
    let root = outer.path().join("root");
    write(outer.path(), "secret/creds.yaml", &cm("stolen"));
    write(&root, "app/ok.yaml", &cm("ok"));
    std::os::unix::fs::symlink(
        outer.path().join("secret/creds.yaml"),
        root.join("app/creds.yaml"),
    )
    .expect("symlink");
    let e = err(&root, &source("app"), &opts());
    assert!(matches!(e, RenderError::OutsideRoot { .. }), "{e}");
    assert!(e.to_string().contains("app/creds.yaml"), "{e}");

    // source.path itself a symlink out of the tree.
    std::os::unix::fs::symlink(outer.path().join("secret"), root.join("linked")).expect("symlink");
    let e = err(&root, &source("linked"), &opts());
    assert!(matches!(e, RenderError::OutsideRoot { .. }), "{e}");

    // A kustomize resource that is a symlink out of the tree.
    write(
        &root,
        "kapp/kustomization.yaml",
        "resources:\n- creds.yaml\n",
    );
    std::os::unix::fs::symlink(
        outer.path().join("secret/creds.yaml"),
        root.join("kapp/creds.yaml"),
    )
    .expect("symlink");
    let e = err(&root, &source("kapp"), &opts());
    assert!(matches!(e, RenderError::OutsideRoot { .. }), "{e}");

    // A symlink that stays inside the tree is fine.
    write(&root, "inside/real.yaml", &cm("real"));
    write(&root, "app3/x.yaml", &cm("x"));
    std::os::unix::fs::symlink(root.join("inside/real.yaml"), root.join("app3/linked.yaml"))
        .expect("symlink");
    let objs = render(&root, &source("app3"), &opts()).expect("inside symlink");
    assert_eq!(names(&objs), ["ConfigMap/real", "ConfigMap/x"]);
}

#[test]
fn hostile_kustomize_bases_outside_root() {
    let outer = tempfile::tempdir().expect("tempdir");
    let root = outer.path().join("root");
    write(
        outer.path(),
        "outside/kustomization.yaml",
        "resources:\n- cm.yaml\n",
    );
    write(outer.path(), "outside/cm.yaml", &cm("outside"));
    write(
        &root,
        "app/kustomization.yaml",
        "resources:\n- ../../outside\n",
    );
    let e = err(&root, &source("app"), &opts());
    assert!(matches!(e, RenderError::OutsideRoot { .. }), "{e}");
    assert!(
        e.to_string().contains("../../outside") && e.to_string().contains("app/kustomization.yaml"),
        "{e}"
    );

    write(
        &root,
        "abs/kustomization.yaml",
        "resources:\n- /etc/hostname\n",
    );
    let e = err(&root, &source("abs"), &opts());
    assert!(
        matches!(
            e,
            RenderError::OutsideRoot { .. } | RenderError::MissingReference { .. }
        ),
        "{e}"
    );

    write(
        &root,
        "patch/kustomization.yaml",
        "resources: []\npatches:\n- path: ../../outside/cm.yaml\n",
    );
    let e = err(&root, &source("patch"), &opts());
    assert!(matches!(e, RenderError::OutsideRoot { .. }), "{e}");

    write(
        &root,
        "gen/kustomization.yaml",
        "configMapGenerator:\n- name: x\n  files:\n  - key=../../outside/cm.yaml\n",
    );
    let e = err(&root, &source("gen"), &opts());
    assert!(matches!(e, RenderError::OutsideRoot { .. }), "{e}");

    write(
        &root,
        "remote/kustomization.yaml",
        "resources:\n- https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0\n",
    );
    let e = err(&root, &source("remote"), &opts());
    assert!(matches!(e, RenderError::RemoteBase { .. }), "{e}");

    write(
        &root,
        "missing/kustomization.yaml",
        "resources:\n- nope.yaml\n",
    );
    let e = err(&root, &source("missing"), &opts());
    assert!(matches!(e, RenderError::MissingReference { .. }), "{e}");
}

fn alias_bomb() -> String {
    let mut y = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\na: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let mut prev = 'a';
    for c in 'b'..='p' {
        y.push_str(&format!(
            "{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
        prev = c;
    }
    y
}

#[test]
fn hostile_alias_bombs() {
    let t = tempfile::tempdir().expect("tempdir");
    write(t.path(), "dir/bomb.yaml", &alias_bomb());
    let started = Instant::now();
    let e = err(t.path(), &source("dir"), &opts());
    assert!(matches!(e, RenderError::Yaml { .. }), "{e}");
    assert!(e.to_string().contains("dir/bomb.yaml"), "{e}");

    write(
        t.path(),
        "kust/kustomization.yaml",
        "resources:\n- bomb.yaml\n",
    );
    write(t.path(), "kust/bomb.yaml", &alias_bomb());
    let e = err(t.path(), &source("kust"), &opts());
    assert!(e.to_string().contains("kust/bomb.yaml"), "{e}");

    write(t.path(), "kfile/kustomization.yaml", &alias_bomb());
    let e = err(t.path(), &source("kfile"), &opts());
    assert!(e.to_string().contains("kfile/kustomization.yaml"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn hostile_oversized_file() {
    let t = tempfile::tempdir().expect("tempdir");
    let mut big = cm("big");
    big.push_str(&format!("  blob: \"{}\"\n", "x".repeat(4096)));
    write(t.path(), "dir/big.yaml", &big);
    write(t.path(), "dir/small.yaml", &cm("small"));
    let small = RenderOptions {
        max_file_bytes: 1024,
        ..opts()
    };
    let e = err(t.path(), &source("dir"), &small);
    assert!(matches!(e, RenderError::FileTooLarge { .. }), "{e}");
    assert!(e.to_string().contains("dir/big.yaml"), "{e}");

    write(
        t.path(),
        "kust/kustomization.yaml",
        "resources:\n- ../dir/big.yaml\n",
    );
    let e = err(t.path(), &source("kust"), &small);
    assert!(matches!(e, RenderError::FileTooLarge { .. }), "{e}");
    assert!(render(t.path(), &source("dir"), &opts()).is_ok());
}

#[test]
fn hostile_output_over_cap() {
    let t = kustomize_tree();
    let capped = RenderOptions {
        max_output_bytes: 200,
        ..opts()
    };
    let e = err(
        t.path(),
        &source("apps/model-serving/overlays/production"),
        &capped,
    );
    assert!(matches!(e, RenderError::OutputTooLarge { .. }), "{e}");

    let t = plain_tree();
    let e = err(t.path(), &dir_source("app", true, "", ""), &capped);
    assert!(matches!(e, RenderError::OutputTooLarge { .. }), "{e}");
}

#[test]
fn hostile_kustomize_options() {
    let t = kustomize_tree();
    let with = |ks: KustomizeSource| ApplicationSource {
        kustomize: Some(ks),
        ..source("apps/model-serving/base")
    };
    let label = |k: &str, v: &str| {
        let mut m = BTreeMap::new();
        m.insert(k.to_string(), v.to_string());
        m
    };
    let cases = [
        with(KustomizeSource {
            images: vec!["--help".into()],
            ..Default::default()
        }),
        with(KustomizeSource {
            images: vec!["nginx:1.0\n- name: evil".into()],
            ..Default::default()
        }),
        with(KustomizeSource {
            images: vec!["nginx=--load-restrictor=LoadRestrictionsNone".into()],
            ..Default::default()
        }),
        with(KustomizeSource {
            common_labels: label("-x", "y"),
            ..Default::default()
        }),
        with(KustomizeSource {
            common_labels: label("team", "a\nb"),
            ..Default::default()
        }),
        with(KustomizeSource {
            common_annotations: label("--enable-helm", "y"),
            ..Default::default()
        }),
        with(KustomizeSource {
            name_prefix: Some("--help".into()),
            ..Default::default()
        }),
        with(KustomizeSource {
            name_suffix: Some("-x\nnamespace: kube-system".into()),
            ..Default::default()
        }),
        with(KustomizeSource {
            namespace: Some("-n".into()),
            ..Default::default()
        }),
    ];
    for s in cases {
        let e = err(t.path(), &s, &opts());
        assert!(matches!(e, RenderError::InvalidOption { .. }), "{s:?}: {e}");
    }
}

fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

#[test]
fn hostile_timeout_kills_the_tool() {
    let t = kustomize_tree();
    let bin = tempfile::tempdir().expect("tempdir");
    let slow = script(bin.path(), "kustomize", "sleep 30");
    let o = RenderOptions {
        kustomize: Some(slow),
        timeout: Duration::from_millis(300),
        ..opts()
    };
    let started = Instant::now();
    let e = err(t.path(), &source("apps/model-serving/base"), &o);
    assert!(matches!(e, RenderError::Timeout { .. }), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn hostile_endless_output_is_cut_off() {
    let t = kustomize_tree();
    let bin = tempfile::tempdir().expect("tempdir");
    let endless = script(bin.path(), "kustomize", "exec yes 'a: b'");
    let o = RenderOptions {
        kustomize: Some(endless),
        max_output_bytes: 1024 * 1024,
        timeout: Duration::from_secs(60),
        ..opts()
    };
    let started = Instant::now();
    let e = err(t.path(), &source("apps/model-serving/base"), &o);
    assert!(matches!(e, RenderError::OutputTooLarge { .. }), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn tool_failure_reports_stderr_and_argv() {
    let t = kustomize_tree();
    let bin = tempfile::tempdir().expect("tempdir");
    let failing = script(
        bin.path(),
        "fake-kustomize",
        "echo \"args: $*\" >&2\necho '  Error: accumulating resources  ' >&2\nexit 3",
    );
    let o = RenderOptions {
        kustomize: Some(failing),
        ..opts()
    };
    let e = err(t.path(), &source("apps/model-serving/base"), &o);
    let msg = e.to_string();
    assert!(matches!(e, RenderError::ToolFailed { .. }), "{msg}");
    assert!(msg.contains("Error: accumulating resources"), "{msg}");
    assert!(
        msg.contains("--load-restrictor LoadRestrictionsRootOnly"),
        "{msg}"
    );
    assert!(
        msg.contains("args: build apps/model-serving/base "),
        "{msg}"
    );

    // A real kustomize error comes through the same way, with repository paths.
    write(
        t.path(),
        "broken/kustomization.yaml",
        "resources:\n- cm.yaml\nbogusField: 1\n",
    );
    write(t.path(), "broken/cm.yaml", &cm("x"));
    let e = err(t.path(), &source("broken"), &opts());
    let msg = e.to_string();
    assert!(matches!(e, RenderError::ToolFailed { .. }), "{msg}");
    assert!(msg.contains("bogusField"), "{msg}");
    assert!(
        !msg.contains(&*t.path().to_string_lossy()),
        "temporary paths are not shown: {msg}"
    );
}

#[test]
fn hostile_duplicate_resources() {
    let t = tempfile::tempdir().expect("tempdir");
    write(t.path(), "dir/one.yaml", &cm("model-config"));
    write(
        t.path(),
        "dir/two.yaml",
        &format!("{}---\n{}", cm("other"), cm("model-config")),
    );
    let e = err(t.path(), &source("dir"), &opts());
    let msg = e.to_string();
    assert!(matches!(e, RenderError::DuplicateResource { .. }), "{msg}");
    assert!(
        msg.contains("dir/one.yaml") && msg.contains("dir/two.yaml"),
        "{msg}"
    );
    assert!(msg.contains("ConfigMap/model-config"), "{msg}");

    // Same name in different namespaces or kinds is fine.
    write(
        t.path(),
        "ok/a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: b}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: x, namespace: a}\n",
    );
    assert_eq!(
        render(t.path(), &source("ok"), &opts())
            .expect("render")
            .len(),
        3
    );

    // kustomize refuses duplicates itself; the message comes through.
    write(
        t.path(),
        "kdup/kustomization.yaml",
        "resources:\n- one.yaml\n- two.yaml\n",
    );
    write(t.path(), "kdup/one.yaml", &cm("same"));
    write(t.path(), "kdup/two.yaml", &cm("same"));
    let e = err(t.path(), &source("kdup"), &opts());
    assert!(e.to_string().contains("same"), "{e}");
}

#[test]
fn helm_missing_is_a_clear_error() {
    let t = tempfile::tempdir().expect("tempdir");
    write(
        t.path(),
        "charts/inference/Chart.yaml",
        "apiVersion: v2\nname: inference\nversion: 0.1.0\n",
    );
    write(t.path(), "charts/inference/templates/cm.yaml", &cm("x"));
    let s = source("charts/inference");
    assert_eq!(source_type(t.path(), &s), SourceType::Helm);
    let o = RenderOptions {
        helm: Some(t.path().join("no-such-helm")),
        ..opts()
    };
    let e = err(t.path(), &s, &o);
    assert!(matches!(e, RenderError::HelmMissing { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("charts/inference") && msg.contains("install helm"),
        "{msg}"
    );

    // Hostile helm options are refused before any binary is looked for.
    let s = ApplicationSource {
        helm: Some(serde_json::json!({"valueFiles": ["--post-renderer=/bin/sh"]})),
        ..source("charts/inference")
    };
    let e = err(t.path(), &s, &o);
    assert!(matches!(e, RenderError::InvalidOption { .. }), "{e}");
    let s = ApplicationSource {
        helm: Some(serde_json::json!({"valueFiles": ["../../../../etc/hostname"]})),
        ..source("charts/inference")
    };
    let e = err(t.path(), &s, &o);
    assert!(matches!(e, RenderError::OutsideRoot { .. }), "{e}");
}

#[test]
fn helm_template_arguments() {
    let t = tempfile::tempdir().expect("tempdir");
    write(
        t.path(),
        "charts/inference/Chart.yaml",
        "apiVersion: v2\nname: inference\nversion: 0.1.0\n",
    );
    write(t.path(), "envs/prod/values.yaml", "replicas: 3\n");
    let bin = tempfile::tempdir().expect("tempdir");
    // A stand-in for helm that renders its own arguments into a ConfigMap.
    let helm = script(
        bin.path(),
        "helm",
        "printf -- '---\\n# Source: inference/templates/cm.yaml\\napiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: %s\\ndata:\\n' \"$2\"\ni=0\nfor a in \"$@\"; do i=$((i+1)); printf \"  a%02d: '%s'\\n\" $i \"$a\"; done",
    );
    let s = ApplicationSource {
        helm: Some(serde_json::json!({
            "releaseName": "inference-prod",
            "namespace": "serving",
            "valueFiles": ["../../envs/prod/values.yaml"],
            "valuesObject": {"image": {"tag": "v2"}},
            "parameters": [{"name": "model.uri", "value": "s3://models/a,b"}, {"name": "x", "value": "1", "forceString": true}],
        })),
        ..source("charts/inference")
    };
    let o = RenderOptions {
        helm: Some(helm),
        ..opts()
    };
    let objs = render(t.path(), &s, &o).expect("render through the stand-in");
    assert_eq!(names(&objs), ["ConfigMap/inference-prod"]);
    let args: Vec<String> = objs[0]["data"]
        .as_object()
        .expect("data")
        .values()
        .map(|v| v.as_str().expect("string").to_string())
        .collect();
    assert_eq!(args[0], "template");
    assert!(args[2].ends_with("charts/inference"), "{args:?}");
    for want in [
        "--namespace=serving",
        "--include-crds",
        "--set=model.uri=s3://models/a\\,b",
        "--set-string=x=1",
    ] {
        assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
    }
    assert!(
        args.iter()
            .any(|a| a.starts_with("--values=") && a.ends_with("envs/prod/values.yaml")),
        "{args:?}"
    );
    assert!(
        args.iter().filter(|a| a.starts_with("--values=")).count() == 2,
        "{args:?}"
    );

    let inputs = source_inputs(t.path(), &s).expect("inputs");
    assert_eq!(inputs, ["charts/inference", "envs/prod"]);
}

#[test]
fn helm_ref_value_files_read_the_ref_sources_tree() {
    // The chart's repository, and a second repository (a `ref: values` source) exported
    // into its own tree, as the controller does for a multi-source app.
    let t = tempfile::tempdir().expect("tempdir");
    write(
        t.path(),
        "charts/inference/Chart.yaml",
        "apiVersion: v2\nname: inference\nversion: 0.1.0\n",
    );
    write(t.path(), "charts/inference/values.yaml", "replicas: 1\n");
    let values = tempfile::tempdir().expect("tempdir");
    write(values.path(), "envs/prod/values.yaml", "replicas: 3\n");
    let outside = tempfile::tempdir().expect("tempdir");
    write(outside.path(), "secret.yaml", "token: x\n");
    std::os::unix::fs::symlink(
        outside.path().join("secret.yaml"),
        values.path().join("envs/escape.yaml"),
    )
    .expect("symlink");
    let bin = tempfile::tempdir().expect("tempdir");
    // A stand-in for helm that renders its own arguments into a ConfigMap (the argv the
    // real helm would get).
    let helm = script(
        bin.path(),
        "helm",
        "printf -- '---\\napiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: %s\\ndata:\\n' \"$2\"\ni=0\nfor a in \"$@\"; do i=$((i+1)); printf \"  a%02d: '%s'\\n\" $i \"$a\"; done",
    );
    let o = RenderOptions {
        helm: Some(helm),
        ..opts()
    };
    let refs = mooring_render::RefRoots::from([("values".to_string(), values.path().into())]);
    let with_files = |files: Value, ignore_missing: bool| ApplicationSource {
        helm: Some(serde_json::json!({
            "releaseName": "inference",
            "valueFiles": files,
            "ignoreMissingValueFiles": ignore_missing,
        })),
        ..source("charts/inference")
    };
    let argv = |objs: &[Value]| -> Vec<String> {
        objs[0]["data"]
            .as_object()
            .expect("data")
            .values()
            .map(|v| v.as_str().expect("string").to_string())
            .collect()
    };

    let s = with_files(
        serde_json::json!(["values.yaml", "$values/envs/prod/values.yaml"]),
        false,
    );
    let objs = mooring_render::render_with_refs(t.path(), &s, &refs, &o).expect("render");
    let args = argv(&objs);
    let values_args: Vec<&String> = args.iter().filter(|a| a.starts_with("--values=")).collect();
    let canon_values = values.path().canonicalize().expect("canon");
    assert_eq!(values_args.len(), 2, "{args:?}");
    assert!(
        values_args[0].ends_with("charts/inference/values.yaml"),
        "{args:?}"
    );
    assert_eq!(
        values_args[1].as_str(),
        format!(
            "--values={}",
            canon_values.join("envs/prod/values.yaml").display()
        ),
        "the ref file comes from the ref tree, in the order written"
    );

    // A missing ref file: an error naming it, or skipped with ignoreMissingValueFiles.
    let s = with_files(serde_json::json!(["$values/envs/dev/values.yaml"]), false);
    let e = mooring_render::render_with_refs(t.path(), &s, &refs, &o).expect_err("missing");
    assert!(
        matches!(e, RenderError::MissingReference { .. })
            && e.to_string().contains("$values/envs/dev/values.yaml"),
        "{e}"
    );
    let s = with_files(serde_json::json!(["$values/envs/dev/values.yaml"]), true);
    let objs = mooring_render::render_with_refs(t.path(), &s, &refs, &o).expect("skipped");
    assert!(!argv(&objs).iter().any(|a| a.starts_with("--values=")));

    // Hostile: a symlink out of the ref tree, `..`, an unknown ref — nothing runs.
    let s = with_files(serde_json::json!(["$values/envs/escape.yaml"]), false);
    let e = mooring_render::render_with_refs(t.path(), &s, &refs, &o).expect_err("escape");
    assert!(matches!(e, RenderError::OutsideRoot { .. }), "{e}");
    let s = with_files(serde_json::json!(["$values/../../etc/passwd"]), false);
    let e = mooring_render::render_with_refs(t.path(), &s, &refs, &o).expect_err("dotdot");
    assert!(matches!(e, RenderError::InvalidOption { .. }), "{e}");
    let s = with_files(serde_json::json!(["$other/values.yaml"]), false);
    let e = mooring_render::render_with_refs(t.path(), &s, &refs, &o).expect_err("unknown");
    assert!(matches!(e, RenderError::UnknownRef { .. }), "{e}");
    let e = render(t.path(), &s, &o).expect_err("no refs given");
    assert!(e.to_string().contains("refs defined: none"), "{e}");
}
