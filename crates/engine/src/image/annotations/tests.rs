//! Image Updater's documented annotation examples (docs/configuration/images.md,
//! docs/basics/update-methods.md), verbatim, and the refusals.

use super::*;

fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (format!("{ANNOTATION_PREFIX}{k}"), v.to_string()))
        .collect()
}

fn ok(pairs: &[(&str, &str)]) -> UpdateConfig {
    parse("guestbook", &ann(pairs))
        .expect("parses")
        .expect("has an image-list")
}

fn errs(pairs: &[(&str, &str)]) -> String {
    let e = parse("guestbook", &ann(pairs)).expect_err("refused");
    e.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_image_list_is_none_and_other_annotations_are_kept_out() {
    let mut a = BTreeMap::new();
    a.insert("argocd.argoproj.io/sync-wave".to_string(), "1".to_string());
    assert_eq!(parse("app", &a), Ok(None));
}

#[test]
fn options_without_image_list_are_an_error() {
    let e = errs(&[("nginx.update-strategy", "semver")]);
    assert!(
        e.contains("without argocd-image-updater.argoproj.io/image-list"),
        "{e}"
    );
}

#[test]
fn simplest_image_list() {
    let c = ok(&[("image-list", "nginx")]);
    assert_eq!(c.images.len(), 1);
    let i = &c.images[0];
    assert_eq!(i.image.registry, "");
    assert_eq!(i.image.repository, "nginx");
    assert_eq!(i.constraint, None);
    assert_eq!(i.strategy, Strategy::Semver);
    assert_eq!(c.method, WriteBackMethod::Argocd);
    assert_eq!(c.target, WriteBackTarget::ParameterFile);
}

#[test]
fn patch_branch_constraint() {
    let c = ok(&[("image-list", "nginx:~1.26")]);
    assert_eq!(c.images[0].constraint.as_deref(), Some("~1.26"));
    assert_eq!(c.images[0].image.tag, None);
}

#[test]
fn latest_build_example() {
    let c = ok(&[
        ("image-list", "yourtool=yourorg/yourimage"),
        ("yourtool.update-strategy", "latest"),
        ("yourtool.allow-tags", "regexp:^v1.0.0-[0-9a-zA-Z]+$"),
    ]);
    let i = &c.images[0];
    assert_eq!(i.alias.as_deref(), Some("yourtool"));
    assert_eq!(i.image.repository, "yourorg/yourimage");
    assert_eq!(i.strategy, Strategy::NewestBuild);
    assert_eq!(
        i.allow_tags,
        Some(TagFilter::Regexp("^v1.0.0-[0-9a-zA-Z]+$".into()))
    );
}

#[test]
fn helm_multiple_images_example() {
    let c = ok(&[
        ("image-list", "fooalias=foo/bar, baralias=bar/foo"),
        ("fooalias.helm.image-name", "foo.image"),
        ("fooalias.helm.image-tag", "foo.tag"),
        ("baralias.helm.image-name", "bar.image"),
        ("baralias.helm.image-tag", "bar.tag"),
    ]);
    assert_eq!(c.images.len(), 2);
    assert_eq!(c.images[0].helm_image_name.as_deref(), Some("foo.image"));
    assert_eq!(c.images[1].helm_image_tag.as_deref(), Some("bar.tag"));
}

#[test]
fn dex_example_with_registry() {
    let c = ok(&[
        ("image-list", "dex=quay.io/dexidp/dex"),
        ("dex.helm.image-name", "dex.image.name"),
        ("dex.helm.image-tag", "dex.image.tag"),
    ]);
    assert_eq!(c.images[0].image.registry, "quay.io");
    assert_eq!(c.images[0].image.repository, "dexidp/dex");
}

#[test]
fn force_update_example() {
    let c = ok(&[
        ("image-list", "myalias=some/image"),
        ("myalias.force-update", "true"),
    ]);
    assert!(c.images[0].force_update);
    assert!(errs(&[("image-list", "a=x"), ("a.force-update", "yes")]).contains("true or false"));
}

#[test]
fn options_keyed_by_image_name_with_slash_as_underscore() {
    let c = ok(&[
        ("image-list", "argoproj/argocd"),
        ("argoproj_argocd.update-strategy", "name"),
        ("argoproj_argocd.ignore-tags", "latest, master"),
    ]);
    assert_eq!(c.images[0].strategy, Strategy::Alphabetical);
    assert_eq!(
        c.images[0].ignore_tags,
        vec![
            TagFilter::Glob("latest".into()),
            TagFilter::Glob("master".into())
        ]
    );
    // Docs: ignore every tag to pause updates.
    let c = ok(&[("image-list", "nginx"), ("nginx.ignore-tags", "*")]);
    assert_eq!(c.images[0].ignore_tags, vec![TagFilter::Glob("*".into())]);
}

#[test]
fn strategies_and_old_names() {
    for (v, s) in [
        ("semver", Strategy::Semver),
        ("newest-build", Strategy::NewestBuild),
        ("latest", Strategy::NewestBuild),
        ("alphabetical", Strategy::Alphabetical),
        ("name", Strategy::Alphabetical),
    ] {
        let c = ok(&[("image-list", "a=nginx"), ("a.update-strategy", v)]);
        assert_eq!(c.images[0].strategy, s, "{v}");
    }
    let c = ok(&[
        ("image-list", "a=nginx:latest"),
        ("a.update-strategy", "digest"),
    ]);
    assert_eq!(c.images[0].strategy, Strategy::Digest);
    assert_eq!(c.images[0].constraint.as_deref(), Some("latest"));
    let e = errs(&[("image-list", "a=nginx"), ("a.update-strategy", "newest")]);
    assert!(
        e.contains("a.update-strategy") && e.contains("\"newest\""),
        "{e}"
    );
    let e = errs(&[("image-list", "a=nginx"), ("a.update-strategy", "digest")]);
    assert!(e.contains("needs the tag"), "{e}");
}

#[test]
fn bad_constraints_are_errors() {
    let e = errs(&[("image-list", "nginx:~one")]);
    assert!(e.contains("image-list") && e.contains("~one"), "{e}");
    let e = errs(&[
        ("image-list", "a=nginx:~1.2"),
        ("a.update-strategy", "newest-build"),
    ]);
    assert!(e.contains("only applies to the semver"), "{e}");
}

#[test]
fn bad_regexp_and_huge_regexp_are_errors() {
    let e = errs(&[("image-list", "a=nginx"), ("a.allow-tags", "regexp:^(v1")]);
    assert!(e.contains("a.allow-tags") && e.contains("regexp"), "{e}");
    let huge = format!("regexp:{}", "(a{1000}){1000}");
    let e = errs(&[("image-list", "a=nginx"), ("a.allow-tags", &huge)]);
    assert!(e.contains("a.allow-tags"), "{e}");
    let e = errs(&[("image-list", "a=nginx"), ("a.allow-tags", "{a,b}")]);
    assert!(e.contains("braces"), "{e}");
    // `any` means no filter.
    let c = ok(&[("image-list", "a=nginx"), ("a.allow-tags", "any")]);
    assert_eq!(c.images[0].allow_tags, None);
}

#[test]
fn pull_secrets() {
    let c = ok(&[
        ("image-list", "a=nginx"),
        ("a.pull-secret", "pullsecret:argocd/regcred"),
    ]);
    assert_eq!(
        c.images[0].pull_secret,
        Some(CredentialSource::PullSecret {
            namespace: "argocd".into(),
            name: "regcred".into()
        })
    );
    let c = ok(&[
        ("image-list", "a=nginx"),
        ("a.pull-secret", "secret:argocd/ghcr#token"),
    ]);
    assert_eq!(
        c.images[0].pull_secret,
        Some(CredentialSource::Secret {
            namespace: "argocd".into(),
            name: "ghcr".into(),
            field: "token".into()
        })
    );
    let e = errs(&[
        ("image-list", "a=nginx"),
        ("a.pull-secret", "ext:/bin/creds"),
    ]);
    assert!(
        e.contains("runs a command") || e.contains("run a command"),
        "{e}"
    );
    let e = errs(&[
        ("image-list", "a=nginx"),
        ("a.pull-secret", "env:DOCKER_CREDS"),
    ]);
    assert!(e.contains("registries.conf"), "{e}");
    let e = errs(&[
        ("image-list", "a=nginx"),
        ("a.pull-secret", "secret:argocd/ghcr"),
    ]);
    assert!(e.contains("#FIELD"), "{e}");
}

#[test]
fn platforms() {
    let c = ok(&[
        ("image-list", "a=nginx"),
        ("a.platforms", "linux/amd64,linux/arm64, linux/arm/v7"),
    ]);
    assert_eq!(c.images[0].platforms.len(), 3);
    assert_eq!(c.images[0].platforms[2].variant.as_deref(), Some("v7"));
    assert_eq!(c.images[0].platforms[2].to_string(), "linux/arm/v7");
    assert!(errs(&[("image-list", "a=nginx"), ("a.platforms", "amd64")]).contains("OS/ARCH"));
}

#[test]
fn write_back_methods_branches_targets() {
    let c = ok(&[
        ("image-list", "nginx"),
        ("write-back-method", "git"),
        ("git-branch", "main"),
        ("write-back-target", "kustomization"),
    ]);
    assert_eq!(c.method, WriteBackMethod::Git { secret: None });
    assert_eq!(c.branch.as_deref(), Some("main"));
    assert_eq!(c.target, WriteBackTarget::Kustomization { path: None });
    let c = ok(&[
        ("image-list", "nginx"),
        (
            "write-back-method",
            "git:secret:argocd-image-updater/git-creds",
        ),
        ("git-branch", "base:target"),
        ("write-back-target", "kustomization:../../base"),
    ]);
    assert_eq!(
        c.method,
        WriteBackMethod::Git {
            secret: Some(("argocd-image-updater".into(), "git-creds".into()))
        }
    );
    assert_eq!(c.branch.as_deref(), Some("base:target"));
    assert_eq!(
        c.target,
        WriteBackTarget::Kustomization {
            path: Some("../../base".into())
        }
    );
    let c = ok(&[
        ("image-list", "nginx"),
        ("write-back-method", "git:repocreds"),
        ("git-branch", ":target"),
        ("write-back-target", "kustomization:/config/overlays/bar"),
    ]);
    assert_eq!(c.branch.as_deref(), Some(":target"));
    assert_eq!(
        ok(&[("image-list", "nginx"), ("write-back-method", "argocd")]).method,
        WriteBackMethod::Argocd
    );
}

#[test]
fn write_back_refusals() {
    let e = errs(&[
        ("image-list", "nginx"),
        ("write-back-method", "git"),
        ("git-branch", "main:image-updater-{{.SHA256}}"),
    ]);
    assert!(e.contains("templates") && e.contains("git-branch"), "{e}");
    let e = errs(&[
        ("image-list", "nginx"),
        ("write-back-method", "git"),
        (
            "write-back-target",
            "helmvalues:/helm/config/test-values.yaml",
        ),
    ]);
    assert!(e.contains("not supported"), "{e}");
    let e = errs(&[("image-list", "nginx"), ("git-branch", "main")]);
    assert!(e.contains("only applies with write-back-method git"), "{e}");
    let e = errs(&[("image-list", "nginx"), ("write-back-method", "svn")]);
    assert!(e.contains("\"svn\""), "{e}");
    let e = errs(&[
        ("image-list", "nginx"),
        ("write-back-method", "git"),
        ("git-branch", "-rf"),
    ]);
    assert!(e.contains("branch name"), "{e}");
    let e = errs(&[
        ("image-list", "nginx"),
        ("git-repository", "git@github.com:example/example.git"),
    ]);
    assert!(e.contains("git-repository"), "{e}");
}

#[test]
fn unknown_annotations_and_unknown_aliases_are_named() {
    let e = errs(&[("image-list", "a=nginx"), ("a.tag-match", "x")]);
    assert!(
        e.contains("argocd-image-updater.argoproj.io/a.tag-match"),
        "{e}"
    );
    let e = errs(&[("image-list", "a=nginx"), ("b.update-strategy", "semver")]);
    assert!(e.contains("\"b\" is not an alias"), "{e}");
    let e = errs(&[("image-list", "a=nginx"), ("write-back-mehtod", "git")]);
    assert!(e.contains("write-back-mehtod"), "{e}");
}

#[test]
fn aliases_unique_and_valid_every_error_reported() {
    let e = errs(&[("image-list", "a=nginx, a=redis")]);
    assert!(e.contains("used twice"), "{e}");
    let e = errs(&[("image-list", "nginx, nginx")]);
    assert!(e.contains("used twice"), "{e}");
    let e = errs(&[("image-list", "bad alias=nginx")]);
    assert!(e.contains("alias"), "{e}");
    let e = errs(&[("image-list", "nginx,,redis")]);
    assert!(e.contains("empty entry"), "{e}");
    // Two problems, two errors.
    let err = parse(
        "guestbook",
        &ann(&[("image-list", "Nginx, a=redis"), ("a.update-strategy", "x")]),
    )
    .expect_err("two errors");
    assert_eq!(err.len(), 2, "{err:?}");
    let e = errs(&[("image-list", "nginx@sha256:abc")]);
    assert!(e.contains("digest"), "{e}");
}

#[test]
fn huge_values_are_refused() {
    let big = "a".repeat(MAX_VALUE_LEN + 1);
    assert!(errs(&[("image-list", &big)]).contains("longer than"));
    let many: Vec<String> = (0..=MAX_IMAGES).map(|i| format!("i{i}=nginx")).collect();
    assert!(errs(&[("image-list", &many.join(","))]).contains("at most"));
}

#[test]
fn image_ref_grammar() {
    let r = ImageRef::parse("nginx").expect("parses");
    assert_eq!((r.registry.as_str(), r.repository.as_str()), ("", "nginx"));
    let r = ImageRef::parse("localhost:5000/team/app:v1.2.3").expect("parses");
    assert_eq!(r.registry, "localhost:5000");
    assert_eq!(r.repository, "team/app");
    assert_eq!(r.tag.as_deref(), Some("v1.2.3"));
    let r = ImageRef::parse("localhost/app").expect("parses");
    assert_eq!(r.registry, "localhost");
    let r = ImageRef::parse("ghcr.io/org/app@sha256:".to_string().as_str());
    assert!(r.is_err());
    let d = format!("sha256:{}", "a".repeat(64));
    let r = ImageRef::parse(&format!("ghcr.io/org/app:1.0@{d}")).expect("parses");
    assert_eq!(r.digest.as_deref(), Some(d.as_str()));
    assert_eq!(r.to_string(), format!("ghcr.io/org/app:1.0@{d}"));
    // `org/app`: no dot, no colon, not localhost: Docker Hub.
    let r = ImageRef::parse("org/app").expect("parses");
    assert_eq!(r.registry, "");
    assert_eq!(r.to_string(), "org/app");
    for bad in [
        "",
        "Nginx",
        "nginx:",
        "nginx:-x",
        "nginx::1",
        "a//b",
        "-a",
        "a_-b",
        "reg.io:port/app",
        "nginx@md5:abc",
    ] {
        let e = ImageRef::parse(bad).expect_err(bad);
        assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
    }
    assert!(ImageRef::parse(&"a".repeat(300)).is_err());
    assert!(ImageRef::parse(&format!("nginx:{}", "t".repeat(129))).is_err());
    assert!(ImageRef::parse("a__b/c.d-e--f").is_ok());
}

#[test]
fn docker_hub_spellings_are_one_image() {
    let a = ImageRef::parse("nginx").expect("parses");
    for b in [
        "library/nginx",
        "docker.io/nginx",
        "docker.io/library/nginx",
        "index.docker.io/library/nginx:1.0",
    ] {
        assert!(a.same_image(&ImageRef::parse(b).expect("parses")), "{b}");
    }
    assert!(!a.same_image(&ImageRef::parse("ghcr.io/nginx").expect("parses")));
}
