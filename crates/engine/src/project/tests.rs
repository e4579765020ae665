//! Table tests of each project rule against Argo CD's documented behaviour.

use super::*;
use mooring_core::project::{AppProjectSpec, ProjectDestination};

fn project(spec: AppProjectSpec) -> AppProject {
    AppProject {
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "AppProject".into(),
        metadata: serde_json::json!({"name": "ml-platform", "namespace": "argocd"}),
        spec,
        status: None,
    }
}

fn dest(server: &str, name: &str, namespace: &str) -> ProjectDestination {
    ProjectDestination {
        server: server.into(),
        name: name.into(),
        namespace: namespace.into(),
    }
}

fn gk(group: &str, kind: &str) -> GroupKind {
    GroupKind {
        group: group.into(),
        kind: kind.into(),
    }
}

#[test]
fn globs() {
    let cases = [
        ("*", "anything/at/all", Some('/'), true),
        (
            "https://github.com/acme/*",
            "https://github.com/acme/models",
            Some('/'),
            true,
        ),
        (
            "https://github.com/acme/*",
            "https://github.com/acme/a/b",
            Some('/'),
            false,
        ),
        (
            "https://github.com/acme/**",
            "https://github.com/acme/a/b",
            Some('/'),
            true,
        ),
        ("ml-*", "ml-serving", None, true),
        ("ml-*", "kube-system", None, false),
        ("ml-?", "ml-a", None, true),
        ("ml-[ab]", "ml-b", None, true),
        ("ml-[!ab]", "ml-b", None, false),
        ("{ml,data}-*", "data-lake", None, true),
        ("a.b", "axb", None, false),
        ("", "", None, true),
        ("", "x", None, false),
    ];
    for (pattern, value, sep, want) in cases {
        assert_eq!(
            glob_match(pattern, value, false, sep),
            want,
            "{pattern} ~ {value}"
        );
    }
    // Hostile or invalid patterns match nothing (and a negated one everything), fast.
    let started = std::time::Instant::now();
    let huge = "{a,".repeat(2000) + &"}".repeat(2000);
    assert!(!glob_match(&huge, "a", false, None));
    assert!(!glob_match(&"*".repeat(100_000), "x", false, Some('/')));
    assert!(!glob_match("[abc", "[abc", false, None));
    assert!(!glob_match("ml-\\", "ml-\\", false, None));
    assert!(glob_match("![abc", "a", true, None));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(!glob_match("!kube-*", "kube-system", true, None));
    assert!(glob_match("!kube-*", "ml", true, None));
}

#[test]
fn source_repos() {
    let p = project(AppProjectSpec {
        source_repos: vec![
            "https://github.com/acme/*".into(),
            "!https://github.com/acme/secrets.git".into(),
        ],
        ..Default::default()
    });
    let cases = [
        ("https://github.com/acme/models.git", true),
        ("https://GitHub.com/acme/models/", true),
        ("https://github.com/acme/secrets", false),
        // Argo CD: a `!` entry that does not match the URL counts as a match itself.
        ("https://github.com/other/models", true),
    ];
    for (repo, want) in cases {
        assert_eq!(check_source(&p, repo).is_ok(), want, "{repo}");
    }
    let err = check_source(&p, "https://github.com/acme/secrets").expect_err("denied");
    assert!(err.to_string().contains("excludes it"), "{err}");
    let only_acme = project(AppProjectSpec {
        source_repos: vec!["https://github.com/acme/*".into()],
        ..Default::default()
    });
    assert!(check_source(&only_acme, "https://github.com/acme/nested/repo").is_err());
    assert!(check_source(&only_acme, "https://github.com/other/models").is_err());
    assert!(check_source(&project(AppProjectSpec::default()), "https://x/z").is_err());
}

