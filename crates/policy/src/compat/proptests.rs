//! Property tests of the source rewrites (issue 20).
//!
//! * **Same answers.** For policies that regorus already evaluates as OPA does without
//!   any rewrite, the rewritten policy must give the same answers as the original. The
//!   policies are representative of what the rewrites touch (Gatekeeper library style:
//!   required labels, allowed repos, container limits; a v1 policy with an import alias,
//!   a call in a partial set head, a partial object with reference key and value, `every`
//!   and negations whose operands are hoisted), and the inputs are generated
//!   `input.review.object` documents. Inputs only leave out what the original reads where
//!   regorus and OPA agree on an absent field (a bare `not ref`, a failing comparison), so
//!   the originals' answers are OPA's.
//! * **Idempotence.** `rewrite(rewrite(p)) == rewrite(p)` for policies made of the
//!   constructs the rewrites act on, in random combinations.
//! * **No panic** on arbitrary text or on token soup built from Rego's own pieces.

use super::rewrite;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Value};

/// (package, rule to evaluate, v0, source).
const POLICIES: &[(&str, &str, bool, &str)] = &[
    // tests/fixtures/policy/gatekeeper/gator/template.yaml
    (
        "k8srequiredlabels",
        "violation",
        true,
        r#"package k8srequiredlabels

violation[{"msg": msg, "details": {"missing_labels": missing}}] {
  provided := {label | input.review.object.metadata.labels[label]}
  required := {label | label := input.parameters.labels[_]}
  missing := required - provided
  count(missing) > 0
  msg := sprintf("missing label <%v>", [concat(",", missing)])
}

violation[{"msg": msg}] {
  some i
  required := input.parameters.labels[i]
  input.review.object.metadata.labels[required] == ""
  msg := sprintf("empty label <%v>", [required])
}
"#,
    ),
    // Gatekeeper library: k8sallowedrepos (the negated call's operands are hoisted).
    (
        "k8sallowedrepos",
        "violation",
        true,
        r#"package k8sallowedrepos

violation[{"msg": msg}] {
  container := input.review.object.spec.containers[_]
  not strings.any_prefix_match(container.image, input.parameters.repos)
  msg := sprintf("container <%v> has an invalid image repo <%v>, allowed repos are %v", [container.name, container.image, input.parameters.repos])
}
"#,
    ),
    // Gatekeeper library style: k8scontainerlimits (functions, bare negated references).
    (
        "k8scontainerlimits",
        "violation",
        true,
        r#"package k8scontainerlimits

missing(obj, field) = true {
  not obj[field]
}

missing(obj, field) = true {
  obj[field] == ""
}

violation[{"msg": msg}] {
  container := input.review.object.spec.containers[_]
  not container.resources.limits.memory
  msg := sprintf("container <%v> has no memory limit", [container.name])
}

violation[{"msg": msg}] {
  container := input.review.object.spec.containers[_]
  missing(container.resources.limits, "cpu")
  msg := sprintf("container <%v> has no cpu limit", [container.name])
}

violation[{"msg": "labels are required"}] {
  not count(object.get(input.review.object.metadata, "labels", {})) > 0
}
"#,
    ),
    // v1: an import alias, a call in a partial set head, a partial object whose key and
    // value are references, `every`, negations inside and outside it.
    (
        "replicas",
        "deny",
        false,
        r#"package replicas

import rego.v1
import input.review.object as obj

deny contains sprintf("%v: %v replicas, at most %v", [obj.metadata.name, obj.spec.replicas, input.parameters.max]) if {
  obj.kind == "Deployment"
  obj.spec.replicas > input.parameters.max
}

deny contains "no team label" if {
  not obj.metadata.labels.team
}

images[c.name] := c.image if {
  some c in obj.spec.containers
}

deny contains msg if {
  some name, image in images
  not contains(image, ":")
  msg := concat("", [name, " has no tag"])
}

deny contains "no container has limits" if {
  count(obj.spec.containers) > 0
  every c in obj.spec.containers {
    not c.resources.limits
  }
}

deny contains msg if {
  some c in obj.spec.containers
  not startswith(c.image, "registry.example.com/")
  msg := concat(" ", ["untrusted", c.name])
}
"#,
    ),
];

fn engine(text: &str, v0: bool) -> Result<regorus::Engine, String> {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(v0);
    engine.set_strict_builtin_errors(false);
    engine
        .add_policy("policy.rego".to_string(), text.to_string())
        .map_err(|e| e.to_string())?;
    engine
        .eval_query("true".to_string(), false)
        .map_err(|e| e.to_string())?;
    Ok(engine)
}

