//! Paths into JSON documents: RFC 6901 JSON Pointers (`jsonPointers`) and the paths that
//! jq's `path(...)` yields (`jqPathExpressions`), and removing what they point at.

use serde_json::Value;

/// One step of a path: an object key or an array index (negative counts from the end,
/// as jq's `.[-1]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(isize),
}

pub(crate) type Path = Vec<Seg>;

/// Parse an RFC 6901 pointer. `""` is the whole document; otherwise it must start with
/// `/`, and `~` may only be followed by `0` (`~`) or `1` (`/`). Segments stay keys here;
/// whether a segment indexes an array is decided against the document.
pub(crate) fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err("a JSON pointer must be empty or start with `/`".into());
    };
    rest.split('/')
        .map(|raw| {
            let mut out = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err("`~` must be followed by `0` or `1`".to_string()),
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

/// Remove what an RFC 6901 pointer designates; absent targets are not an error (the
/// field may simply not be set on this side). The empty pointer empties the document.
pub(crate) fn remove_pointer(doc: &mut Value, segments: &[String]) {
    let Some((last, parents)) = segments.split_last() else {
        *doc = Value::Null;
        return;
    };
    let mut cur = doc;
    for seg in parents {
        let next = match cur {
            Value::Object(m) => m.get_mut(seg),
            Value::Array(a) => array_index(seg).and_then(|i| a.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match cur {
        Value::Object(m) => {
            m.shift_remove(last);
        }
        Value::Array(a) => {
            if let Some(i) = array_index(last).filter(|i| *i < a.len()) {
                a.remove(i);
            }
        }
        _ => {}
    }
}

fn array_index(seg: &str) -> Option<usize> {
    // RFC 6901: no leading zeros, digits only.
    if seg.is_empty() || (seg.len() > 1 && seg.starts_with('0')) {
        return None;
    }
    if !seg.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    seg.parse().ok()
}

fn resolve_index(i: isize, len: usize) -> Option<usize> {
    if i >= 0 {
        let i = i.unsigned_abs();
        (i < len).then_some(i)
    } else {
        len.checked_sub(i.unsigned_abs())
    }
}

/// Remove several jq paths from `doc`. Array elements are removed after resolving every
/// path against the unmodified document, from the highest index down, so removing
/// `.[0]` and `.[1]` removes both elements rather than the first and the third.
pub(crate) fn remove_paths(doc: &mut Value, paths: &[Path]) {
    // Resolve negative indexes and drop paths that do not exist.
    let mut resolved: Vec<Vec<Seg>> = paths.iter().filter_map(|p| resolve(doc, p)).collect();
    // Longest and highest first: children before parents never matters for correctness
    // (removing a parent first makes the child path vanish), but descending index order
    // within one array does.
    resolved.sort_by(|a, b| cmp_desc(a, b));
    resolved.dedup();
    for p in resolved {
        remove_resolved(doc, &p);
    }
}

/// `path` with negative indexes resolved against `doc`; `None` when it does not exist there.
pub(crate) fn resolve(doc: &Value, path: &Path) -> Option<Vec<Seg>> {
    let mut cur = doc;
    let mut out = Vec::with_capacity(path.len());
    for seg in path {
        match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => {
                cur = m.get(k)?;
                out.push(Seg::Key(k.clone()));
            }
            (Seg::Index(i), Value::Array(a)) => {
                let i = resolve_index(*i, a.len())?;
                cur = a.get(i)?;
                out.push(Seg::Index(isize::try_from(i).ok()?));
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The path an RFC 6901 pointer designates in `doc` (each segment an object key or an
/// array index as the document has it there); `None` when nothing is there.
pub(crate) fn resolve_pointer(doc: &Value, segments: &[String]) -> Option<Path> {
    let mut cur = doc;
    let mut out = Vec::with_capacity(segments.len());
    for seg in segments {
        match cur {
            Value::Object(m) => {
                cur = m.get(seg)?;
                out.push(Seg::Key(seg.clone()));
            }
            Value::Array(a) => {
                let i = array_index(seg)?;
                cur = a.get(i)?;
                out.push(Seg::Index(isize::try_from(i).ok()?));
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The value at a resolved path.
pub(crate) fn get<'a>(doc: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut cur = doc;
    for seg in path {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get(k)?,
            (Seg::Index(i), Value::Array(a)) => a.get(usize::try_from(*i).ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Set the value at a resolved path, creating missing object members (and a missing
/// container as an object, or an array when the next step is index 0); an index may be
/// at most the array's length (then the value is appended). Returns whether it was set.
pub(crate) fn set(doc: &mut Value, path: &[Seg], value: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        *doc = value;
        return true;
    };
    let mut cur = doc;
    for (depth, seg) in parents.iter().enumerate() {
        let next_is_index = matches!(path.get(depth + 1), Some(Seg::Index(_)));
        let Some(next) = child(cur, seg, next_is_index) else {
            return false;
        };
        cur = next;
    }
    let fresh = if matches!(last, Seg::Index(_)) {
        Value::Array(vec![])
    } else {
        Value::Object(Default::default())
    };
    if cur.is_null() {
        *cur = fresh;
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(m)) => {
            m.insert(k.clone(), value);
            true
        }
        (Seg::Index(i), Value::Array(a)) => match usize::try_from(*i) {
            Ok(i) if i < a.len() => {
                a[i] = value;
                true
            }
            Ok(i) if i == a.len() => {
                a.push(value);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// Step into `seg` of `cur` for [`set`], creating what is missing.
fn child<'a>(cur: &'a mut Value, seg: &Seg, next_is_index: bool) -> Option<&'a mut Value> {
    let empty = || {
        if next_is_index {
            Value::Array(vec![])
        } else {
            Value::Object(Default::default())
        }
    };
    match seg {
        Seg::Key(k) => {
            if cur.is_null() {
                *cur = Value::Object(Default::default());
            }
            let m = cur.as_object_mut()?;
            let v = m.entry(k.clone()).or_insert(Value::Null);
            if v.is_null() {
                *v = empty();
            }
            Some(v)
        }
        Seg::Index(i) => {
            let a = cur.as_array_mut()?;
            let i = usize::try_from(*i).ok()?;
            if i == a.len() {
                a.push(empty());
            }
            a.get_mut(i)
        }
    }
}

fn cmp_desc(a: &[Seg], b: &[Seg]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Seg::Index(i), Seg::Index(j)) => j.cmp(i),
            (Seg::Key(k), Seg::Key(l)) => k.cmp(l),
            (Seg::Key(_), Seg::Index(_)) => Ordering::Less,
            (Seg::Index(_), Seg::Key(_)) => Ordering::Greater,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    b.len().cmp(&a.len())
}

fn remove_resolved(doc: &mut Value, path: &[Seg]) {
    let Some((last, parents)) = path.split_last() else {
        *doc = Value::Null;
        return;
    };
    let mut cur = doc;
    for seg in parents {
        let next = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get_mut(k),
            (Seg::Index(i), Value::Array(a)) => usize::try_from(*i).ok().and_then(|i| a.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(m)) => {
            m.shift_remove(k);
        }
        (Seg::Index(i), Value::Array(a)) => {
            if let Some(i) = usize::try_from(*i).ok().filter(|i| *i < a.len()) {
                a.remove(i);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers() {
        assert_eq!(
            parse_pointer("/a~1b/c~0d").expect("valid"),
            vec!["a/b", "c~d"]
        );
        assert!(parse_pointer("spec/replicas").is_err());
        assert!(parse_pointer("/a~2").is_err());
        let mut d = json!({"spec": {"replicas": 3, "x": [1, 2, 3]}});
        remove_pointer(&mut d, &parse_pointer("/spec/replicas").expect("valid"));
        remove_pointer(&mut d, &parse_pointer("/spec/x/1").expect("valid"));
        remove_pointer(
            &mut d,
            &parse_pointer("/spec/missing/deeper").expect("valid"),
        );
        assert_eq!(d, json!({"spec": {"x": [1, 3]}}));
    }

    #[test]
    fn get_and_set() {
        let live = json!({"spec": {"replicas": 5, "list": [{"a": 1}]}});
        let p = resolve_pointer(&live, &parse_pointer("/spec/list/0/a").expect("valid"))
            .expect("present");
        assert_eq!(get(&live, &p), Some(&json!(1)));
        assert!(resolve_pointer(&live, &parse_pointer("/spec/nope").expect("valid")).is_none());
        let mut d = json!({"kind": "X"});
        assert!(set(&mut d, &p, json!(2)));
        assert_eq!(d, json!({"kind": "X", "spec": {"list": [{"a": 2}]}}));
        let beyond = vec![
            Seg::Key("spec".into()),
            Seg::Key("list".into()),
            Seg::Index(5),
        ];
        assert!(!set(&mut d, &beyond, json!(0)));
    }

    #[test]
    fn several_array_paths() {
        let mut d = json!({"a": [0, 1, 2, 3]});
        let p = |i| vec![Seg::Key("a".into()), Seg::Index(i)];
        remove_paths(&mut d, &[p(0), p(1), p(-1)]);
        assert_eq!(d, json!({"a": [2]}));
    }
}
