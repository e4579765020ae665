use super::*;
use serde_json::json;

fn change(name: &str, tag: &str) -> ImageChange {
    ImageChange {
        alias: None,
        name: name.into(),
        new_name: None,
        old: None,
        new_tag: tag.into(),
        new_digest: None,
    }
}

const OVERLAY: &str = "\
# The production overlay.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base # the base
images:
  # pinned by the image updater
  - name: example/guestbook
    newTag: v1 # old
  - name: redis
    newName: registry.example.com/redis
    newTag: \"7.0\"
namePrefix: prod-
";

#[test]
fn edit_kustomization_changes_only_the_entrys_version() {
    let out = edit_kustomization(OVERLAY, &[change("example/guestbook", "v2")]).expect("edits");
    // Every other byte kept, comments inside the images: block included.
    assert_eq!(
        out,
        OVERLAY.replace("newTag: v1 # old", "newTag: \"v2\" # old")
    );
}

#[test]
fn edit_kustomization_appends_new_images_and_the_block() {
    let text = "resources:\n- deployment.yaml\n";
    let mut c = change("nginx", "1.27.1");
    c.new_digest = Some(format!("sha256:{}", "a".repeat(64)));
    let out = edit_kustomization(text, &[c]).expect("edits");
    let v = mooring_core::yaml::parse_one(&out).expect("yaml");
    assert_eq!(v["resources"][0], "deployment.yaml");
    assert_eq!(v["images"][0]["name"], "nginx");
    assert_eq!(v["images"][0]["newTag"], "1.27.1");
    assert!(v["images"][0]["digest"]
        .as_str()
        .expect("digest")
        .starts_with("sha256:"));
    assert!(
        out.starts_with("resources:\n- deployment.yaml\nimages:\n- name:"),
        "{out}"
    );
    // Without a trailing newline, and with a new name (kustomize.image-name).
    let mut c = change("argoproj/argocd", "1.7.0-a6399e59");
    c.new_name = Some("docker.pkg.github.com/argoproj/argo-cd/argocd".into());
    let out = edit_kustomization("resources: [a.yaml]", &[c]).expect("edits");
    let v = mooring_core::yaml::parse_one(&out).expect("yaml");
    assert_eq!(
        v["images"][0]["newName"],
        "docker.pkg.github.com/argoproj/argo-cd/argocd"
    );
}

#[test]
fn edit_kustomization_removes_a_stale_digest_and_keeps_unknown_keys() {
    let text = "images:\n- name: nginx\n  digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\n  extra: {a: 1}\n";
    let out = edit_kustomization(text, &[change("nginx", "1.2")]).expect("edits");
    let v = mooring_core::yaml::parse_one(&out).expect("yaml");
    assert_eq!(v["images"][0].get("digest"), None);
    assert_eq!(v["images"][0]["extra"]["a"], 1);
}

#[test]
fn edit_kustomization_hostile_inputs() {
    let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
    assert!(edit_kustomization(bomb, &[change("nginx", "1")]).is_err());
    let huge = format!("x: \"{}\"\n", "a".repeat(9 * 1024 * 1024));
    assert!(edit_kustomization(&huge, &[change("nginx", "1")]).is_err());
    // A flow-style top-level mapping cannot be edited in place: an error, not a mess.
    let e = edit_kustomization("{resources: [a.yaml]}", &[change("nginx", "1")]).expect_err("flow");
    assert!(e.to_string().contains("kustomization"), "{e}");
    assert!(edit_kustomization("images: nope\n", &[change("nginx", "1")]).is_err());
    assert!(edit_kustomization("- a\n", &[change("nginx", "1")]).is_err());
    // A tag that is not a tag never reaches the file.
    let e = edit_kustomization("resources: []\n", &[change("nginx", "1\nevil: true")])
        .expect_err("bad tag");
    assert!(e.to_string().contains("tag"), "{e}");
}