#[test]
fn destinations() {
    let p = project(AppProjectSpec {
        destinations: vec![
            dest("*", "", "ml-*"),
            dest("*", "", "!kube-system"),
            dest("", "gpu-*", "training"),
            dest("!https://forbidden", "", "*"),
        ],
        ..Default::default()
    });
    let d = |server: &str, name: &str, ns: &str| Destination {
        server: server.into(),
        name: name.into(),
        namespace: ns.into(),
    };
    let cases = [
        (
            d("https://kubernetes.default.svc", "in-cluster", "ml-serving"),
            true,
        ),
        (
            d(
                "https://kubernetes.default.svc",
                "in-cluster",
                "kube-system",
            ),
            false,
        ),
        (d("https://a", "gpu-1", "training"), true),
        // Argo CD infers the server from the name before checking (the controller does
        // too); without it, the `!server` entry refuses.
        (d("", "gpu-1", "training"), false),
        (d("https://forbidden", "", "ml-serving"), false),
        // The second entry matches any namespace but kube-system: permitted (Argo CD's
        // semantics: a negated namespace entry is itself a positive match elsewhere).
        (d("https://a", "", "default"), true),
    ];
    for (dst, want) in cases {
        assert_eq!(check_destination(&p, &dst).is_ok(), want, "{dst:?}");
    }
    let err = check_destination(
        &p,
        &d(
            "https://kubernetes.default.svc",
            "in-cluster",
            "kube-system",
        ),
    )
    .expect_err("kube-system");
    let msg = err.to_string();
    assert!(
        msg.contains("project ml-platform does not permit destination https://kubernetes.default.svc namespace kube-system")
            && msg.contains("destinations[1]"),
        "{msg}"
    );
    let none = project(AppProjectSpec::default());
    assert!(check_destination(&none, &d("https://a", "", "x")).is_err());
}

#[test]
fn resource_lists() {
    let p = project(AppProjectSpec {
        cluster_resource_whitelist: vec![gk("", "Namespace"), gk("rbac.authorization.k8s.io", "*")],
        cluster_resource_blacklist: vec![gk("rbac.authorization.k8s.io", "ClusterRoleBinding")],
        namespace_resource_blacklist: vec![gk("", "ResourceQuota")],
        ..Default::default()
    });
    let cases = [
        ("", "Namespace", false, true),
        ("rbac.authorization.k8s.io", "ClusterRole", false, true),
        (
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            false,
            false,
        ),
        (
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            false,
            false,
        ),
        ("apps", "Deployment", true, true),
        ("", "ResourceQuota", true, false),
    ];
    for (g, k, namespaced, want) in cases {
        assert_eq!(
            group_kind_permitted(&p, g, k, namespaced).is_ok(),
            want,
            "{g}/{k}"
        );
    }
    // Empty cluster whitelist: no cluster-scoped kind. Absent namespace whitelist: all;
    // empty: none; given: only those.
    let bare = project(AppProjectSpec::default());
    assert!(group_kind_permitted(&bare, "", "Namespace", false).is_err());
    assert!(group_kind_permitted(&bare, "apps", "Deployment", true).is_ok());
    let none = project(AppProjectSpec {
        namespace_resource_whitelist: Some(vec![]),
        ..Default::default()
    });
    assert!(group_kind_permitted(&none, "", "ConfigMap", true).is_err());
    let some = project(AppProjectSpec {
        namespace_resource_whitelist: Some(vec![gk("apps", "*")]),
        ..Default::default()
    });
    assert!(group_kind_permitted(&some, "apps", "StatefulSet", true).is_ok());
    assert!(group_kind_permitted(&some, "", "ConfigMap", true).is_err());
}

#[test]
fn resources_are_checked_for_kind_and_namespace() {
    let p = project(AppProjectSpec {
        destinations: vec![dest("*", "", "ml-*")],
        cluster_resource_whitelist: vec![gk("", "Namespace")],
        ..Default::default()
    });
    let app = Destination {
        server: "https://kubernetes.default.svc".into(),
        name: "in-cluster".into(),
        namespace: "ml-serving".into(),
    };
    let role = ResourceKey::new("rbac.authorization.k8s.io", "ClusterRole", "", "admin");
    let err = check_resource(&p, &role, false, &app).expect_err("ClusterRole");
    assert_eq!(
        err.to_string(),
        "project ml-platform does not permit ClusterRole.rbac.authorization.k8s.io/admin (cluster-scoped and not in clusterResourceWhitelist)"
    );
    let cm = ResourceKey::new("", "ConfigMap", "kube-system", "x");
    assert!(check_resource(&p, &cm, true, &app).is_err());
    let ok = ResourceKey::new("", "ConfigMap", "ml-serving", "x");
    assert!(check_resource(&p, &ok, true, &app).is_ok());
    let ns = ResourceKey::new("", "Namespace", "", "ml-serving");
    assert!(check_resource(&p, &ns, false, &app).is_ok());
}

