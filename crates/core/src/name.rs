//! Kubernetes object names, checked where Mooring parses names out of strings (RBAC
//! objects `PROJECT/NAME`, subjects `proj:PROJECT:ROLE`, API paths): a name with a `/`
//! or `:` would be split differently from what the object is called, so anything that is
//! not a name a Kubernetes API server would accept is refused before it is parsed.

/// Longest DNS-1123 label.
pub const DNS1123_LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain (the default rule for object names).
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` (the pattern only, not the length).
pub fn matches_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alnum(first)
                && is_lower_alnum(last)
                && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// Dot-separated DNS-1123 labels (the pattern only, not the length).
pub fn matches_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns1123_label)
}

/// A name that is not a valid Kubernetes object name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} name {name:?} is not a valid Kubernetes name: use at most 253 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit")]
pub struct InvalidName {
    /// What the name names (`project`, `application`, …).
    pub kind: String,
    pub name: String,
}

/// Check that `name` is a valid object name (a DNS-1123 subdomain), as the API server
/// requires of AppProjects and Applications.
pub fn validate_object_name(kind: &str, name: &str) -> Result<(), InvalidName> {
    if name.len() <= DNS1123_SUBDOMAIN_MAX && matches_dns1123_subdomain(name) {
        Ok(())
    } else {
        Err(InvalidName {
            kind: kind.to_string(),
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        for ok in ["ml-platform", "a", "team-a.prod", "0day"] {
            assert!(validate_object_name("project", ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(254);
        for bad in [
            "", "a/b", "proj:x", "A", "-a", "a-", "a..b", "a\nb", "a b", &long,
        ] {
            let e = validate_object_name("project", bad).expect_err(bad);
            assert!(e.to_string().contains("project name"), "{e}");
        }
    }
}