fn answer(engine: &regorus::Engine, rule: &str, input: &Value) -> Result<regorus::Value, String> {
    let mut engine = engine.clone();
    engine.set_input(regorus::Value::from(input.clone()));
    engine
        .eval_rule(rule.to_string())
        .map_err(|e| e.to_string())
}

thread_local! {
    /// (original, rewritten) engine of each of [`POLICIES`], compiled once per thread.
    static ENGINES: Vec<(regorus::Engine, regorus::Engine)> = POLICIES
        .iter()
        .map(|(_, _, v0, text)| {
            let original = engine(text, *v0).expect("the original compiles unchanged");
            let rewritten = engine(&rewrite(text, *v0), *v0).expect("the rewrite compiles");
            (original, rewritten)
        })
        .collect();
}

fn container() -> impl Strategy<Value = Value> {
    (
        select(vec![
            "registry.example.com/app:v1",
            "registry.example.com/app",
            "docker.io/library/nginx:1.25",
            "nginx",
            "ghcr.io/org/model@sha256:0123",
        ]),
        prop::option::of(prop::option::of(select(vec!["128Mi", "", "1Gi"]))),
        prop::option::of(select(vec!["500m", "", "1"])),
    )
        .prop_map(|(image, memory, cpu)| {
            let mut c = json!({"image": image});
            if let Some(memory) = memory {
                let mut limits = json!({});
                if let Some(m) = memory {
                    limits["memory"] = json!(m);
                }
                if let Some(cpu) = cpu {
                    limits["cpu"] = json!(cpu);
                }
                c["resources"] = json!({"limits": limits});
            }
            c
        })
}

/// An admission review's input: `review.object` (a Pod or a Deployment) and the
/// constraint's `parameters`.
fn review() -> impl Strategy<Value = Value> {
    let labels = prop::collection::btree_map(
        select(vec!["app", "team", "owner"]),
        select(vec!["", "ml", "x"]),
        0..3,
    );
    (
        select(vec!["Pod", "Deployment"]),
        "[a-z]{1,5}",
        prop::option::of(labels),
        prop::option::of(0..6i64),
        prop::collection::vec(container(), 0..4),
        prop::collection::vec(select(vec!["app", "team", "owner"]), 0..3),
        prop::collection::vec(select(vec!["registry.example.com/", "docker.io/"]), 0..2),
        0..4i64,
    )
        .prop_map(
            |(kind, name, labels, replicas, containers, required, repos, max)| {
                let containers: Vec<Value> = containers
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut c)| {
                        c["name"] = json!(format!("c{i}"));
                        c
                    })
                    .collect();
                let mut object = json!({"apiVersion": "v1", "kind": kind,
                    "metadata": {"name": name}, "spec": {"containers": containers}});
                if let Some(labels) = labels {
                    object["metadata"]["labels"] = json!(labels);
                }
                if let Some(r) = replicas {
                    object["spec"]["replicas"] = json!(r);
                }
                json!({"review": {"object": object},
                    "parameters": {"labels": required, "repos": repos, "max": max}})
            },
        )
}

/// Rules built from what the rewrites act on, v0 spelling.
fn v0_rule() -> impl Strategy<Value = String> {
    let operator = select(vec![
        "equal", "neq", "lt", "plus", "minus", "mul", "div", "rem",
    ]);
    prop_oneof![
        Just("p[x] {\n  x := input.a\n  (input.b == 1)\n}".to_string()),
        Just("q[x] { x := 1 } { x := 2 }".to_string()),
        Just("r[x] {\n  x := 1\n} {\n  x := 2\n}".to_string()),
        Just("violation[{\"msg\": f(v)}] {\n  v := input.a[_]\n}".to_string()),
        Just("s[x.name] = x { x := input.a[_] }".to_string()),
        Just("t { not input.a != 1; not count(input.b) > 0 }".to_string()),
        Just("u { not f(input.a,\n    input.b)\n  x := 1\n}".to_string()),
        Just("w { k.v == 1 }".to_string()),
        Just("f(a, b) { a == b }".to_string()),
        Just("default d = false".to_string()),
        Just("e = 1 { false } else = 2 { true }".to_string()),
        (operator, 0..12usize).prop_map(|(op, depth)| {
            let mut call = "input.n".to_string();
            for _ in 0..depth {
                call = format!("{op}({call}, 1)");
            }
            format!("g {{ x := {call}; not {op}(x, input.m) }}")
        }),
    ]
}

