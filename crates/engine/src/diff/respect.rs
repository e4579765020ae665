//! `RespectIgnoreDifferences=true`: what a sync applies for the fields that
//! `spec.ignoreDifferences` names.
//!
//! Without the option, `ignoreDifferences` only decides Synced/OutOfSync and a sync
//! applies Git as written: an HPA-managed `spec.replicas` goes back to Git's value on
//! every sync of another change. With it, Argo CD pre-patches the desired object before
//! applying (`normalizeTargetResources` in Argo CD's `controller/sync.go`: both sides are
//! normalised with the ignore rules, then the live side's normalisation is undone onto
//! the desired one). The effect, field by field, is what [`respect_ignored`] computes:
//!
//! * a field an entry selects in the live object gets the live value in the desired one
//!   (`jsonPointers`, `jqPathExpressions`; for `managedFieldsManagers` the fields those
//!   managers own);
//! * a field an entry selects in the desired object but absent from the live one is
//!   removed (the apply then leaves it to whoever owns it);
//! * no live object (first creation): the desired object is applied as it is, as Argo
//!   CD documents.
//!
//! Array items selected by a jq expression are written back at the live object's index
//! (replaced, or appended when the index is the desired list's length); items the desired
//! list lacks beyond that are not invented.

use super::DiffError;
use super::{identify, ignore, jq, managed, normalize, path, take_owned_except_identity};
use mooring_core::app::ResourceIgnoreDifferences;
use serde_json::Value;

/// The desired object with every field the matching `ignoreDifferences` entries select
/// taken from `live` (see the module docs).
pub fn respect_ignored(
    desired: &Value,
    live: Option<&Value>,
    ignore_rules: &[ResourceIgnoreDifferences],
) -> Result<Value, DiffError> {
    let key = identify(desired)?;
    let rules: Vec<&ResourceIgnoreDifferences> = ignore_rules
        .iter()
        .filter(|r| ignore::matches(r, &key))
        .collect();
    ignore::validate(&rules)?;
    let Some(live) = live else {
        return Ok(desired.clone());
    };
    let mut out = desired.clone();
    let managers: Vec<&str> = rules
        .iter()
        .flat_map(|r| r.managed_fields_managers.iter().map(String::as_str))
        .collect();
    if !managers.is_empty() {
        let owned = managed::owned_by(live, &managers, false);
        take_owned_except_identity(&mut out, live, &owned);
    }
    let secret = normalize::is_secret(desired);
    for rule in &rules {
        for p in &rule.json_pointers {
            let segments = path::parse_pointer(p).map_err(|reason| DiffError::BadJsonPointer {
                pointer: p.clone(),
                reason,
            })?;
            match path::resolve_pointer(live, &segments) {
                Some(at) => {
                    if let Some(v) = path::get(live, &at) {
                        path::set(&mut out, &at, v.clone());
                    }
                }
                None => path::remove_pointer(&mut out, &segments),
            }
        }
        for e in &rule.jq_path_expressions {
            let results = jq::paths_each(e, &[&out, live], secret)?;
            let mut sides = results.into_iter().map(|r| r.unwrap_or_default());
            let in_desired: Vec<path::Path> = sides
                .next()
                .unwrap_or_default()
                .iter()
                .filter_map(|p| path::resolve(&out, p))
                .collect();
            let in_live: Vec<path::Path> = sides
                .next()
                .unwrap_or_default()
                .iter()
                .filter_map(|p| path::resolve(live, p))
                .collect();
            // Set first (in place or appended), then remove what only the desired side
            // selects: the removals' indexes still refer to the original list.
            for p in &in_live {
                if let Some(v) = path::get(live, p) {
                    path::set(&mut out, p, v.clone());
                }
            }
            let only_desired: Vec<path::Path> = in_desired
                .into_iter()
                .filter(|p| !in_live.contains(p))
                .collect();
            path::remove_paths(&mut out, &only_desired);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(pointers: &[&str], jq: &[&str], managers: &[&str]) -> ResourceIgnoreDifferences {
        ResourceIgnoreDifferences {
            group: "apps".into(),
            kind: "Deployment".into(),
            json_pointers: pointers.iter().map(|s| s.to_string()).collect(),
            jq_path_expressions: jq.iter().map(|s| s.to_string()).collect(),
            managed_fields_managers: managers.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn deployment(replicas: Option<i64>, image: &str) -> Value {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "m", "namespace": "ml"},
            "spec": {"template": {"spec": {"containers": [{"name": "server", "image": image}]}}}});
        if let Some(r) = replicas {
            d["spec"]["replicas"] = json!(r);
        }
        d
    }

    #[test]
    fn json_pointers_keep_the_live_value() {
        let desired = deployment(Some(2), "model:2");
        let live = deployment(Some(5), "model:1");
        let out = respect_ignored(
            &desired,
            Some(&live),
            &[rule(&["/spec/replicas"], &[], &[])],
        )
        .expect("respect");
        assert_eq!(out["spec"]["replicas"], 5, "the HPA's value");
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"], "model:2",
            "everything else from Git"
        );
        // Absent live: removed from what is applied. No live object: Git as written.
        let live_without = deployment(None, "model:1");
        let out = respect_ignored(
            &desired,
            Some(&live_without),
            &[rule(&["/spec/replicas"], &[], &[])],
        )
        .expect("respect");
        assert!(out["spec"].get("replicas").is_none(), "{out}");
        let out =
            respect_ignored(&desired, None, &[rule(&["/spec/replicas"], &[], &[])]).expect("new");
        assert_eq!(out, desired);
        // Another kind: untouched.
        let other = ResourceIgnoreDifferences {
            kind: "StatefulSet".into(),
            ..rule(&["/spec/replicas"], &[], &[])
        };
        assert_eq!(
            respect_ignored(&desired, Some(&live), &[other]).expect("respect"),
            desired
        );
    }

    #[test]
    fn jq_paths_and_managers() {
        let desired = deployment(Some(2), "model:2");
        let mut live = deployment(Some(5), "model:1");
        live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("containers")
            .push(json!({"name": "istio-proxy", "image": "proxy:1"}));
        let out = respect_ignored(
            &desired,
            Some(&live),
            &[rule(
                &[],
                &[".spec.template.spec.containers[] | select(.name == \"istio-proxy\")"],
                &[],
            )],
        )
        .expect("respect");
        let containers = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers");
        assert_eq!(containers.len(), 2, "{out}");
        assert_eq!(containers[0]["image"], "model:2");
        assert_eq!(containers[1]["name"], "istio-proxy");

        // managedFieldsManagers: the fields the HPA controller owns keep their value.
        live["metadata"]["managedFields"] = json!([{
            "manager": "kube-controller-manager", "operation": "Update", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:replicas": {}}}
        }]);
        let out = respect_ignored(
            &desired,
            Some(&live),
            &[rule(&[], &[], &["kube-controller-manager"])],
        )
        .expect("respect");
        assert_eq!(out["spec"]["replicas"], 5);
        assert_eq!(out["metadata"]["name"], "m");
    }

    #[test]
    fn bad_rules_are_errors() {
        let desired = deployment(Some(2), "model:2");
        let e = respect_ignored(&desired, None, &[rule(&["spec/replicas"], &[], &[])])
            .expect_err("bad pointer");
        assert!(e.to_string().contains("spec/replicas"), "{e}");
        let e =
            respect_ignored(&desired, None, &[rule(&[], &[".spec[[["], &[])]).expect_err("bad jq");
        assert!(e.to_string().contains(".spec[[["), "{e}");
    }
}
