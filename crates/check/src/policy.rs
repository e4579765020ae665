//! The policy stage: Gatekeeper constraints (reviewed with the controller's project
//! scoping, `mooring_policy::gate`), conftest policies, Rego unit tests and gator
//! suites of the repository.

use crate::render::Rendered;
use crate::report::{failure, subject, warning};
use crate::units::{is_yaml, rel};
use mooring_policy::conftest::{self, Conftest, Input};
use mooring_policy::gate;
use mooring_policy::gatekeeper::{self, EnforcementAction, Gatekeeper};
use mooring_policy::lint;
use mooring_policy::report::{Report, Subject};
use mooring_policy::{gator, regotest, RegoSource};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Gatekeeper templates and constraints, conftest policies, gator suites and Rego unit
/// tests of the repository, run against the rendered objects.
///
/// * **Gatekeeper**: every ConstraintTemplate and constraint in a YAML file of REPO or
///   among the rendered objects is in force (one copy per kind and name). Each rendered
///   object is reviewed as a `CREATE`, with the Namespace object of its environment when
///   rendered, and `data.inventory` holding every object rendered for the same
///   environment: what the cluster would hold. Only the constraints that apply to the
///   Application's project count, as in the controller's gate
///   ([`mooring_policy::gate`]: a constraint labelled `mooring.dev/project: A`
///   does not apply to an Application of project B; an overlay no Application renders
///   gets every constraint). `deny` violations are failures, `warn` and `dryrun` ones
///   warnings.
/// * **conftest**: each policy root — a directory named `conftest` or `policy` holding
///   `.rego` files, outermost wins — is compiled on its own and run (namespace `main`, as
///   `conftest test` does by default) on every render's objects.
/// * **Rego unit tests**: the `test_` rules of every policy root with `*_test.rego` files.
/// * **gator suites**: every YAML file of `kind: Suite`, with `gator verify`'s meaning.
///
/// A policy that does not compile is a failure naming its file and line, never skipped.
pub(crate) fn policy_stage(repo: &Path, files: &[PathBuf], rendered: &[Rendered]) -> Report {
    let mut report = Report::default();
    let limits = mooring_policy::Limits::default();

    // Gatekeeper.
    let mut policy_objects: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut suites = Vec::new();
    for f in files {
        if !is_yaml(f) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        if gator::is_suite(&text) {
            suites.push(f.clone());
            continue;
        }
        for d in mooring_core::yaml::parse_all(&text).unwrap_or_default() {
            if gatekeeper::is_policy_object(&d) {
                policy_objects.insert(policy_key(&d), d);
            }
        }
    }
    for o in rendered.iter().flat_map(|r| r.objects.iter()) {
        if gatekeeper::is_policy_object(o) {
            policy_objects
                .entry(policy_key(o))
                .or_insert_with(|| o.clone());
        }
    }
    if !policy_objects.is_empty() {
        match Gatekeeper::from_objects(policy_objects.values(), limits) {
            Ok(gk) => report.subjects.extend(gatekeeper_stage(&gk, rendered)),
            Err(e) => report.subjects.push(subject(
                "",
                "gatekeeper",
                vec![failure(
                    "gatekeeper",
                    "gatekeeper/compile",
                    e.to_string(),
                    "",
                )],
            )),
        }
    }

    // conftest policies and their Rego unit tests.
    for root in policy_roots(repo, files) {
        let root_rel = rel(repo, &root);
        let mut sources = Vec::new();
        let mut has_tests = false;
        for f in files.iter().filter(|f| f.starts_with(&root)) {
            if f.extension().is_some_and(|x| x == "rego") {
                has_tests |= f.to_string_lossy().ends_with("_test.rego");
                match std::fs::read_to_string(f) {
                    Ok(text) => sources.push(RegoSource::new(rel(repo, f), text)),
                    Err(e) => report.subjects.push(subject(
                        &rel(repo, f),
                        "",
                        vec![failure("conftest", "conftest/read", e.to_string(), "")],
                    )),
                }
            }
        }
        let engine = match Conftest::load(&sources, &[], limits) {
            Ok(engine) => engine,
            Err(e) => {
                report.subjects.push(subject(
                    &root_rel,
                    "",
                    vec![failure("conftest", "conftest/compile", e.to_string(), "")],
                ));
                continue;
            }
        };
        let inputs: Vec<Input> = rendered
            .iter()
            .map(|r| Input {
                path: format!(
                    "{} ({})",
                    r.unit.name,
                    r.unit.source.path.as_deref().unwrap_or("")
                ),
                documents: r
                    .objects
                    .iter()
                    .filter(|o| !gatekeeper::is_policy_object(o))
                    .cloned()
                    .collect(),
            })
            .filter(|i| !i.documents.is_empty())
            .collect();
        match engine.test(&inputs, &conftest::Options::default()) {
            Ok(r) => report.subjects.extend(r.subjects),
            Err(e) => report.subjects.push(subject(
                &root_rel,
                "",
                vec![failure("conftest", "conftest/eval", e.to_string(), "")],
            )),
        }
        if has_tests {
            let options = regotest::TestOptions {
                limits,
                ..Default::default()
            };
            match regotest::run_tests(&sources, &[], &options) {
                Ok(run) => report.subjects.extend(run.to_report().subjects),
                Err(e) => report.subjects.push(subject(
                    &root_rel,
                    "",
                    vec![failure("rego-test", "rego-test/error", e.to_string(), "")],
                )),
            }
        }
    }

    // gator suites.
    for suite in suites {
        let dir = suite.parent().map(Path::to_path_buf).unwrap_or_default();
        let text = std::fs::read_to_string(&suite).map_err(|e| e.to_string());
        let result = gator::suite_report(
            &rel(repo, &suite),
            text,
            &mut |p| std::fs::read_to_string(dir.join(p)),
            limits,
        );
        report.subjects.extend(result.subjects);
    }
    report
}

