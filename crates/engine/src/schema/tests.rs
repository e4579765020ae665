use super::*;
use serde_json::json;

fn yaml(s: &str) -> Value {
    mooring_core::yaml::parse_one(s).expect("test YAML parses")
}

fn issues(obj: &Value, crds: &Crds) -> Vec<String> {
    match validate(obj, crds) {
        Outcome::Valid => vec![],
        Outcome::Invalid(i) => i.iter().map(ToString::to_string).collect(),
        Outcome::Skipped { reason } => vec![format!("skipped: {reason}")],
    }
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ml, labels: {app: web}, creationTimestamp: null}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 80, name: http}]
        resources: {requests: {cpu: 1, memory: 1Gi}, limits: {cpu: 1.5, memory: "2Gi"}}
        readinessProbe: {httpGet: {path: /, port: http}}
"#;

#[test]
fn builtin_kinds_table() {
    let none = Crds::default();
    // (name, YAML patch applied to DEPLOYMENT as JSON pointer → value, expected issues)
    let cases: &[(&str, &str, Value, &[&str])] = &[
        ("valid", "", Value::Null, &[]),
        (
            "unknown field in a container",
            "/spec/template/spec/containers/0/imagePullPolcy",
            json!("Always"),
            &["spec.template.spec.containers[0].imagePullPolcy: unknown field"],
        ),
        (
            "unknown top-level field",
            "/spek",
            json!({}),
            &["spek: unknown field"],
        ),
        (
            "wrong type",
            "/spec/replicas",
            json!("3"),
            &["spec.replicas: invalid type: string \"3\", expected i32"],
        ),
        (
            "wrong type deep in a list",
            "/spec/template/spec/containers/0/ports/0/containerPort",
            json!([80]),
            &["spec.template.spec.containers[0].ports[0].containerPort: invalid type: sequence, expected i32"],
        ),
        (
            "null is absent",
            "/spec/strategy",
            Value::Null,
            &[],
        ),
    ];
    for (name, pointer, value, want) in cases {
        let mut obj = yaml(DEPLOYMENT);
        if !pointer.is_empty() {
            let (parent, key) = pointer.rsplit_once('/').expect("pointer");
            obj.pointer_mut(parent).expect("parent exists")[key] = value.clone();
        }
        assert_eq!(issues(&obj, &none), *want, "{name}");
    }
}

#[test]
fn missing_required_fields_are_reported() {
    let mut obj = yaml(DEPLOYMENT);
    obj["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .expect("container")
        .remove("name");
    obj["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("selector");
    assert_eq!(
        issues(&obj, &Crds::default()),
        vec![
            "spec.template.spec.containers[0].name: missing required field",
            "spec.selector: missing required field"
        ]
    );
}

#[test]
fn embedded_resources_need_no_apiversion() {
    let sts = yaml(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: "redis:7"}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"#,
    );
    assert_eq!(issues(&sts, &Crds::default()), Vec::<String>::new());
}

#[test]
fn many_builtin_kinds_validate() {
    let docs = mooring_core::yaml::parse_all(
        r#"
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {selector: {app: a}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
data: {a: "1"}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {password: x}
data: {token: aGVsbG8=}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: t, image: "t:1"}]}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: i}
spec: {rules: [{host: a.example.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}}]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: p}
spec: {minAvailable: 50%, selector: {matchLabels: {app: a}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: r}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: h}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}]
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
"#,
    )
    .expect("parses");
    for d in &docs {
        assert_eq!(issues(d, &Crds::default()), Vec::<String>::new(), "{d}");
    }
}

#[test]
fn kinds_without_schema_are_skipped() {
    let o =
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"}});
    assert!(matches!(
        validate(&o, &Crds::default()),
        Outcome::Skipped { .. }
    ));
    let o = json!({"kind": "Thing", "metadata": {"name": "r"}});
    assert!(matches!(
        validate(&o, &Crds::default()),
        Outcome::Invalid(_)
    ));
}

fn crds() -> Crds {
    let crd = yaml(include_str!(
        "../../tests/fixtures/schema/crd-trainingjob.yaml"
    ));
    assert_eq!(
        issues(&crd, &Crds::default()),
        Vec::<String>::new(),
        "the CRD itself is valid"
    );
    let (crds, errors) = Crds::from_objects([&crd]);
    assert!(errors.is_empty());
    crds
}

#[test]
fn crd_golden_valid_and_invalid() {
    let crds = crds();
    let valid = yaml(include_str!(
        "../../tests/fixtures/schema/trainingjob-valid.yaml"
    ));
    assert_eq!(issues(&valid, &crds), Vec::<String>::new());
    let invalid = yaml(include_str!(
        "../../tests/fixtures/schema/trainingjob-invalid.yaml"
    ));
    let want: Vec<String> =
        include_str!("../../tests/fixtures/schema/trainingjob-invalid.expected")
            .lines()
            .map(str::to_string)
            .collect();
    assert_eq!(issues(&invalid, &crds), want);
}

