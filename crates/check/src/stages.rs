//! Per-object stages of a render: schema validation, the built-in lints, and the fields
//! and annotations Mooring does not act on.

use crate::render::Rendered;
use crate::report::{failure, warning};
use mooring_engine::schema::{self, Crds, Outcome};
use mooring_policy::lint::{self, LintOptions};
use mooring_policy::report::{Finding, Subject};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Schema validation and lints of one render.
pub(crate) fn check_objects(r: &Rendered, crds: &Crds, lint_opts: &LintOptions) -> Subject {
    let mut s = Subject {
        filename: r.unit.source.path.clone().unwrap_or_default(),
        namespace: r.unit.name.clone(),
        ..Default::default()
    };
    let mut skipped: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for o in &r.objects {
        let resource = lint::resource_label(o);
        match schema::validate(o, crds) {
            Outcome::Valid => s.successes += 1,
            Outcome::Invalid(issues) => {
                for i in issues {
                    let message = match i.message.as_str() {
                        "unknown field" | "missing required field" => {
                            format!("{} {:?}", i.message, i.path)
                        }
                        _ => i.to_string(),
                    };
                    s.findings
                        .push(failure("schema", "schema/invalid", message, &resource));
                }
            }
            Outcome::Skipped { reason } => {
                let key = format!(
                    "{} {}",
                    o["apiVersion"].as_str().unwrap_or(""),
                    o["kind"].as_str().unwrap_or("")
                );
                skipped.entry(key).or_insert((0, reason)).0 += 1;
            }
        }
        let l = lint::lint(o, &r.objects, lint_opts);
        s.successes += l.passed;
        s.findings.extend(l.findings);
    }
    for (_, (n, reason)) in skipped {
        s.findings.push(warning(
            "schema",
            "schema/skipped",
            format!("skipped: {reason} ({n} object(s)); add its CustomResourceDefinition to the repository to validate it"),
            "",
        ));
    }
    s
}

/// Fields of an Argo CD `Application` or `ApplicationSet`, or an Argo Rollouts `Rollout`,
/// that Mooring does not act on ([`mooring_engine::unsupported`], the table the
/// controllers use). For Applications and ApplicationSets, a field Argo CD does not define
/// at all fails (Argo CD's CRD would refuse it) and one Mooring does not implement is a
/// warning, like the controller's `UnsupportedFieldWarning` condition; a Rollout with any
/// such field fails, because the controller refuses it (`InvalidSpec`, nothing rolls
/// out). Findings already in `reported` are not repeated.
pub(crate) fn unsupported_findings(
    obj: &Value,
    reported: &mut BTreeSet<(String, String)>,
) -> Vec<Finding> {
    use mooring_engine::unsupported::{self, Reason};
    let argo = obj["apiVersion"]
        .as_str()
        .is_some_and(|a| a.starts_with("argoproj.io/"));
    let (source, found) = match obj["kind"].as_str() {
        _ if !argo => return vec![],
        Some("Application") => ("application", unsupported::application(obj)),
        Some("ApplicationSet") => ("applicationset", unsupported::applicationset(obj)),
        Some("Rollout") => ("rollout", unsupported::rollout(obj)),
        _ => return vec![],
    };
    let resource = lint::resource_label(obj);
    found
        .into_iter()
        .filter(|u| reported.insert((resource.clone(), u.to_string())))
        .map(|u| match (source, &u.reason) {
            ("rollout", _) => failure(
                source,
                "rollout/unsupported-field",
                format!("{u}; the Rollout would be Degraded (InvalidSpec) and not roll out"),
                &resource,
            ),
            (_, Reason::Unknown { .. }) => failure(
                source,
                &format!("{source}/unknown-field"),
                u.to_string(),
                &resource,
            ),
            _ => warning(
                source,
                &format!("{source}/unsupported-field"),
                u.to_string(),
                &resource,
            ),
        })
        .collect()
}

/// Per-resource annotations Mooring does not act on, as warnings: sync options (the
/// `argocd.argoproj.io/sync-options` annotation, the same table as
/// `syncPolicy.syncOptions`) and hook types it does not run.
pub(crate) fn annotation_findings(obj: &Value) -> Vec<Finding> {
    let resource = lint::resource_label(obj);
    mooring_engine::unsupported::manifest(obj)
        .into_iter()
        .map(|u| {
            let rule = if u
                .path
                .contains(mooring_engine::unsupported::SYNC_OPTIONS_ANNOTATION)
            {
                "sync-option/unsupported"
            } else {
                "hook/unsupported"
            };
            warning("sync", rule, u.to_string(), &resource)
        })
        .collect()
}
