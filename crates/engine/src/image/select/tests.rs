use super::*;
use serde_json::json;

fn watched(spec: &str) -> WatchedImage {
    watched_with(spec, &[])
}

fn watched_with(spec: &str, extra: &[(&str, &str)]) -> WatchedImage {
    let mut a = std::collections::BTreeMap::new();
    a.insert(
        format!("{}image-list", super::super::ANNOTATION_PREFIX),
        spec.to_string(),
    );
    for (k, v) in extra {
        a.insert(
            format!("{}{k}", super::super::ANNOTATION_PREFIX),
            v.to_string(),
        );
    }
    super::super::annotations::parse("app", &a)
        .expect("parses")
        .expect("config")
        .images
        .remove(0)
}

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn info(tag: &str, created: Option<&str>) -> TagInfo {
    TagInfo {
        tag: tag.into(),
        digest: format!("sha256:{:0>64}", tag.len()),
        created: created.map(|c| c.parse().expect("timestamp")),
        platforms: vec![],
    }
}

fn matches(constraint: &str, version: &str) -> bool {
    Constraint::parse(constraint)
        .expect("constraint parses")
        .matches(&parse_version(version).expect("version parses"))
}

#[test]
fn masterminds_constraints() {
    // ~: patch updates
    assert!(matches("~1.26", "1.26.3"));
    assert!(!matches("~1.26", "1.27.0"));
    assert!(matches("~1.2.3", "1.2.9"));
    assert!(!matches("~1.2.3", "1.2.2"));
    assert!(matches("~1", "1.9.0"));
    assert!(!matches("~1", "2.0.0"));
    // ^: minor updates, patch only below 1.0
    assert!(matches("^1.2", "1.9.0"));
    assert!(!matches("^1.2", "2.0.0"));
    assert!(!matches("^1.2", "1.1.9"));
    assert!(matches("^0.2.3", "0.2.9"));
    assert!(!matches("^0.2.3", "0.3.0"));
    assert!(!matches("^0.0.3", "0.0.4"));
    // wildcards
    assert!(matches("1.2.x", "1.2.7"));
    assert!(!matches("1.2.x", "1.3.0"));
    assert!(matches("1.2.*", "1.2.0"));
    assert!(matches("*", "5.0.0"));
    // ranges with spaces or commas, OR
    assert!(matches(">=1.0 <2", "1.5.0"));
    assert!(!matches(">=1.0 <2", "2.0.0"));
    assert!(matches(">= 1.0, < 2", "1.0.0"));
    assert!(matches("<1.0 || >=3.0", "3.1.0"));
    assert!(!matches("<1.0 || >=3.0", "2.0.0"));
    assert!(matches("1.2 - 1.4", "1.4.0"));
    assert!(!matches("1.2 - 1.4.0", "1.4.1"));
    assert!(!matches("!=1.2.3", "1.2.3"));
    assert!(matches("!=1.2.3", "1.2.4"));
    // bare version: exact
    assert!(matches("1.2.3", "1.2.3"));
    assert!(!matches("1.2.3", "1.2.4"));
    assert!(matches(">1.2", "1.3.0"));
    assert!(!matches(">1.2", "1.2.5"));
    assert!(matches("<=1.2", "1.2.5"));
}

#[test]
fn prereleases_only_with_a_prerelease_constraint() {
    assert!(!matches("~1.2", "1.2.4-rc.1"));
    assert!(!matches(">=1.0", "2.0.0-beta"));
    assert!(matches(">=1.0.0-0", "2.0.0-beta"));
    assert!(matches("~v0.1.0-0", "v0.1.5-rc1"));
}

#[test]
fn bad_constraints() {
    for bad in ["~one", ">=", "1.2.3.4", "||", "1.x.3", ">=1.2-rc"] {
        assert!(Constraint::parse(bad).is_err(), "{bad}");
    }
    let huge = vec![">=1.0"; 40].join(" ");
    assert!(Constraint::parse(&huge).is_err());
}

#[test]
fn lenient_versions() {
    assert_eq!(parse_version("v1.2.3"), Some(Version::new(1, 2, 3)));
    assert_eq!(parse_version("1.2"), Some(Version::new(1, 2, 0)));
    assert_eq!(parse_version("3"), Some(Version::new(3, 0, 0)));
    assert!(parse_version("latest").is_none());
    assert!(parse_version("1.2.3.4").is_none());
    assert!(parse_version("sha-abc").is_none());
    assert!(parse_version("1.2.3-rc.1").is_some());
}

