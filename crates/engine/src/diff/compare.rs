//! Projection of the live object onto the desired one, and semantic equality.
//!
//! The API server fills in defaults (`imagePullPolicy`, `terminationMessagePath`,
//! `strategy`, `clusterIP`, …) that Git never states. Comparing whole objects would make
//! every resource OutOfSync forever, so the live object is first *projected*: only the
//! fields that the desired object sets survive, plus the fields that Mooring's own field
//! manager applied earlier (so a field deleted from Git is drift). See the module docs of
//! `diff` for the rules on lists, numbers and quantities.

use super::list_key::list_key;
use super::managed::Fields;
use super::quantity;
use serde_json::{Map, Value};

/// Object keys whose values (and everything below them) are Kubernetes quantities.
pub(crate) const QUANTITY_KEYS: [&str; 8] = [
    "resources",
    "limits",
    "requests",
    "hard",
    "capacity",
    "allocatable",
    "overhead",
    "sizeLimit",
];

/// Where in the document a comparison is.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ctx {
    quantities: bool,
}

impl Ctx {
    fn enter(self, key: &str) -> Ctx {
        Ctx {
            quantities: self.quantities || QUANTITY_KEYS.contains(&key),
        }
    }
}

/// Empty values, which Kubernetes treats as unset: `null`, `{}` and `[]`.
pub(crate) fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Zero values (`false`, `0`, `""`): Kubernetes drops them from `omitempty` fields, so a
/// desired zero value matches a live field that is absent.
pub(crate) fn is_zero(v: &Value) -> bool {
    match v {
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// Project `live` onto the shape of `desired`.
///
/// Kept: every field that `desired` sets (recursively), every field of `live` that
/// `owned` lists (Mooring applied it, so its absence from Git is a removal), and every
/// extra item of a keyed list (the API server never adds list items; another actor did).
/// Where a live scalar equals the desired one by value (`500m` and `0.5`), the desired
/// spelling is used so the unified diff shows only real changes.
pub(crate) fn project(live: &Value, desired: &Value, owned: Option<&Fields>, ctx: Ctx) -> Value {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => {
            let mut out = Map::new();
            for (k, dv) in d {
                let owned_k = owned.and_then(|o| o.field(k));
                match l.get(k) {
                    Some(lv) => {
                        out.insert(k.clone(), project(lv, dv, owned_k, ctx.enter(k)));
                    }
                    None if is_empty(dv) || is_zero(dv) => {
                        out.insert(k.clone(), dv.clone());
                    }
                    None => {}
                }
            }
            if let Some(owned) = owned {
                for (k, lv) in l {
                    if d.contains_key(k) {
                        continue;
                    }
                    if let Some(f) = owned.field(k) {
                        let v = super::managed::extract(lv, f);
                        if !is_empty(&v) {
                            out.insert(k.clone(), v);
                        }
                    }
                }
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(d)) => match list_key(d, l) {
            Some(key) => {
                let mut out = Vec::with_capacity(l.len());
                let mut used = vec![false; l.len()];
                for dv in d {
                    let found = l
                        .iter()
                        .enumerate()
                        .find(|(i, lv)| !used[*i] && lv.get(&key) == dv.get(&key));
                    if let Some((i, lv)) = found {
                        used[i] = true;
                        let owned_i = owned.and_then(|o| o.item(i, lv));
                        out.push(project(lv, dv, owned_i, ctx));
                    }
                }
                out.extend(
                    l.iter()
                        .zip(&used)
                        .filter(|(_, used)| !**used)
                        .map(|(lv, _)| lv.clone()),
                );
                Value::Array(out)
            }
            None if l.len() == d.len() => Value::Array(
                l.iter()
                    .zip(d)
                    .enumerate()
                    .map(|(i, (lv, dv))| project(lv, dv, owned.and_then(|o| o.item(i, lv)), ctx))
                    .collect(),
            ),
            None => live.clone(),
        },
        _ if scalar_equal(live, desired, ctx) => desired.clone(),
        _ => live.clone(),
    }
}

fn scalar_equal(a: &Value, b: &Value, ctx: Ctx) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        _ if a == b => true,
        _ if ctx.quantities => match (quantity::of(a), quantity::of(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        _ => false,
    }
}

/// Semantic equality of a desired value and a projected live value: empty equals
/// missing, numbers compare by value, quantities by amount, lists element by element.
pub(crate) fn equal(desired: &Value, live: &Value, ctx: Ctx) -> bool {
    if is_empty(desired) && is_empty(live) {
        return true;
    }
    if live.is_null() && is_zero(desired) {
        return true;
    }
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            let null = Value::Null;
            d.keys()
                .chain(l.keys().filter(|k| !d.contains_key(*k)))
                .all(|k| {
                    equal(
                        d.get(k).unwrap_or(&null),
                        l.get(k).unwrap_or(&null),
                        ctx.enter(k),
                    )
                })
        }
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(x, y)| equal(x, y, ctx))
        }
        _ => scalar_equal(desired, live, ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_projected_away() {
        let desired = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        let live = json!({"spec": {"dnsPolicy": "ClusterFirst", "containers": [
            {"name": "a", "image": "x", "imagePullPolicy": "IfNotPresent"}]}});
        let p = project(&live, &desired, None, Ctx::default());
        assert_eq!(p, desired);
        assert!(equal(&desired, &p, Ctx::default()));
    }

    #[test]
    fn numbers_and_quantities() {
        let c = Ctx::default();
        assert!(equal(&json!(1), &json!(1.0), c));
        assert!(!equal(&json!("0.5"), &json!("500m"), c));
        let q = c.enter("resources");
        assert!(equal(&json!({"cpu": "0.5"}), &json!({"cpu": "500m"}), q));
        assert!(equal(
            &json!({"memory": "1Gi"}),
            &json!({"memory": 1073741824}),
            q
        ));
        assert!(!equal(
            &json!({"memory": "1G"}),
            &json!({"memory": "1Gi"}),
            q
        ));
    }

    #[test]
    fn empty_equals_missing() {
        let c = Ctx::default();
        assert!(equal(&json!({"a": {}, "b": []}), &json!({}), c));
        assert!(equal(&json!({"a": null}), &json!({}), c));
        assert!(equal(
            &json!({"hostNetwork": false, "n": 0, "s": ""}),
            &json!({}),
            c
        ));
        assert!(!equal(&json!({}), &json!({"hostNetwork": false}), c));
    }

    #[test]
    fn keyed_list_extra_items_are_kept() {
        let desired = json!([{"name": "a", "image": "x"}]);
        let live = json!([{"name": "b", "image": "y"}, {"name": "a", "image": "x", "tty": false}]);
        let p = project(&live, &desired, None, Ctx::default());
        assert_eq!(
            p,
            json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}])
        );
    }
}