#[test]
fn default_project_permits_everything() {
    let p = AppProject::default_project("argocd");
    let d = Destination {
        server: "https://x".into(),
        name: String::new(),
        namespace: "kube-system".into(),
    };
    assert!(check_source(&p, "git@github.com:any/thing.git").is_ok());
    assert!(check_destination(&p, &d).is_ok());
    assert!(group_kind_permitted(&p, "rbac.authorization.k8s.io", "ClusterRole", false).is_ok());
}

#[test]
fn app_namespaces() {
    let p = project(AppProjectSpec {
        source_namespaces: vec!["team-*".into()],
        ..Default::default()
    });
    // Only the control-plane namespace is read until the controller allows others.
    let cp = ControlPlane::default();
    assert!(cp.check_app_namespace(&p, "argocd").is_ok());
    let err = cp
        .check_app_namespace(&p, "team-a")
        .expect_err("not enabled");
    assert!(
        err.to_string().contains("--application-namespaces"),
        "{err}"
    );
    // Enabled by the controller and listed by the project.
    let cp = ControlPlane {
        application_namespaces: vec!["team-*".into(), "/^ml-(a|b)$/".into()],
        ..ControlPlane::default()
    };
    assert!(cp.check_app_namespace(&p, "team-a").is_ok());
    assert!(cp.namespace_enabled("ml-a"));
    assert!(!cp.namespace_enabled("ml-c"));
    assert!(!cp.namespace_enabled("other"));
    // Enabled by the controller but not by this project.
    let err = cp
        .check_app_namespace(&p, "ml-a")
        .expect_err("project refuses");
    assert!(err.to_string().contains("sourceNamespaces"), "{err}");
    // Any project from the control plane, whatever its sourceNamespaces.
    let strict = project(AppProjectSpec::default());
    assert!(cp.check_app_namespace(&strict, "argocd").is_ok());
    assert!(cp.check_app_namespace(&strict, "team-a").is_err());
    // A broken pattern matches nothing, and is refused at start naming it.
    let cp = ControlPlane {
        application_namespaces: vec!["/(/".into()],
        ..ControlPlane::default()
    };
    assert!(!cp.namespace_enabled("("));
    let err = cp.validate().expect_err("invalid regex");
    assert!(err.contains("\"/(/\""), "{err}");
    for bad in ["team-[", "{a,b"] {
        let cp = ControlPlane {
            application_namespaces: vec![bad.into()],
            ..ControlPlane::default()
        };
        assert!(cp.validate().is_err(), "{bad}");
    }
    assert!(ControlPlane {
        application_namespaces: vec!["team-*".into(), "/^ml-/".into(), "plain".into()],
        ..ControlPlane::default()
    }
    .validate()
    .is_ok());
    // sourceNamespaces take /regex/ too, as in Argo CD.
    let regex_project = project(AppProjectSpec {
        source_namespaces: vec!["/^team-(a|b)$/".into()],
        ..Default::default()
    });
    let cp = ControlPlane {
        application_namespaces: vec!["team-*".into()],
        ..ControlPlane::default()
    };
    assert!(cp.check_app_namespace(&regex_project, "team-b").is_ok());
    assert!(cp.check_app_namespace(&regex_project, "team-c").is_err());
    assert_eq!(cp.qualified_name("argocd", "web"), "web");
    assert_eq!(cp.qualified_name("team-a", "web"), "team-a/web");
    assert_eq!(cp.instance_name("argocd", "web"), "web");
    assert_eq!(cp.instance_name("team-a", "web"), "team-a_web");
}

fn at(s: &str) -> SystemTime {
    SystemTime::from(s.parse::<DateTime<Utc>>().expect("time"))
}

fn window(kind: SyncWindowKind, schedule: &str, duration: &str) -> SyncWindow {
    SyncWindow {
        kind,
        schedule: schedule.into(),
        duration: duration.into(),
        applications: vec!["*".into()],
        ..Default::default()
    }
}