/// v0 policies: a package, perhaps an import, and rules of [`v0_rule`].
fn v0_policy() -> impl Strategy<Value = String> {
    (
        prop::option::of(select(vec![
            "import data.lib.k",
            "import input.review.object as k",
            "import future.keywords.in",
        ])),
        prop::collection::vec(v0_rule(), 1..5),
    )
        .prop_map(|(import, rules)| {
            let mut text = "package t\n".to_string();
            if let Some(i) = import {
                text.push_str(i);
                text.push('\n');
            }
            for r in rules {
                text.push('\n');
                text.push_str(&r);
                text.push('\n');
            }
            text
        })
}

/// Token soup: Rego's pieces (keywords, brackets, strings, comments, calls the rewrites
/// look for) in any order.
fn soup() -> impl Strategy<Value = String> {
    let pieces = select(vec![
        "package p",
        "import data.lib.k",
        "import input.x as y",
        "\n",
        " ",
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        "not",
        "input.a",
        "k.v",
        "y.z",
        "x",
        ":=",
        "==",
        "=",
        "if",
        "contains",
        "some",
        "every",
        "in",
        "with",
        "as",
        "else",
        "default",
        "\"s\"",
        "\"\\\"",
        "`raw`",
        "`",
        "#c",
        ";",
        ",",
        "count(",
        "equal(",
        "plus(",
        "f(",
        "violation[",
        "p[x]",
        "1",
        "__mooring_neg0",
        "é",
        "\\",
        "\"",
        "import",
        "\t",
    ]);
    prop::collection::vec(pieces, 0..40).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn prop_rewritten_policies_answer_as_the_originals(input in review()) {
        ENGINES.with(|engines| -> Result<(), TestCaseError> {
            for ((package, rule, _, _), (original, rewritten)) in POLICIES.iter().zip(engines) {
                let path = format!("data.{package}.{rule}");
                match (answer(original, &path, &input), answer(rewritten, &path, &input)) {
                    (Ok(want), Ok(got)) => prop_assert_eq!(got, want, "{} on {}", package, input),
                    (Err(_), Err(_)) => {}
                    (want, got) => {
                        return Err(TestCaseError::fail(format!(
                            "{package} on {input}: original {want:?}, rewritten {got:?}"
                        )))
                    }
                }
            }
            Ok(())
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn prop_rewriting_is_idempotent(policy in v0_policy(), v0 in any::<bool>()) {
        let once = rewrite(&policy, v0);
        prop_assert_eq!(rewrite(&once, v0), once.clone(), "{}", policy);
    }

    #[test]
    fn prop_rewriting_never_panics(text in any::<String>(), soup in soup(), v0 in any::<bool>()) {
        rewrite(&text, v0);
        rewrite(&soup, v0);
    }
}

#[test]
fn representative_policies_are_idempotent_under_the_rewrite() {
    for (package, _, v0, text) in POLICIES {
        let once = rewrite(text, *v0);
        assert_eq!(rewrite(&once, *v0), once, "{package}");
        // All but the first exercise a rewrite (hoisted operands, an alias, head terms),
        // so `prop_rewritten_policies_answer_as_the_originals` compares different texts.
        assert_eq!(
            once != *text,
            *package != "k8srequiredlabels",
            "{package}: {once}"
        );
    }
}

/// Regression (minimised by `prop_rewriting_is_idempotent`): operator functions nested
/// more than eight deep were rewritten over a fixed eight rounds, so the outermost call was
/// left for the next rewrite and rewriting twice changed the text again.
#[test]
fn regression_deeply_nested_operator_calls_are_rewritten_at_once() {
    let policy = "package t\n\ng { x := equal(equal(equal(equal(equal(equal(equal(equal(equal(input.n, 1), 1), 1), 1), 1), 1), 1), 1), 1); not equal(x, input.m) }\n";
    let once = rewrite(policy, true);
    assert!(!once.contains("equal("), "{once}");
    assert_eq!(rewrite(&once, true), once);
}

/// The comparison above is not vacuous: on one input that breaks every rule, each
/// representative policy, original and rewritten, evaluates to the same non-empty set.
#[test]
fn representative_policies_find_violations() {
    let input = json!({
        "review": {"object": {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 5, "containers": [{"name": "c0", "image": "nginx"}]}}},
        "parameters": {"labels": ["team"], "repos": ["registry.example.com/"], "max": 1},
    });
    ENGINES.with(|engines| {
        for ((package, rule, _, _), (original, rewritten)) in POLICIES.iter().zip(engines) {
            let path = format!("data.{package}.{rule}");
            let want = answer(original, &path, &input).expect("the original evaluates");
            let got = answer(rewritten, &path, &input).expect("the rewrite evaluates");
            let found = want.as_set().map(|s| s.len()).unwrap_or_default();
            assert!(found > 0, "{package}: {want:?}");
            assert_eq!(got, want, "{package}");
        }
    });
}
