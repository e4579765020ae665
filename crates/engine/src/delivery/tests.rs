use super::*;

const KUST: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n# the serving overlay\nresources:\n- ../../base\nimages:\n# pinned by CI\n- name: registry.local/ml/model-server\n  newTag: \"1.2.3\" # bumped by promote\n- name: busybox\n  newTag: \"1.36\"\nnamePrefix: dev-\n";

#[test]
fn image_arg_forms() {
    let s = ImageSpec::parse("model-server=registry.local:5000/ml/model-server:1.2.4").expect("ok");
    assert_eq!(s.name, "model-server");
    assert_eq!(
        s.new_name.as_deref(),
        Some("registry.local:5000/ml/model-server")
    );
    assert_eq!(s.new_tag.as_deref(), Some("1.2.4"));
    let s = ImageSpec::parse("registry.local:5000/ml/model-server:1.2.4").expect("ok");
    assert_eq!(s.name, "registry.local:5000/ml/model-server");
    assert_eq!((s.new_name, s.new_tag.as_deref()), (None, Some("1.2.4")));
    let d = format!("sha256:{}", "a".repeat(64));
    let s = ImageSpec::parse(&format!("nginx@{d}")).expect("ok");
    assert_eq!(s.digest.as_deref(), Some(d.as_str()));
    let s = ImageSpec::parse("nginx=nginx:1.27").expect("ok");
    assert_eq!(s.new_name, None, "the same name is not a new name");
    assert_eq!(s.reference(), "nginx:1.27");
}

#[test]
fn image_arg_hostile() {
    for bad in [
        "model=ml/model:1.2\nnewName: evil",
        "model=ml/model:1.2 # x",
        "model=\"ml/model:1.2\"",
        "-model=ml/model:1.2",
        "model=-evil:1.2",
        "model=ml/model:-1",
        "model",
        "model=",
        "=ml/model:1",
        "a=b=c",
        "model@sha256:xyz",
        "model={a: b}",
    ] {
        let e = ImageSpec::parse(bad).expect_err(bad);
        assert!(e.to_string().contains("--image"), "{e}");
    }
}

#[test]
fn set_image_keeps_every_other_byte() {
    let spec = ImageSpec::parse("registry.local/ml/model-server:1.2.4").expect("ok");
    let out = set_kustomize_image("k.yaml", KUST, &spec).expect("edit");
    assert_eq!(
        out,
        KUST.replace("newTag: \"1.2.3\" # bumped", "newTag: \"1.2.4\" # bumped")
    );
    assert_eq!(
        current_image(&mooring_core::yaml::parse_one(KUST).expect("p"), &spec.name).as_deref(),
        Some("registry.local/ml/model-server:1.2.3")
    );
}

#[test]
fn set_image_adds_fields_entries_and_lists() {
    // New name on an entry that has none: inserted after its last key.
    let spec = ImageSpec::parse("busybox=mirror.local/busybox:1.37").expect("ok");
    let out = set_kustomize_image("k.yaml", KUST, &spec).expect("edit");
    assert!(
        out.contains("- name: busybox\n  newTag: \"1.37\"\n  newName: \"mirror.local/busybox\"\nnamePrefix: dev-\n"),
        "{out}"
    );
    // A digest replaces the tag.
    let d = format!("sha256:{}", "b".repeat(64));
    let spec = ImageSpec::parse(&format!("busybox@{d}")).expect("ok");
    let out = set_kustomize_image("k.yaml", KUST, &spec).expect("edit");
    assert!(
        out.contains(&format!("- name: busybox\n  digest: \"{d}\"\nnamePrefix")),
        "{out}"
    );
    // A new entry at the end of the list, with the list's indentation.
    let spec = ImageSpec::parse("redis:7").expect("ok");
    let out = set_kustomize_image("k.yaml", KUST, &spec).expect("edit");
    assert!(
        out.contains("  newTag: \"1.36\"\n- name: \"redis\"\n  newTag: \"7\"\nnamePrefix"),
        "{out}"
    );
    // Indented lists and no list at all.
    let indented = "resources:\n  - a.yaml\nimages:\n  - name: redis\n    newTag: \"6\"\n";
    let out = set_kustomize_image("k.yaml", indented, &spec).expect("edit");
    assert_eq!(out, indented.replace("\"6\"", "\"7\""));
    let none = "resources:\n- a.yaml";
    let out = set_kustomize_image("k.yaml", none, &spec).expect("edit");
    assert_eq!(
        out,
        "resources:\n- a.yaml\nimages:\n- name: \"redis\"\n  newTag: \"7\"\n"
    );
}

#[test]
fn set_image_refuses_what_it_cannot_edit_exactly() {
    let spec = ImageSpec::parse("redis:7").expect("ok");
    let flow = "images: [{name: redis, newTag: \"6\"}]\n";
    let e = set_kustomize_image("k.yaml", flow, &spec).expect_err("flow");
    assert!(e.to_string().contains("k.yaml"), "{e}");
    let e = set_kustomize_image("k.yaml", "a: [\n", &spec).expect_err("broken");
    assert!(e.to_string().contains("does not parse"), "{e}");
}