#[test]
fn window_activity() {
    let w = window(SyncWindowKind::Deny, "0 22 * * *", "1h");
    let cases = [
        ("2026-01-01T21:59:00Z", false),
        ("2026-01-01T22:00:30Z", true),
        ("2026-01-01T22:59:59Z", true),
        ("2026-01-01T23:00:01Z", false),
    ];
    for (t, want) in cases {
        assert_eq!(
            window_active(&w, at(t)).expect("valid").is_some(),
            want,
            "{t}"
        );
    }
    assert_eq!(
        window_active(&w, at("2026-01-01T22:10:00Z")).expect("valid"),
        Some(at("2026-01-01T23:00:00Z"))
    );
    // Time zones: 22:00 in Paris is 21:00 UTC in winter.
    let mut paris = w.clone();
    paris.time_zone = "Europe/Paris".into();
    assert!(window_active(&paris, at("2026-01-01T21:30:00Z"))
        .expect("valid")
        .is_some());
    assert!(window_active(&paris, at("2026-01-01T22:30:00Z"))
        .expect("valid")
        .is_none());
    for (bad, what) in [
        (window(SyncWindowKind::Deny, "not a cron", "1h"), "schedule"),
        (
            window(SyncWindowKind::Deny, "* * * * *", "forever"),
            "duration",
        ),
    ] {
        let e = window_active(&bad, at("2026-01-01T00:00:00Z")).expect_err(what);
        assert!(e.to_string().contains(what), "{e}");
    }
    let mut tz = w.clone();
    tz.time_zone = "Mars/Olympus".into();
    assert!(window_active(&tz, at("2026-01-01T00:00:00Z")).is_err());
}

#[test]
fn can_sync_table() {
    let deny = window(SyncWindowKind::Deny, "0 22 * * *", "1h");
    let mut deny_manual = deny.clone();
    deny_manual.manual_sync = true;
    let allow_night = window(SyncWindowKind::Allow, "0 22 * * *", "1h");
    let allow_morning = window(SyncWindowKind::Allow, "0 8 * * *", "1h");
    let mut allow_morning_manual = allow_morning.clone();
    allow_morning_manual.manual_sync = true;
    let night = at("2026-01-01T22:30:00Z");
    let noon = at("2026-01-01T12:00:00Z");
    let cases: Vec<(&str, Vec<&SyncWindow>, SystemTime, bool, bool)> = vec![
        ("no windows", vec![], night, false, true),
        (
            "active deny blocks automated",
            vec![&deny],
            night,
            false,
            false,
        ),
        ("active deny blocks manual", vec![&deny], night, true, false),
        (
            "manualSync deny lets manual through",
            vec![&deny_manual],
            night,
            true,
            true,
        ),
        (
            "manualSync deny still blocks automated",
            vec![&deny_manual],
            night,
            false,
            false,
        ),
        (
            "all active denies need manualSync",
            vec![&deny, &deny_manual],
            night,
            true,
            false,
        ),
        ("inactive deny", vec![&deny], noon, false, true),
        (
            "deny wins over allow",
            vec![&deny, &allow_night],
            night,
            false,
            false,
        ),
        ("active allow", vec![&allow_night], night, false, true),
        (
            "inactive allow blocks",
            vec![&allow_morning],
            night,
            false,
            false,
        ),
        (
            "inactive allow blocks manual",
            vec![&allow_morning],
            night,
            true,
            false,
        ),
        (
            "inactive manualSync allow lets manual",
            vec![&allow_morning_manual],
            night,
            true,
            true,
        ),
        (
            "one active allow is enough",
            vec![&allow_morning, &allow_night],
            night,
            false,
            true,
        ),
    ];
    for (name, windows, now, manual, want) in cases {
        let v = can_sync(&windows, now, manual).expect("valid");
        assert_eq!(v.allowed, want, "{name}: {}", v.reason);
        assert_eq!(v.reason.is_empty(), want, "{name}");
    }
    let v = can_sync(&[&deny], night, false).expect("valid");
    assert_eq!(
        v.next_change,
        Some(at("2026-01-01T23:00:00Z")),
        "re-check when it closes"
    );
    assert!(
        v.reason.contains("deny window \"0 22 * * *\" for 1h"),
        "{}",
        v.reason
    );
    let v = can_sync(&[&allow_morning], night, false).expect("valid");
    assert_eq!(
        v.next_change,
        Some(at("2026-01-02T08:00:00Z")),
        "re-check when it opens"
    );
}