#[test]
fn semver_candidates_best_first_non_semver_skipped() {
    let img = watched("nginx:~1.26");
    let got = candidates(
        &img,
        &tags(&[
            "1.25.9",
            "1.26.0",
            "latest",
            "1.26.2",
            "v1.26.1",
            "1.27.0",
            "1.26.3-rc1",
        ]),
    )
    .expect("candidates");
    assert_eq!(got, tags(&["1.26.2", "v1.26.1", "1.26.0"]));
    // No constraint: every semver tag, pre-releases included (Image Updater).
    let img = watched("nginx");
    let got = candidates(&img, &tags(&["1.0.0", "2.0.0-rc1", "1.5.0"])).expect("candidates");
    assert_eq!(got, tags(&["2.0.0-rc1", "1.5.0", "1.0.0"]));
}

#[test]
fn allow_and_ignore_filters() {
    let mut img = watched("a=org/app");
    img.strategy = Strategy::Alphabetical;
    img.allow_tags = Some(TagFilter::Regexp("^v1.0.0-[0-9a-zA-Z]+$".into()));
    img.ignore_tags = vec![TagFilter::Glob("*-dirty*".into())];
    let got = candidates(
        &img,
        &tags(&[
            "v1.0.0-abc",
            "v1.0.0-zzz",
            "v1.0.0-dirty1",
            "v2.0.0-abc",
            "main",
        ]),
    )
    .expect("candidates");
    assert_eq!(got, tags(&["v1.0.0-zzz", "v1.0.0-abc"]));
    img.ignore_tags = vec![TagFilter::Glob("*".into())];
    assert!(candidates(&img, &tags(&["v1.0.0-a"]))
        .expect("ok")
        .is_empty());
    // Go's [^...] class.
    img.allow_tags = Some(TagFilter::Glob("v[^2]*".into()));
    img.ignore_tags = vec![];
    assert_eq!(
        candidates(&img, &tags(&["v1", "v2", "v3"])).expect("ok"),
        tags(&["v3", "v1"])
    );
}

#[test]
fn choose_semver_never_downgrades() {
    let img = watched("nginx:~1.26");
    let infos = vec![info("1.26.0", None), info("1.26.2", None)];
    let c = choose(&img, Some("1.26.0"), None, &infos)
        .expect("ok")
        .expect("a change");
    assert_eq!(c.new_tag, "1.26.2");
    assert_eq!(c.old.as_deref(), Some("1.26.0"));
    assert_eq!(c.name, "nginx");
    assert_eq!(
        choose(&img, Some("1.26.2"), None, &infos).expect("ok"),
        None
    );
    assert_eq!(
        choose(&img, Some("v1.26.2"), None, &infos).expect("ok"),
        None
    );
    // Deployed newer than the constraint allows: no downgrade.
    assert_eq!(
        choose(&img, Some("1.28.0"), None, &infos).expect("ok"),
        None
    );
    // Deployed a non-version tag: move to the best version.
    assert!(choose(&img, Some("latest"), None, &infos)
        .expect("ok")
        .is_some());
    assert!(choose(&img, None, None, &[]).expect("ok").is_none());
}

#[test]
fn choose_newest_build_by_created() {
    let mut img = watched("a=org/app");
    img.strategy = Strategy::NewestBuild;
    let infos = vec![
        info("zzz", Some("2026-01-01T00:00:00Z")),
        info("abc", Some("2026-03-01T00:00:00Z")),
        info("nodate", None),
    ];
    let c = choose(&img, Some("zzz"), None, &infos)
        .expect("ok")
        .expect("change");
    assert_eq!(c.new_tag, "abc");
    assert_eq!(choose(&img, Some("abc"), None, &infos).expect("ok"), None);
}

#[test]
fn choose_alphabetical() {
    let mut img = watched("a=org/app");
    img.strategy = Strategy::Alphabetical;
    let infos = vec![info("2026.01.02", None), info("2026.03.01", None)];
    let c = choose(&img, Some("2026.01.02"), None, &infos)
        .expect("ok")
        .expect("change");
    assert_eq!(c.new_tag, "2026.03.01");
}