#[test]
fn crd_versions() {
    let crds = crds();
    let mut o = yaml(include_str!(
        "../../tests/fixtures/schema/trainingjob-valid.yaml"
    ));
    o["apiVersion"] = json!("ml.example.com/v1alpha1");
    o["spec"]["anything"] = json!(1);
    assert_eq!(
        issues(&o, &crds),
        Vec::<String>::new(),
        "preserve-unknown-fields root"
    );
    o["apiVersion"] = json!("ml.example.com/v0");
    assert_eq!(
        issues(&o, &crds),
        vec!["apiVersion: version v0 of ml.example.com/TrainingJob is not served by its CustomResourceDefinition (served: v1, v1alpha1)"]
    );
}

#[test]
fn hostile_input_is_bounded() {
    let crds = crds();
    // Deeply nested junk under a preserve-unknown-fields field and an unknown one.
    let mut deep = json!(1);
    for _ in 0..500 {
        deep = json!({ "a": deep });
    }
    let mut o = yaml(include_str!(
        "../../tests/fixtures/schema/trainingjob-valid.yaml"
    ));
    o["spec"]["hyperparameters"]["deep"] = deep.clone();
    assert_eq!(issues(&o, &crds), Vec::<String>::new());
    let mut d = yaml(DEPLOYMENT);
    d["spec"]["template"]["spec"]["junk"] = deep;
    assert_eq!(
        issues(&d, &Crds::default()),
        vec!["spec.template.spec.junk: unknown field"]
    );
    // A huge array of wrong items stops at MAX_ISSUES.
    let mut o = yaml(include_str!(
        "../../tests/fixtures/schema/trainingjob-valid.yaml"
    ));
    o["spec"]["tags"] = Value::Array(vec![json!(1); 100_000]);
    match validate(&o, &crds) {
        Outcome::Invalid(i) => assert_eq!(i.len(), MAX_ISSUES),
        other => panic!("{other:?}"),
    }
    let mut d = yaml(DEPLOYMENT);
    let c = d["spec"]["template"]["spec"]["containers"][0].clone();
    let mut many = vec![c; 10_000];
    for (i, c) in many.iter_mut().enumerate() {
        c["name"] = json!(format!("c{i}"));
        c["typo"] = json!(true);
    }
    d["spec"]["template"]["spec"]["containers"] = Value::Array(many);
    match validate(&d, &Crds::default()) {
        Outcome::Invalid(i) => assert_eq!(i.len(), MAX_ISSUES),
        other => panic!("{other:?}"),
    }
    // Wrong types everywhere.
    for junk in [json!(null), json!([]), json!("x"), json!(7)] {
        let mut d = yaml(DEPLOYMENT);
        d["spec"] = junk.clone();
        let _ = validate(&d, &Crds::default());
        d["metadata"] = junk;
        assert!(matches!(
            validate(&d, &Crds::default()),
            Outcome::Invalid(_) | Outcome::Valid
        ));
    }
}

#[test]
fn bad_crds_are_reported() {
    let (_, errors) = Crds::from_objects([&json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "x.example.com"}, "spec": {}
    })]);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].to_string().contains("x.example.com"));
}

#[test]
fn gatekeeper_constraints_against_their_templates() {
    let template = |api: &str, legacy: Option<bool>| {
        let mut t = yaml(
            r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8smlresourcelimits}
spec:
  crd:
    spec:
      names: {kind: K8sMLResourceLimits}
      validation:
        openAPIV3Schema:
          type: object
          properties:
            maxGpus: {type: integer}
            namespaces: {type: array, items: {type: string}}
  targets: [{target: admission.k8s.gatekeeper.sh, rego: "package x"}]
"#,
        );
        t["apiVersion"] = json!(api);
        if let Some(l) = legacy {
            t["spec"]["crd"]["spec"]["validation"]["legacySchema"] = json!(l);
        }
        t
    };
    let constraint = yaml(
        r#"
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sMLResourceLimits
metadata: {name: training-caps}
spec:
  enforcementAction: deny
  match: {kinds: [{apiGroups: [apps], kinds: [Deployment]}], namespaces: [ml-training]}
  parameters: {maxGpus: 8, namespaces: [ml-training]}
"#,
    );
    let mut typo = constraint.clone();
    typo["spec"]["parameters"]["maxGpu"] = json!(8);
    let mut wrong = constraint.clone();
    wrong["spec"]["parameters"]["maxGpus"] = json!("8");
    let (v1, _) = Crds::from_objects([&template("templates.gatekeeper.sh/v1", None)]);
    assert_eq!(issues(&constraint, &v1), Vec::<String>::new());
    assert_eq!(
        issues(&typo, &v1),
        vec!["spec.parameters.maxGpu: unknown field"]
    );
    assert_eq!(
        issues(&wrong, &v1),
        vec!["spec.parameters.maxGpus: must be of type integer, got string"]
    );
    // Legacy schemas keep unknown parameters but still check types.
    for t in [
        template("templates.gatekeeper.sh/v1beta1", None),
        template("templates.gatekeeper.sh/v1", Some(true)),
    ] {
        let (legacy, _) = Crds::from_objects([&t]);
        assert_eq!(issues(&typo, &legacy), Vec::<String>::new());
        assert_eq!(issues(&wrong, &legacy).len(), 1);
    }
    let mut unknown_kind = constraint.clone();
    unknown_kind["kind"] = json!("Other");
    assert!(matches!(
        validate(&unknown_kind, &v1),
        Outcome::Skipped { .. }
    ));
}
