use super::*;
use mooring_core::appset::ApplicationSet;

struct Fixture {
    clusters: Vec<ClusterInfo>,
    files: BTreeMap<String, String>,
}

impl GeneratorInputs for Fixture {
    fn clusters(&self) -> Result<Vec<ClusterInfo>, String> {
        Ok(self.clusters.clone())
    }
    fn git_files(&self, _: &str, _: &str) -> Result<Vec<String>, String> {
        Ok(self.files.keys().cloned().collect())
    }
    fn git_read(&self, _: &str, _: &str, path: &str) -> Result<Vec<u8>, String> {
        self.files
            .get(path)
            .map(|s| s.as_bytes().to_vec())
            .ok_or_else(|| format!("{path} not found"))
    }
}

fn cluster(name: &str, server: &str, labels: &[(&str, &str)]) -> ClusterInfo {
    ClusterInfo {
        name: name.into(),
        server: server.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..ClusterInfo::default()
    }
}

fn fixture() -> Fixture {
    Fixture {
        clusters: vec![
            cluster(
                "prod-eu",
                "https://eu:6443",
                &[
                    ("environment", "production"),
                    ("workload-type", "inference"),
                    ("region", "eu"),
                ],
            ),
            cluster(
                "prod-us",
                "https://us:6443",
                &[
                    ("environment", "production"),
                    ("workload-type", "inference"),
                    ("region", "us"),
                ],
            ),
            cluster("staging", "https://st:6443", &[("environment", "staging")]),
        ],
        files: [
            ("apps/api/kustomization.yaml", "resources: []"),
            ("apps/worker/kustomization.yaml", "resources: []"),
            ("apps/legacy/kustomization.yaml", "resources: []"),
            ("apps/.hidden/x.yaml", "a: 1"),
            (
                "config/eu/config.json",
                r#"{"cluster": {"name": "prod-eu", "replicas": 3}, "tags": ["a", "b"]}"#,
            ),
            (
                "config/us/config.yaml",
                "cluster:\n  name: prod-us\n  replicas: 5\ntags: [c]\n",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    }
}

fn set(yaml: &str) -> ApplicationSet {
    let v = mooring_core::yaml::parse_one(yaml).expect("yaml");
    serde_json::from_value(v).expect("appset")
}

fn gen(yaml: &str) -> Result<Vec<Value>, AppSetError> {
    generate(&set(yaml), &fixture())
}

fn names(apps: &[Value]) -> Vec<String> {
    apps.iter()
        .map(|a| {
            a["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

const TEMPLATE: &str = r#"
  template:
    metadata: {name: '{{name}}-app'}
    spec:
      project: default
      source: {repoURL: 'https://git/x.git', path: 'p/{{name}}', targetRevision: HEAD}
      destination: {server: '{{server}}', namespace: ns}
"#;

#[test]
fn list_generator_golden() {
    let apps = gen(&format!(
        r#"
metadata: {{name: s, namespace: argocd}}
spec:
  generators:
  - list:
      elements:
      - {{name: a, server: 'https://a'}}
      - {{name: b, server: 'https://b', values: {{x: "1"}}}}
{TEMPLATE}"#
    ))
    .expect("generate");
    assert_eq!(
        apps[0],
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "a-app", "namespace": "argocd",
                         "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
            "spec": {"project": "default",
                     "source": {"repoURL": "https://git/x.git", "path": "p/a", "targetRevision": "HEAD"},
                     "destination": {"server": "https://a", "namespace": "ns"}}
        })
    );
    assert_eq!(names(&apps), ["a-app", "b-app"]);
}

#[test]
fn list_values_must_be_strings_without_go_template() {
    let e = gen(&format!(
        "metadata: {{name: s}}\nspec:\n  generators:\n  - list: {{elements: [{{name: a, n: 3}}]}}\n{TEMPLATE}"
    ))
    .expect_err("non-string");
    assert!(e.to_string().contains("must be strings"), "{e}");
}

#[test]
fn clusters_generator_selector_and_local_cluster() {
    let apps = gen(&format!(
        "metadata: {{name: s}}\nspec:\n  generators:\n  - clusters: {{selector: {{matchLabels: {{environment: production}}}}, values: {{r: 'x-{{{{metadata.labels.region}}}}'}}}}\n{}",
        TEMPLATE.replace("p/{{name}}", "p/{{values.r}}")
    ))
    .expect("generate");
    assert_eq!(names(&apps), ["prod-eu-app", "prod-us-app"]);
    assert_eq!(apps[0]["spec"]["source"]["path"], "p/x-eu");
    assert_eq!(apps[1]["spec"]["destination"]["server"], "https://us:6443");
    // Empty selector: every cluster plus the local one (no Secret for it).
    let all = gen(&format!(
        "metadata: {{name: s}}\nspec:\n  generators:\n  - clusters: {{}}\n{TEMPLATE}"
    ))
    .expect("all");
    assert_eq!(
        names(&all),
        [
            "in-cluster-app",
            "prod-eu-app",
            "prod-us-app",
            "staging-app"
        ]
    );
    assert_eq!(all[0]["spec"]["destination"]["server"], IN_CLUSTER);
    // matchExpressions.
    let ex = gen(&format!(
        "metadata: {{name: s}}\nspec:\n  generators:\n  - clusters: {{selector: {{matchExpressions: [{{key: region, operator: NotIn, values: [eu]}}, {{key: environment, operator: Exists}}]}}}}\n{TEMPLATE}"
    ))
    .expect("expressions");
    assert_eq!(names(&ex), ["prod-us-app", "staging-app"]);
}

#[test]
fn go_template_clusters_with_values() {
    let apps = gen(r#"
metadata: {name: s, namespace: argocd}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - clusters:
      selector: {matchLabels: {workload-type: inference}}
      values: {replicas: '{{ if eq (index .metadata.labels "region") "eu" }}3{{ else }}2{{ end }}'}
  template:
    metadata:
      name: 'inference-{{.nameNormalized}}'
      labels: {region: '{{index .metadata.labels "region"}}'}
    spec:
      project: default
      source:
        repoURL: https://git/x.git
        path: p
        kustomize: {replicas: [{name: inference, count: '{{.values.replicas}}'}]}
      destination: {server: '{{.server}}', namespace: '{{.name | upper | lower}}'}
"#)
    .expect("generate");
    assert_eq!(names(&apps), ["inference-prod-eu", "inference-prod-us"]);
    assert_eq!(
        apps[0]["spec"]["source"]["kustomize"]["replicas"][0]["count"],
        "3"
    );
    assert_eq!(
        apps[1]["spec"]["source"]["kustomize"]["replicas"][0]["count"],
        "2"
    );
    assert_eq!(apps[1]["metadata"]["labels"]["region"], "us");
}

#[test]
fn missingkey_error_fails_the_whole_set() {
    let e = gen(r#"
metadata: {name: s}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators: [{list: {elements: [{name: a}]}}]
  template:
    metadata: {name: '{{.name}}-{{.nope}}'}
    spec: {project: default, destination: {server: x}}
"#)
    .expect_err("missing key");
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn git_directories_with_exclude() {
    let y = r#"
metadata: {name: s}
spec:
  generators:
  - git:
      repoURL: https://git/x.git
      revision: HEAD
      directories: [{path: 'apps/*'}, {path: apps/legacy, exclude: true}]
  template:
    metadata: {name: '{{path.basename}}'}
    spec:
      project: default
      source: {repoURL: https://git/x.git, path: '{{path}}'}
      destination: {server: 'https://kubernetes.default.svc', namespace: '{{path[1]}}'}
"#;
    let apps = gen(y).expect("generate");
    assert_eq!(names(&apps), ["api", "worker"]);
    assert_eq!(apps[0]["spec"]["source"]["path"], "apps/api");
    assert_eq!(apps[0]["spec"]["destination"]["namespace"], "api");
}

#[test]
fn git_files_flat_and_go() {
    let flat = gen(r#"
metadata: {name: s}
spec:
  generators:
  - git: {repoURL: r, revision: main, files: [{path: 'config/**/config.*'}]}
  template:
    metadata: {name: '{{cluster.name}}-{{path.basename}}'}
    spec:
      project: default
      source: {repoURL: r, path: '{{path}}/{{path.filename}}/{{tags.0}}/{{cluster.replicas}}'}
      destination: {server: x}
"#)
    .expect("flat");
    assert_eq!(names(&flat), ["prod-eu-eu", "prod-us-us"]);
    assert_eq!(
        flat[0]["spec"]["source"]["path"],
        "config/eu/config.json/a/3"
    );
    let go = gen(r#"
metadata: {name: s}
spec:
  goTemplate: true
  generators:
  - git: {repoURL: r, revision: main, files: [{path: 'config/*/config.yaml'}]}
  template:
    metadata: {name: '{{.cluster.name}}'}
    spec:
      project: default
      source: {repoURL: r, path: '{{.path.path}}/{{index .path.segments 1}}/{{.cluster.replicas}}'}
      destination: {server: x}
"#)
    .expect("go");
    assert_eq!(names(&go), ["prod-us"]);
    assert_eq!(go[0]["spec"]["source"]["path"], "config/us/us/5");
}

#[test]
fn matrix_clusters_x_list_and_interpolation() {
    let apps = gen(&format!(
        r#"
metadata: {{name: s}}
spec:
  generators:
  - matrix:
      generators:
      - clusters: {{selector: {{matchLabels: {{environment: production}}}}}}
      - list: {{elements: [{{app: x}}, {{app: z, server: 'https://eu:6443'}}]}}
{}"#,
        TEMPLATE.replace("'{{name}}-app'", "'{{name}}-{{app}}'")
    ));
    // prod-us × {app: y, server: eu} conflicts on `server`.
    let e = apps.expect_err("conflict");
    assert!(e.to_string().contains("server"), "{e}");
    let apps = gen(r#"
metadata: {name: s}
spec:
  generators:
  - matrix:
      generators:
      - git: {repoURL: r, revision: main, directories: [{path: 'apps/*'}]}
      - list: {elements: [{env: '{{path.basename}}-prod'}]}
  template:
    metadata: {name: '{{env}}'}
    spec: {project: default, destination: {server: x}}
"#)
    .expect("interpolated");
    assert_eq!(names(&apps), ["api-prod", "legacy-prod", "worker-prod"]);
}

#[test]
fn merge_overrides_by_key() {
    let apps = gen(&format!(
        r#"
metadata: {{name: s}}
spec:
  generators:
  - merge:
      mergeKeys: [server]
      generators:
      - clusters: {{values: {{replicas: "1"}}}}
      - list: {{elements: [{{server: 'https://us:6443', values.replicas: "5"}}, {{server: 'https://nowhere', values.replicas: "9"}}]}}
{}"#,
        TEMPLATE.replace("p/{{name}}", "{{values.replicas}}")
    ))
    .expect("merge");
    assert_eq!(
        names(&apps),
        [
            "in-cluster-app",
            "prod-eu-app",
            "prod-us-app",
            "staging-app"
        ]
    );
    let paths: Vec<&str> = apps
        .iter()
        .map(|a| a["spec"]["source"]["path"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(paths, ["1", "1", "5", "1"]);
}

#[test]
fn post_selector_and_generator_template() {
    let apps = gen(&format!(
        r#"
metadata: {{name: s}}
spec:
  generators:
  - list:
      elements: [{{name: a, server: s1, tier: gpu}}, {{name: b, server: s2, tier: cpu}}]
      template: {{spec: {{project: special}}}}
    selector: {{matchLabels: {{tier: gpu}}}}
{TEMPLATE}"#
    ))
    .expect("generate");
    assert_eq!(names(&apps), ["a-app"]);
    assert_eq!(apps[0]["spec"]["project"], "special");
    assert_eq!(apps[0]["spec"]["source"]["path"], "p/a");
}

#[test]
fn template_patch() {
    let apps = gen(r#"
metadata: {name: s}
spec:
  goTemplate: true
  generators: [{list: {elements: [{name: a, auto: true}, {name: b, auto: false}]}}]
  template:
    metadata: {name: '{{.name}}'}
    spec: {project: default, destination: {server: x}, source: {repoURL: r, path: p}}
  templatePatch: |
    {{- if .auto }}
    spec:
      syncPolicy:
        automated: {prune: true}
    {{- end }}
"#)
    .expect("generate");
    assert_eq!(apps[0]["spec"]["syncPolicy"]["automated"]["prune"], true);
    assert!(apps[1]["spec"].get("syncPolicy").is_none(), "{}", apps[1]);
}

#[test]
fn hostile_and_invalid_sets() {
    let cases: &[(&str, &str)] = &[
        ("generators: [{scmProvider: {}}]", "unsupported generator \"scmProvider\""),
        ("generators: [{}]", "exactly one"),
        ("generators: [{list: {elements: [{name: a}]}, clusters: {}}]", "exactly one"),
        ("generators: []", "empty"),
        ("generators: [{list: {elements: [{name: a}, {name: a}]}}]", "more than one Application named \"a-app\""),
        ("generators: [{list: {elements: [{name: 'A B'}]}}]", "DNS subdomain"),
        ("generators: [{list: {elements: [{nom: a}]}}]", "DNS subdomain"),
        ("generators: [{list: {elements: [3]}}]", "not a map"),
        ("generators: [{matrix: {generators: [{list: {elements: []}}]}}]", "exactly 2"),
        ("generators: [{merge: {mergeKeys: [], generators: [{list: {elements: []}}, {list: {elements: []}}]}}]", "mergeKeys"),
        ("generators: [{git: {repoURL: r, directories: [{path: 'a/[x'}]}}]", "bad git path pattern"),
        ("generators: [{git: {repoURL: r}}]", "exactly one of directories and files"),
        ("generators: [{list: {elementsYaml: 'a: b'}}]", "must be a list"),
    ];
    for (gens, want) in cases {
        let y = format!("metadata: {{name: s}}\nspec:\n  {gens}\n{TEMPLATE}");
        let e = gen(&y).expect_err(gens);
        assert!(e.to_string().contains(want), "{gens}: {e}");
    }
    // templatePatch without goTemplate; an unknown goTemplateOptions entry.
    let e = gen(&format!("metadata: {{name: s}}\nspec:\n  templatePatch: 'a: b'\n  generators: [{{list: {{elements: [{{name: a}}]}}}}]\n{TEMPLATE}")).expect_err("patch");
    assert!(e.to_string().contains("goTemplate"), "{e}");
}

#[test]
fn huge_lists_and_products_are_bounded() {
    let elements: Vec<Value> = (0..MAX_PARAM_SETS + 1)
        .map(|i| json!({"name": format!("a{i}"), "server": "s"}))
        .collect();
    let mut s = set(&format!(
        "metadata: {{name: s}}\nspec:\n  generators: []\n{TEMPLATE}"
    ));
    s.spec.generators = vec![json!({"list": {"elements": elements}})];
    let e = generate(&s, &fixture()).expect_err("too many");
    assert!(matches!(e, AppSetError::TooMany { .. }), "{e}");
    let hundred: Vec<Value> = (0..150).map(|i| json!({"a": format!("{i}")})).collect();
    let hundred_b: Vec<Value> = (0..150).map(|i| json!({"b": format!("{i}")})).collect();
    s.spec.generators = vec![json!({"matrix": {"generators": [
        {"list": {"elements": hundred}}, {"list": {"elements": hundred_b}}]}})];
    let e = generate(&s, &fixture()).expect_err("product too big");
    assert!(matches!(e, AppSetError::TooMany { .. }), "{e}");
}

#[test]
fn elements_yaml_in_a_matrix() {
    let apps = gen(r#"
metadata: {name: s}
spec:
  goTemplate: true
  generators:
  - matrix:
      generators:
      - git: {repoURL: r, revision: main, files: [{path: 'config/us/config.yaml'}]}
      - list:
          elementsYaml: '{{ .tags | toJson }}'
  template:
    metadata: {name: 'x'}
    spec: {project: default, destination: {server: x}}
"#);
    // `tags` is a list of strings, not maps: a clear error, not a panic.
    let e = apps.expect_err("strings are not elements");
    assert!(e.to_string().contains("not a map"), "{e}");
}

#[test]
fn cluster_secrets() {
    let s = json!({
        "metadata": {"name": "c1", "labels": {"argocd.argoproj.io/secret-type": "cluster", "env": "prod"}},
        "data": {"name": "cHJvZC1ldQ==", "server": "aHR0cHM6Ly9ldTo2NDQz"}
    });
    let c = cluster_from_secret(&s).expect("cluster");
    assert_eq!(
        (c.name.as_str(), c.server.as_str()),
        ("prod-eu", "https://eu:6443")
    );
    assert_eq!(c.labels["env"], "prod");
    let e = cluster_from_secret(&json!({"metadata": {"name": "x"}, "data": {"name": "eA=="}}))
        .expect_err("no server");
    assert!(e.contains("data.server"), "{e}");
    let string_data = json!({"metadata": {"name": "x"}, "stringData": {"server": "https://s"}});
    assert_eq!(
        cluster_from_secret(&string_data).expect("ok").name,
        "https://s"
    );
}

#[test]
fn preserve_resources_on_deletion_controls_the_finalizer() {
    let y = |preserve: bool| {
        format!("metadata: {{name: s}}\nspec:\n  syncPolicy: {{preserveResourcesOnDeletion: {preserve}}}\n  generators: [{{list: {{elements: [{{name: a, server: x}}]}}}}]\n{TEMPLATE}")
    };
    let apps = gen(&y(false)).expect("generate");
    assert_eq!(
        apps[0]["metadata"]["finalizers"],
        json!([RESOURCES_FINALIZER])
    );
    let apps = gen(&y(true)).expect("generate");
    assert!(
        apps[0]["metadata"].get("finalizers").is_none(),
        "{}",
        apps[0]
    );
}

#[test]
fn hostile_git_files_are_refused_with_the_file_named() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let mut prev = 'a';
    for c in 'b'..='p' {
        bomb.push_str(&format!(
            "{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
        prev = c;
    }
    let y = r#"
metadata: {name: s}
spec:
  generators: [{git: {repoURL: r, revision: main, files: [{path: 'cfg/*.yaml'}]}}]
  template:
    metadata: {name: x}
    spec: {project: default, destination: {server: x}}
"#;
    for (content, want) in [
        (bomb, "cfg/bomb.yaml"),
        ("x".repeat(MAX_GIT_FILE_BYTES + 1), "over the"),
        ("- 1\n- 2\n".to_string(), "is not a map"),
    ] {
        let f = Fixture {
            clusters: vec![],
            files: [("cfg/bomb.yaml".to_string(), content)]
                .into_iter()
                .collect(),
        };
        let e = generate(&set(y), &f).expect_err("hostile file");
        assert!(e.to_string().contains(want), "{e}");
    }
}

#[test]
fn elements_yaml_from_a_git_file_in_a_go_matrix() {
    let mut f = fixture();
    f.files.insert(
        "teams/config.yaml".into(),
        "teams:\n- {team: vision, gpus: 4}\n- {team: nlp, gpus: 8}\n".into(),
    );
    let apps = generate(
        &set(r#"
metadata: {name: s}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - matrix:
      generators:
      - git: {repoURL: r, revision: main, files: [{path: 'teams/config.yaml'}]}
      - list:
          elementsYaml: '{{ .teams | toJson }}'
  template:
    metadata: {name: 'train-{{.team}}'}
    spec:
      project: default
      source: {repoURL: r, path: 'training/{{.team}}', helm: {parameters: [{name: gpus, value: '{{.gpus}}'}]}}
      destination: {server: 'https://kubernetes.default.svc', namespace: 'ml-{{.team}}'}
"#),
        &f,
    )
    .expect("generate");
    assert_eq!(names(&apps), ["train-vision", "train-nlp"]);
    assert_eq!(
        apps[1]["spec"]["source"]["helm"]["parameters"][0]["value"],
        "8"
    );
}

#[test]
fn invalid_selectors_are_generator_errors() {
    // As Argo CD (`metav1.LabelSelectorAsSelector`): an unknown operator or an `In`
    // without values is an error, not a selector that silently matches nothing.
    for selector in [
        "{matchExpressions: [{key: region, operator: Bogus, values: [eu]}]}",
        "{matchExpressions: [{key: region, operator: In, values: []}]}",
        "{matchLabels: {'bad key!': x}}",
    ] {
        let err = gen(&format!(
            "metadata: {{name: s}}\nspec:\n  generators:\n  - clusters: {{selector: {selector}}}\n{TEMPLATE}"
        ))
        .expect_err(selector);
        assert!(err.to_string().contains("selector"), "{selector}: {err}");
    }
}