#[test]
fn parameter_file_kustomize_merges() {
    let existing = "kustomize:\n  images:\n  - redis:7.0\n  - nginx:1.0\n";
    let out = parameter_file(
        Some(existing),
        &[change("nginx", "1.27.1")],
        ParameterKind::Kustomize,
    )
    .expect("written");
    let v = mooring_core::yaml::parse_one(&out).expect("yaml");
    assert_eq!(
        v["kustomize"]["images"],
        json!(["redis:7.0", "nginx:1.27.1"])
    );
    let mut c = change("argoproj/argocd", "1.7.0-a6399e59");
    c.new_name = Some("docker.pkg.github.com/argoproj/argo-cd/argocd".into());
    let out = parameter_file(None, &[c], ParameterKind::Kustomize).expect("written");
    let v = mooring_core::yaml::parse_one(&out).expect("yaml");
    assert_eq!(
        v["kustomize"]["images"],
        json!(["argoproj/argocd=docker.pkg.github.com/argoproj/argo-cd/argocd:1.7.0-a6399e59"])
    );
}

fn helm_image(alias: &str, image: &str, name: Option<&str>, tag: Option<&str>) -> WatchedImage {
    WatchedImage {
        alias: Some(alias.into()),
        image: ImageRef::parse(image).expect("image"),
        constraint: None,
        strategy: Default::default(),
        allow_tags: None,
        ignore_tags: vec![],
        platforms: vec![],
        pull_secret: None,
        kustomize_image_name: None,
        helm_image_name: name.map(Into::into),
        helm_image_tag: tag.map(Into::into),
        helm_image_spec: None,
        force_update: false,
    }
}

#[test]
fn parameter_file_helm_and_argocd_override() {
    let images = vec![helm_image(
        "dex",
        "quay.io/dexidp/dex",
        Some("dex.image.name"),
        Some("dex.image.tag"),
    )];
    let mut c = change("quay.io/dexidp/dex", "v2.41.1");
    c.alias = Some("dex".into());
    let existing = "helm:\n  parameters:\n  - name: replicas\n    value: \"2\"\n  - name: dex.image.tag\n    value: v2.40.0\n    forcestring: true\n";
    let out = parameter_file(
        Some(existing),
        std::slice::from_ref(&c),
        ParameterKind::Helm { images: &images },
    )
    .expect("written");
    let v = mooring_core::yaml::parse_one(&out).expect("yaml");
    assert_eq!(
        v["helm"]["parameters"],
        json!([
            {"name": "replicas", "value": "2"},
            {"name": "dex.image.tag", "value": "v2.41.1", "forcestring": true},
            {"name": "dex.image.name", "value": "quay.io/dexidp/dex", "forcestring": true}
        ])
    );
    let source = mooring_core::app::ApplicationSource {
        repo_url: "https://git.example.com/charts.git".into(),
        helm: Some(json!({"parameters": [{"name": "replicas", "value": "2"}]})),
        ..Default::default()
    };
    let patch =
        argocd_override(&source, &[c], ParameterKind::Helm { images: &images }).expect("patch");
    assert_eq!(
        patch["spec"]["source"]["helm"]["parameters"][0]["name"],
        "replicas"
    );
    assert_eq!(
        patch["spec"]["source"]["helm"]["parameters"][1]["value"],
        "quay.io/dexidp/dex"
    );
    // Defaults image.name / image.tag.
    let images = vec![helm_image("a", "nginx", None, None)];
    let mut c = change("nginx", "1.2");
    c.alias = Some("a".into());
    let out = parameter_file(None, &[c], ParameterKind::Helm { images: &images }).expect("written");
    assert!(out.contains("image.tag"), "{out}");
    assert!(parameter_file(
        Some("kustomize: 3"),
        &[change("nginx", "1")],
        ParameterKind::Kustomize
    )
    .is_err());
}

