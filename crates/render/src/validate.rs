//! Validation of Argo CD source options before they reach a tool. Values never travel
//! through a shell, and those written into a kustomization are JSON-quoted, but an option
//! that cannot be a valid Kubernetes value (an image `--help`, a label key `-x`, a value
//! with a newline) is refused with a clear error rather than passed on to fail obscurely
//! or, for a tool taking argv, be read as a flag.

use crate::RenderError;
use serde_json::{json, Map, Value};

fn bad(option: &str, value: &str, reason: impl Into<String>) -> RenderError {
    RenderError::InvalidOption {
        option: option.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// A DNS-1123 label (namespaces, Helm release names): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
pub(crate) fn dns_label(option: &str, v: &str) -> Result<(), RenderError> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !v.starts_with('-')
        && !v.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(bad(
            option,
            v,
            "must be lowercase letters, digits and '-', start and end alphanumeric, at most 63 characters",
        ))
    }
}

/// A namePrefix (`prefix == true`) or nameSuffix: lowercase letters, digits, `-` and `.`;
/// a prefix must start alphanumeric and a suffix end alphanumeric, so the resulting
/// names stay valid.
pub(crate) fn name_affix(option: &str, v: &str, prefix: bool) -> Result<(), RenderError> {
    if v.len() > 200 {
        return Err(bad(option, v, "longer than 200 characters"));
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Err(bad(
            option,
            v,
            "may contain only lowercase letters, digits, '-' and '.'",
        ));
    }
    let edge = if prefix {
        v.chars().next()
    } else {
        v.chars().last()
    };
    if !edge.is_some_and(is_alnum) {
        return Err(bad(
            option,
            v,
            if prefix {
                "must start with a letter or digit"
            } else {
                "must end with a letter or digit"
            },
        ));
    }
    Ok(())
}

/// The name part of a label or annotation key.
fn key_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 63
        && v.chars()
            .all(|c| is_alnum(c) || c == '-' || c == '_' || c == '.')
        && v.chars().next().is_some_and(is_alnum)
        && v.chars().last().is_some_and(is_alnum)
}

/// A DNS-1123 subdomain (label and annotation key prefixes).
fn dns_subdomain(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 253
        && v.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// A label or annotation key: `[prefix/]name`.
pub(crate) fn qualified_name(option: &str, v: &str) -> Result<(), RenderError> {
    let ok = match v.split_once('/') {
        Some((prefix, name)) => dns_subdomain(prefix) && key_name(name),
        None => key_name(v),
    };
    if ok {
        Ok(())
    } else {
        Err(bad(
            option,
            v,
            "not a valid Kubernetes key: [prefix/]name, the name at most 63 characters of letters, digits, '-', '_' and '.', starting and ending alphanumeric",
        ))
    }
}

pub(crate) fn label_value(option: &str, v: &str) -> Result<(), RenderError> {
    if v.is_empty() || key_name(v) {
        Ok(())
    } else {
        Err(bad(
            option,
            v,
            "not a valid label value: at most 63 characters of letters, digits, '-', '_' and '.', starting and ending alphanumeric",
        ))
    }
}

pub(crate) fn annotation_value(option: &str, v: &str) -> Result<(), RenderError> {
    if v.contains('\0') {
        return Err(bad(option, v, "contains a NUL byte"));
    }
    Ok(())
}

/// An image reference: registry host (with port), path, tag and digest characters only.
fn image_ref_ok(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 512
        && v.chars().next().is_some_and(is_alnum)
        && v.chars()
            .all(|c| is_alnum(c) || matches!(c, '.' | '_' | '-' | '/' | ':' | '@' | '+'))
}

/// Split `repo[:tag][@digest]` (a `:` before the last `/` is a registry port).
fn split_ref(r: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match r.split_once('@') {
        Some((a, d)) => (a, Some(d)),
        None => (r, None),
    };
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..]), digest),
        None => (rest, None, digest),
    }
}

/// An Argo CD kustomize image override, `[oldName=]newName[:tag][@digest]` (what
/// `kustomize edit set image` accepts), as a kustomization `images:` entry.
pub(crate) fn image(v: &str) -> Result<Value, RenderError> {
    const OPT: &str = "source.kustomize.images entry";
    let (old, new) = match v.split_once('=') {
        Some((o, n)) => (Some(o), n),
        None => (None, v),
    };
    if old.is_some_and(|o| !image_ref_ok(o)) || !image_ref_ok(new) {
        return Err(bad(
            OPT,
            v,
            "expected [oldName=]name[:tag][@digest] made of letters, digits and . _ - / : @ +, starting with a letter or digit",
        ));
    }
    let (name, tag, digest) = split_ref(new);
    if name.is_empty() || tag == Some("") || digest == Some("") {
        return Err(bad(OPT, v, "empty image name, tag or digest"));
    }
    let mut m = Map::new();
    match old {
        Some(old) => {
            let (old_name, _, _) = split_ref(old);
            m.insert("name".into(), json!(old_name));
            m.insert("newName".into(), json!(name));
        }
        None => {
            m.insert("name".into(), json!(name));
        }
    }
    if let Some(t) = tag {
        m.insert("newTag".into(), json!(t));
    }
    if let Some(d) = digest {
        m.insert("digest".into(), json!(d));
    }
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images() {
        assert_eq!(
            image("nginx:1.25").expect("ok"),
            json!({"name": "nginx", "newTag": "1.25"})
        );
        assert_eq!(
            image("nginx=registry:5000/team/nginx:2").expect("ok"),
            json!({"name": "nginx", "newName": "registry:5000/team/nginx", "newTag": "2"})
        );
        assert_eq!(
            image("app@sha256:abc").expect("ok"),
            json!({"name": "app", "digest": "sha256:abc"})
        );
        for bad in ["--help", "", "nginx:1\n-x", "a b", "nginx:", "=x", "x=-y"] {
            assert!(image(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_and_affixes() {
        assert!(qualified_name("k", "app.kubernetes.io/part-of").is_ok());
        assert!(qualified_name("k", "team").is_ok());
        assert!(qualified_name("k", "-team").is_err());
        assert!(qualified_name("k", "a/b/c").is_err());
        assert!(label_value("v", "").is_ok());
        assert!(label_value("v", "x\ny").is_err());
        assert!(name_affix("p", "dev-", true).is_ok());
        assert!(name_affix("p", "-dev", true).is_err());
        assert!(name_affix("s", "-dev", false).is_ok());
        assert!(dns_label("n", "ml-serving").is_ok());
        assert!(dns_label("n", "--all").is_err());
    }
}