#[test]
fn promotion_messages() {
    let p = Promotion::TargetRevision {
        old: "v1.2.0".into(),
        new: "v1.3.0".into(),
    };
    assert_eq!(
        promotion_message("model-serving-production", &p, "ci\nbot", Some("release 42")),
        "promote model-serving-production: targetRevision v1.2.0 → v1.3.0\n\nrelease 42\n\nPromoted-by: ci bot\n"
    );
    let p = Promotion::Image {
        name: "model-server".into(),
        old: None,
        new: "model-server:1.2.4".into(),
    };
    assert_eq!(
        p.summary(),
        "image model-server (none) → model-server:1.2.4"
    );
}

#[test]
fn env_picks_the_environment_app() {
    let l = |env: &str| BTreeMap::from([("environment".to_string(), env.to_string())]);
    let apps = vec![
        ("model-serving-development".to_string(), l("development")),
        ("model-serving-prod-east".to_string(), l("production")),
        ("feature-store-development".to_string(), l("development")),
    ];
    assert_eq!(
        env_app(&apps, "model-serving", "development").expect("named"),
        "model-serving-development"
    );
    assert_eq!(
        env_app(&apps, "model-serving", "production").expect("labelled"),
        "model-serving-prod-east"
    );
    let e = env_app(&apps, "model-serving", "staging").expect_err("none");
    assert!(e.to_string().contains("model-serving-staging"), "{e}");
}

#[test]
fn applyset_bookkeeping() {
    // kubectl's id for a Secret parent `app` in `ns` (KEP-3659's formula).
    let id = applyset_id("app", "ns", "Secret", "");
    assert!(id.starts_with("applyset-") && id.ends_with("-v1"), "{id}");
    assert_eq!(id.len(), "applyset-".len() + 43 + "-v1".len());
    assert_ne!(id, applyset_id("app", "other", "Secret", ""));
    let m = |g: &str, k: &str, ns: &str, n: &str| Member {
        group: g.into(),
        kind: k.into(),
        namespace: ns.into(),
        name: n.into(),
    };
    let members = vec![
        m("apps", "Deployment", "ml", "server"),
        m("", "ConfigMap", "ml", "cfg"),
        m("", "ConfigMap", "other", "cfg"),
        m("", "Namespace", "", "ml"),
    ];
    let r = applyset_record(&members, "ml");
    assert_eq!(r.group_kinds, "ConfigMap,Deployment.apps,Namespace");
    assert_eq!(r.namespaces, "other");
    assert_eq!(
        parse_group_kinds(&r.group_kinds),
        vec![
            ("".into(), "ConfigMap".into()),
            ("apps".into(), "Deployment".into()),
            ("".into(), "Namespace".into())
        ]
    );
    let old = ApplySetRecord {
        group_kinds: "Service,ConfigMap".into(),
        namespaces: "".into(),
    };
    assert_eq!(
        r.union(&old),
        ApplySetRecord {
            group_kinds: "ConfigMap,Deployment.apps,Namespace,Service".into(),
            namespaces: "other".into()
        }
    );
    let pruned = prune_set(&members, &members[..2]);
    assert_eq!(
        pruned,
        vec![
            m("", "ConfigMap", "other", "cfg"),
            m("", "Namespace", "", "ml")
        ]
    );
}

#[test]
fn set_image_finds_the_entry_by_name_wherever_name_is() {
    // `name` not first, a comment inside the entry, another top-level key after the list.
    let text = "images:\n- newTag: \"1.0\" # old\n  # the model server\n  name: model-server\n- name: other\n  newTag: \"2\"\nresources:\n- a.yaml\n";
    let spec = ImageSpec::parse("model-server:1.1").expect("ok");
    let out = set_kustomize_image("k.yaml", text, &spec).expect("edit");
    assert_eq!(
        out,
        text.replace("newTag: \"1.0\" # old", "newTag: \"1.1\" # old")
    );
    // The digest of an entry whose first key is the tag cannot be dropped in place.
    let d = format!("sha256:{}", "c".repeat(64));
    let spec = ImageSpec::parse(&format!("model-server@{d}")).expect("ok");
    let e = set_kustomize_image("k.yaml", text, &spec).expect_err("tag first");
    assert!(e.to_string().contains("put name first"), "{e}");
}

#[test]
fn env_with_several_candidates_is_refused() {
    let l = BTreeMap::from([("environment".to_string(), "production".to_string())]);
    let apps = vec![
        ("model-serving-prod-east".to_string(), l.clone()),
        ("model-serving-prod-west".to_string(), l),
    ];
    let e = env_app(&apps, "model-serving", "production").expect_err("ambiguous");
    assert!(
        e.to_string()
            .contains("model-serving-prod-east, model-serving-prod-west"),
        "{e}"
    );
}