#[test]
fn windows_match_by_application_namespace_or_cluster() {
    let mut by_app = window(SyncWindowKind::Deny, "* * * * *", "1h");
    by_app.applications = vec!["inference-*".into()];
    let mut by_ns = by_app.clone();
    by_ns.applications = vec![];
    by_ns.namespaces = vec!["ml-prod".into()];
    let mut by_cluster = by_ns.clone();
    by_cluster.namespaces = vec![];
    by_cluster.clusters = vec!["prod-*".into()];
    let p = project(AppProjectSpec {
        sync_windows: vec![by_app, by_ns, by_cluster],
        ..Default::default()
    });
    let d = |name: &str, ns: &str| Destination {
        server: "https://x".into(),
        name: name.into(),
        namespace: ns.into(),
    };
    assert_eq!(
        matching_windows(&p, "inference-eu", &d("dev", "dev")).len(),
        1
    );
    assert_eq!(matching_windows(&p, "x", &d("dev", "ml-prod")).len(), 1);
    assert_eq!(matching_windows(&p, "x", &d("prod-eu", "dev")).len(), 1);
    assert_eq!(
        matching_windows(&p, "inference-eu", &d("prod-eu", "ml-prod")).len(),
        3
    );
    assert!(matching_windows(&p, "x", &d("dev", "dev")).is_empty());
    // andOperator: every given selector must match.
    let mut both = window(SyncWindowKind::Deny, "* * * * *", "1h");
    both.applications = vec!["inference-*".into()];
    both.namespaces = vec!["ml-prod".into()];
    both.and_operator = true;
    let p = project(AppProjectSpec {
        sync_windows: vec![both],
        ..Default::default()
    });
    assert_eq!(
        matching_windows(&p, "inference-eu", &d("x", "ml-prod")).len(),
        1
    );
    assert!(matching_windows(&p, "inference-eu", &d("x", "dev")).is_empty());
    assert!(matching_windows(&p, "other", &d("x", "ml-prod")).is_empty());
}

#[test]
fn orphans() {
    use mooring_core::project::{OrphanedResourceKey, OrphanedResourcesMonitorSettings};
    let obj = |av: &str, kind: &str, name: &str, owned: bool| {
        let mut o = serde_json::json!({"apiVersion": av, "kind": kind,
            "metadata": {"name": name, "namespace": "ml-serving"}});
        if owned {
            o["metadata"]["ownerReferences"] =
                serde_json::json!([{"kind": "Deployment", "name": "x"}]);
        }
        o
    };
    let objects = [
        obj("v1", "ConfigMap", "leftover", false),
        obj("v1", "ConfigMap", "kube-root-ca.crt", false),
        obj("v1", "ServiceAccount", "default", false),
        obj("v1", "Secret", "token", true),
        obj("apps/v1", "Deployment", "old", false),
        obj("v1", "Secret", "sealed-1", false),
    ];
    let settings = OrphanedResourcesMonitorSettings {
        warn: None,
        ignore: vec![OrphanedResourceKey {
            group: String::new(),
            kind: "Secret".into(),
            name: "sealed-*".into(),
        }],
    };
    let found: Vec<String> = orphaned_resources(&objects, &settings)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "ConfigMap/ml-serving/leftover",
            "Deployment.apps/ml-serving/old"
        ]
    );
    let mut p = project(AppProjectSpec::default());
    assert!(warns_of_orphans(&p).is_none());
    p.spec.orphaned_resources = Some(settings.clone());
    assert!(warns_of_orphans(&p).is_some(), "warn defaults to true");
    p.spec.orphaned_resources = Some(OrphanedResourcesMonitorSettings {
        warn: Some(false),
        ..settings
    });
    assert!(warns_of_orphans(&p).is_none());
}

#[test]
fn destination_of_normalises_the_in_cluster_destination() {
    let app = |server: Option<&str>, name: Option<&str>| ApplicationDestination {
        server: server.map(str::to_string),
        name: name.map(str::to_string),
        namespace: Some("ml".into()),
    };
    let in_cluster = Destination {
        server: IN_CLUSTER.into(),
        name: "in-cluster".into(),
        namespace: "ml".into(),
    };
    assert_eq!(Destination::of(&app(Some(IN_CLUSTER), None)), in_cluster);
    assert_eq!(Destination::of(&app(None, Some("in-cluster"))), in_cluster);
    assert_eq!(Destination::of(&app(None, None)), in_cluster);
    // Another cluster keeps what was written; the controller fills in the other half.
    assert_eq!(
        Destination::of(&app(Some("https://gpu.example.com"), None)),
        Destination {
            server: "https://gpu.example.com".into(),
            name: String::new(),
            namespace: "ml".into(),
        }
    );
    assert_eq!(
        Destination::of(&app(None, Some("gpu"))),
        Destination {
            server: String::new(),
            name: "gpu".into(),
            namespace: "ml".into(),
        }
    );
}