#[test]
fn argocd_override_kustomize_keeps_other_images() {
    let source = mooring_core::app::ApplicationSource {
        repo_url: "https://git.example.com/apps.git".into(),
        kustomize: Some(mooring_core::app::KustomizeSource {
            images: vec!["redis:7".into(), "nginx:1.0".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let patch = argocd_override(&source, &[change("nginx", "1.1")], ParameterKind::Kustomize)
        .expect("patch");
    assert_eq!(
        patch,
        json!({"spec": {"source": {"kustomize": {"images": ["redis:7", "nginx:1.1"]}}}})
    );
}

#[test]
fn commit_messages() {
    let mut c = change("nginx", "1.27.1");
    c.old = Some("1.27.0".into());
    assert_eq!(
        commit_message("guestbook", std::slice::from_ref(&c), None).expect("message"),
        "build: automatic update of guestbook\n\nupdates image nginx tag '1.27.0' to '1.27.1'\n"
    );
    // Image Updater's documented template, verbatim.
    let template = "build: automatic update of {{ .AppName }}\n\n{{ range .AppChanges -}}\nupdates image {{ .Image }} tag '{{ .OldTag }}' to '{{ .NewTag }}'\n{{ end -}}\n";
    assert_eq!(
        commit_message("guestbook", std::slice::from_ref(&c), Some(template)).expect("message"),
        "build: automatic update of guestbook\n\nupdates image nginx tag '1.27.0' to '1.27.1'\n"
    );
    let e = commit_message("g", &[c.clone()], Some("{{ .Env }}")).expect_err("unsupported");
    assert!(e.to_string().contains(".Env"), "{e}");
    assert!(commit_message("g", &[c.clone()], Some("{{ range .AppChanges }}x")).is_err());
    assert!(commit_message("g", &[c], Some("{{ .AppName")).is_err());
}

#[test]
fn kustomization_dirs_as_image_updater_documents_them() {
    // "if the Application spec.source.path = config/overlays/foo, this would update the
    // kustomization in config/base"
    assert_eq!(
        kustomization_dir("config/overlays/foo", Some("../../base")).expect("ok"),
        "config/base"
    );
    assert_eq!(
        kustomization_dir("config/overlays/foo", Some("/config/overlays/bar")).expect("ok"),
        "config/overlays/bar"
    );
    assert_eq!(
        kustomization_dir("./apps/web/", None).expect("ok"),
        "apps/web"
    );
    assert_eq!(kustomization_dir(".", None).expect("ok"), "");
    assert!(kustomization_dir("apps", Some("../../etc")).is_err());
    assert!(kustomization_dir("apps", Some("/../x")).is_err());
}

#[test]
fn edit_kustomization_flow_images_and_crlf() {
    // A flow-style list is not edited in place (it would be rewritten): a clear error.
    let err = edit_kustomization(
        "resources: [a.yaml]\nimages: []\nnamePrefix: x-\n",
        &[change("nginx", "1.2")],
    )
    .expect_err("flow style");
    assert!(err.to_string().contains("flow style"), "{err}");
    let out = edit_kustomization(
        "resources:\r\n- a.yaml\r\nimages:\r\n- name: nginx\r\n  newTag: \"1.0\"\r\n",
        &[change("nginx", "1.2")],
    )
    .expect("edits");
    let v = mooring_core::yaml::parse_one(&out).expect("yaml");
    assert_eq!(v["images"][0]["newTag"], "1.2");
    assert_eq!(v["resources"][0], "a.yaml");
    // A trailing comment after the block stays.
    let out = edit_kustomization(
        "images:\n- name: nginx\n  newTag: '1'\n\n# the prefix\nnamePrefix: p-\n",
        &[change("nginx", "2")],
    )
    .expect("edits");
    assert!(out.ends_with("\n\n# the prefix\nnamePrefix: p-\n"), "{out}");
    // images: twice.
    assert!(edit_kustomization("images: []\nimages: []\n", &[change("nginx", "2")]).is_err());
}
