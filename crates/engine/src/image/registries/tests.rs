//! Image Updater's documented registries.conf examples (docs/configuration/registries.md)
//! and the refusals.

use super::*;
use crate::image::CredentialSource;

const DOCS_EXAMPLE: &str = "\
registries:
- name: Docker Hub
  prefix: docker.io
  api_url: https://registry-1.docker.io
  credentials: secret:foo/bar#creds
  defaultns: library
  default: true
- name: RedHat Quay
  api_url: https://quay.io
  prefix: quay.io
  insecure: yes
  credentials: env:REGISTRY_SECRET
";

fn img(s: &str) -> ImageRef {
    ImageRef::parse(s).expect("image")
}

#[test]
fn docs_example() {
    let r = parse(DOCS_EXAMPLE).expect("parses");
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].name, "Docker Hub");
    assert_eq!(r[0].default_ns.as_deref(), Some("library"));
    assert!(r[0].default);
    assert_eq!(
        r[0].credentials,
        Some(CredentialSource::Secret {
            namespace: "foo".into(),
            name: "bar".into(),
            field: "creds".into()
        })
    );
    assert!(r[1].insecure);
    assert_eq!(
        r[1].credentials,
        Some(CredentialSource::Env("REGISTRY_SECRET".into()))
    );
    assert!(r[1].ping);
}

#[test]
fn all_keys_and_mooring_interval() {
    let r = parse(
        "registries:\n- name: Local\n  prefix: localhost:5000\n  api_url: http://localhost:5000/\n  limit: 10\n  credsexpire: 5h\n  ping: no\n  tagsortmode: latest-first\n  interval: 30s\n",
    )
    .expect("parses");
    assert_eq!(r[0].api_url, "http://localhost:5000");
    assert_eq!(r[0].limit, 10);
    assert_eq!(r[0].creds_expire_seconds, Some(5 * 3600));
    assert_eq!(r[0].interval_seconds, Some(30));
    assert!(!r[0].ping);
    // api_url defaults to https://HOST.
    let r = parse("registries:\n- name: GHCR\n  prefix: ghcr.io\n").expect("parses");
    assert_eq!(r[0].api_url, "https://ghcr.io");
    assert!(parse("").expect("empty").is_empty());
}

#[test]
fn refusals_name_the_key_and_registry() {
    let cases = [
        ("registries:\n- name: A\n  prefix: a.io\n  ca_file: /x\n", "\"ca_file\""),
        ("registries:\n- name: A\n  prefix: a.io\n  credentials: ext:/bin/sh\n", "run a command"),
        ("registries:\n- prefix: a.io\n", "name is mandatory"),
        ("registries:\n- name: A\n", "prefix is mandatory"),
        ("registries:\n- name: A\n  prefix: nodots\n", "not a registry host"),
        ("registries:\n- name: A\n  prefix: a.io\n  api_url: ftp://a.io\n", "http"),
        ("registries:\n- name: A\n  prefix: a.io\n  insecure: maybe\n", "insecure"),
        ("registries:\n- name: A\n  prefix: a.io\n  limit: -1\n", "limit"),
        ("registries:\n- name: A\n  prefix: a.io\n  interval: soon\n", "interval"),
        ("registries:\n- name: A\n  prefix: a.io\n  tagsortmode: random\n", "tagsortmode"),
        (
            "registries:\n- name: A\n  prefix: a.io\n- name: B\n  prefix: a.io\n",
            "configured twice",
        ),
        (
            "registries:\n- name: A\n  prefix: a.io\n  default: true\n- name: B\n  prefix: b.io\n  default: true\n",
            "both default",
        ),
        ("registry:\n- name: A\n", "\"registry\""),
        ("registries: 3\n", "not a list"),
    ];
    for (text, want) in cases {
        let e = parse(text).expect_err(text).to_string();
        assert!(e.contains(want), "{text}: {e}");
        assert!(e.starts_with("registries.conf:"), "{e}");
    }
    let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n";
    assert!(parse(bomb).is_err());
    assert!(parse(&"#".repeat(MAX_BYTES + 1)).is_err());
}

#[test]
fn registry_for_image() {
    let confs = parse(
        "registries:\n- name: Team\n  prefix: registry.example.com/team\n  api_url: https://r.example.com\n- name: Example\n  prefix: registry.example.com\n- name: Quay\n  prefix: quay.io\n  default: true\n",
    )
    .expect("parses");
    assert_eq!(
        for_image(&confs, &img("registry.example.com/team/app")).name,
        "Team"
    );
    assert_eq!(
        for_image(&confs, &img("registry.example.com/teamx/app")).name,
        "Example"
    );
    assert_eq!(for_image(&confs, &img("argoproj/argocd")).name, "Quay");
    let other = for_image(&confs, &img("ghcr.io/org/app"));
    assert_eq!(other.api_url, "https://ghcr.io");
    assert_eq!(other.credentials, None);
    // No configuration: Docker Hub with library.
    let hub = for_image(&[], &img("nginx"));
    assert_eq!(hub.api_url, "https://registry-1.docker.io");
    assert_eq!(repository_path(&hub, &img("nginx")), "library/nginx");
    assert_eq!(
        repository_path(&hub, &img("bitnami/redis")),
        "bitnami/redis"
    );
    assert_eq!(
        for_image(&[], &img("index.docker.io/nginx")).api_url,
        "https://registry-1.docker.io"
    );
    // A configured docker.io entry serves every Docker Hub spelling.
    let confs = parse(DOCS_EXAMPLE).expect("parses");
    assert_eq!(
        for_image(&confs, &img("docker.io/bitnami/redis")).name,
        "Docker Hub"
    );
    assert_eq!(for_image(&confs, &img("redis")).name, "Docker Hub");
    assert_eq!(
        for_image(&confs, &img("quay.io/dexidp/dex")).name,
        "RedHat Quay"
    );
}