#[test]
fn choose_digest_compares_the_tags_digest() {
    let img = watched_with("a=org/app:latest", &[("a.update-strategy", "digest")]);
    let mut latest = info("latest", None);
    latest.digest = format!("sha256:{}", "b".repeat(64));
    let infos = vec![info("other", None), latest.clone()];
    let old = format!("sha256:{}", "a".repeat(64));
    let c = choose(&img, Some("latest"), Some(&old), &infos)
        .expect("ok")
        .expect("change");
    assert_eq!(c.new_tag, "latest");
    assert_eq!(c.new_digest.as_deref(), Some(latest.digest.as_str()));
    assert_eq!(c.old.as_deref(), Some(old.as_str()));
    assert_eq!(
        choose(&img, Some("latest"), Some(&latest.digest), &infos).expect("ok"),
        None
    );
}

#[test]
fn choose_skips_tags_lacking_a_wanted_platform() {
    let mut img = watched("nginx");
    img.platforms = vec![super::super::annotations::parse_platform("linux/arm64").expect("p")];
    let amd = Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    };
    let arm = Platform {
        os: "linux".into(),
        architecture: "arm64".into(),
        variant: Some("v8".into()),
    };
    let mut newest = info("2.0.0", None);
    newest.platforms = vec![amd.clone()];
    let mut older = info("1.9.0", None);
    older.platforms = vec![amd.clone(), arm];
    let c = choose(&img, Some("1.0.0"), None, &[newest.clone(), older])
        .expect("ok")
        .expect("change");
    assert_eq!(c.new_tag, "1.9.0");
    // Default platform linux/amd64.
    let img = watched("nginx");
    let c = choose(&img, Some("1.0.0"), None, &[newest])
        .expect("ok")
        .expect("change");
    assert_eq!(c.new_tag, "2.0.0");
}

#[test]
fn kustomize_image_name_goes_to_the_change() {
    let mut img = watched("argocd=docker.pkg.github.com/argoproj/argo-cd/argocd");
    img.kustomize_image_name = Some("argoproj/argocd".into());
    img.strategy = Strategy::Alphabetical;
    let c = choose(&img, None, None, &[info("1.7.0-a6399e59", None)])
        .expect("ok")
        .expect("change");
    assert_eq!(c.name, "argoproj/argocd");
    assert_eq!(
        c.new_name.as_deref(),
        Some("docker.pkg.github.com/argoproj/argo-cd/argocd")
    );
}

#[test]
fn current_images_in_every_workload_kind() {
    let pod_spec = |img: &str| json!({"containers": [{"name": "c", "image": img}], "initContainers": [{"name": "i", "image": "busybox:1.36"}]});
    let objs = vec![
        json!({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": pod_spec("nginx:1.25.0")}}}),
        json!({"kind": "CronJob", "metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec("ghcr.io/org/job:v2")}}}}}),
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"}, "spec": {"template": {"spec": pod_spec(&("org/app@sha256:".to_string() + &"c".repeat(64)))}}}),
        json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec("docker.io/library/redis:7")}),
        json!({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"image": "nope"}}),
        json!({"kind": "StatefulSet", "metadata": {"name": "bad"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "Bad Image"}]}}}}),
    ];
    let (found, errors) = current_images(&objs);
    assert_eq!(found.len(), 8);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].to_string().contains("StatefulSet//bad"),
        "{:?}",
        errors
    );
    let nginx = watched("nginx");
    assert_eq!(current_tag(&nginx, &found), Some((Some("1.25.0"), None)));
    let redis = watched("redis");
    assert_eq!(current_tag(&redis, &found), Some((Some("7"), None)));
    let app = watched("org/app");
    let (t, d) = current_tag(&app, &found).expect("used");
    assert_eq!(t, None);
    assert!(d.is_some());
    assert_eq!(current_tag(&watched("other"), &found), None);
}

#[test]
fn kustomize_overrides() {
    let list = tags(&[
        "nginx:1.2.3",
        "argoproj/argocd=ghcr.io/argoproj/argocd:v2.0@sha256:"
            .to_string()
            .as_str(),
    ]);
    assert_eq!(
        kustomize_image_override(&list, "docker.io/library/nginx"),
        Some((Some("1.2.3".into()), None))
    );
    assert_eq!(kustomize_image_override(&list, "redis"), None);
}
