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

fn resolve(doc: &Value, path: &Path) -> Option<Vec<Seg>> {
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
    fn several_array_paths() {
        let mut d = json!({"a": [0, 1, 2, 3]});
        let p = |i| vec![Seg::Key("a".into()), Seg::Index(i)];
        remove_paths(&mut d, &[p(0), p(1), p(-1)]);
        assert_eq!(d, json!({"a": [2]}));
    }
}