pub(crate) fn policy_key(o: &Value) -> (String, String) {
    (
        o["kind"].as_str().unwrap_or("").to_string(),
        o["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

/// Directories named `conftest` or `policy` that hold `.rego` files (the outermost of
/// nested ones).
pub(crate) fn policy_roots(repo: &Path, files: &[PathBuf]) -> Vec<PathBuf> {
    let mut roots: BTreeSet<PathBuf> = BTreeSet::new();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "rego"))
    {
        let root = f
            .ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(repo) && *d != repo)
            .filter(|d| {
                d.file_name()
                    .is_some_and(|n| n == "conftest" || n == "policy")
            })
            .last();
        if let Some(root) = root {
            roots.insert(root.to_path_buf());
        }
    }
    roots.into_iter().collect()
}

/// Reviews every rendered object against the constraints, per environment.
pub(crate) fn gatekeeper_stage(gk: &Gatekeeper, rendered: &[Rendered]) -> Vec<Subject> {
    let mut by_env: BTreeMap<Option<String>, Vec<&Rendered>> = BTreeMap::new();
    for r in rendered {
        by_env
            .entry(r.unit.environment.clone())
            .or_default()
            .push(r);
    }
    let mut subjects = Vec::new();
    for renders in by_env.values() {
        let objects: Vec<&Value> = renders
            .iter()
            .flat_map(|r| r.objects.iter())
            .filter(|o| !gatekeeper::is_policy_object(o))
            .collect();
        let mut gk = gk.clone();
        gk.set_inventory(objects.iter().copied());
        let namespaces: BTreeMap<&str, &Value> = objects
            .iter()
            .filter(|o| o["kind"] == "Namespace" && o["apiVersion"] == "v1")
            .filter_map(|o| Some((o["metadata"]["name"].as_str()?, *o)))
            .collect();
        for r in renders {
            let mut s = Subject {
                filename: r.unit.source.path.clone().unwrap_or_default(),
                namespace: r.unit.name.clone(),
                ..Default::default()
            };
            // The constraints that apply to the Application's project, as in the
            // controller's gate; an overlay no Application renders gets them all.
            let scope = r
                .unit
                .project
                .as_deref()
                .map_or(gate::Scope::Unknown, gate::Scope::Project);
            let objects = r
                .objects
                .iter()
                .filter(|o| !gatekeeper::is_policy_object(o));
            for reviewed in gate::review(&gk, scope, objects, &[], &namespaces) {
                match reviewed.result {
                    Ok(violations) if violations.is_empty() => s.successes += 1,
                    Ok(violations) => {
                        for v in violations {
                            let rule = format!("{}/{}", v.constraint_kind, v.constraint_name);
                            let message = v.message.clone();
                            let resource = v.resource.to_string();
                            let mut f = if v.enforcement_action == EnforcementAction::Deny {
                                failure("gatekeeper", &rule, message, &resource)
                            } else {
                                warning("gatekeeper", &rule, message, &resource)
                            };
                            f.metadata = v.details;
                            s.findings.push(f);
                        }
                    }
                    Err(e) => s.findings.push(failure(
                        "gatekeeper",
                        "gatekeeper/eval",
                        e.to_string(),
                        &lint::resource_label(reviewed.object),
                    )),
                }
            }
            if s.successes > 0 || !s.findings.is_empty() {
                subjects.push(s);
            }
        }
    }
    subjects
}
