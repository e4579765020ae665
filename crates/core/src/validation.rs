//! Object name, label and annotation validation with Kubernetes' rules and wording.
//!
//! Mooring's embedded API server must accept exactly what a real cluster accepts and reject
//! the rest, otherwise manifests that "work locally" would fail against a production cluster
//! (or the reverse). Clients such as `kubectl` and Argo CD also surface these messages
//! verbatim, so the texts mirror `k8s.io/apimachinery/pkg/util/validation` closely, including
//! its quirks (for instance the doubled space between examples).
//!
//! There is no regex crate in the dependency tree, so every pattern is checked by a small
//! hand-written character loop; the regex each loop implements is quoted in the message.
//!
//! Two layers are exposed:
//! * `is_*` functions return the raw Kubernetes messages (`Vec<String>`, empty = valid), which
//!   is what other validators compose;
//! * `validate_*` functions return complete field errors such as
//!   `metadata.labels: Invalid value: "Bad Value!": a valid label must be ...`, ready to be put
//!   into a `Status` of reason `Invalid`.

use serde_json::{Map, Value};

/// Maximum length of a DNS-1123 / DNS-1035 label (and of a qualified name's name part).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Maximum length of a DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Maximum length of the name part of a qualified name.
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
/// Maximum length of a label value.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// Maximum total size (keys plus values, in bytes) of an object's annotations: 256 KiB.
pub const TOTAL_ANNOTATION_SIZE_LIMIT_BYTES: usize = 256 * 1024;
/// Number of random characters Kubernetes appends to `metadata.generateName`.
pub const GENERATED_NAME_RANDOM_LENGTH: usize = 5;
/// Longest `generateName` prefix kept by the name generator (63 - 5); longer prefixes are
/// truncated before the random suffix is appended.
pub const GENERATED_NAME_MAX_PREFIX_LENGTH: usize =
    DNS1123_LABEL_MAX_LENGTH - GENERATED_NAME_RANDOM_LENGTH;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR_MSG: &str = "a lowercase RFC 1123 label must consist of lower case \
     alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower \
     case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
     character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric \
     characters or '-', start with an alphabetic character, and end with an alphanumeric \
     character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
     and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of \
     alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
     character";

/// `must be no more than N characters`, as Kubernetes' `MaxLenError`.
fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// Kubernetes' `RegexError`: message, examples and the regex, e.g.
/// `... (e.g. 'my-name',  or '123-abc', regex used for validation is '...')`.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(fmt);
    out.push_str("')");
    out
}

/// Quotes a string the way Go's `%q` does for the common cases, so that field errors print
/// bad values exactly like Kubernetes (`"Bad Value!"`).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `field.Invalid` error rendered like Kubernetes: `path: Invalid value: "v": detail`.
pub fn invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {}: {detail}", go_quote(value))
}

/// Renders a list of field errors like Kubernetes' aggregate error: a single error as is,
/// several as `[e1, e2]`.
pub fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

// The DNS-1123 patterns have one home, shared with RBAC's name checks.
use crate::name::{matches_dns1123_label, matches_dns1123_subdomain};

/// `[a-z]([-a-z0-9]*[a-z0-9])?`
fn matches_dns1035_label(s: &str) -> bool {
    matches_dns1123_label(s) && s.as_bytes().first().is_some_and(|c| c.is_ascii_lowercase())
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn matches_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
        }
        _ => false,
    }
}

/// Checks a DNS-1123 label (at most 63 characters, `[a-z0-9]([-a-z0-9]*[a-z0-9])?`), as used
/// for Namespace names. Returns Kubernetes' messages; empty means valid.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            // A valid subdomain but not a label: the only difference is the dots.
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Checks a DNS-1123 subdomain (at most 253 characters, dot-separated labels), the default
/// rule for object names. Returns Kubernetes' messages; empty means valid.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Checks a DNS-1035 label (at most 63 characters, must start with a letter), as used for
/// Service names. Returns Kubernetes' messages; empty means valid.
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1035_label(value) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Checks a qualified name, the syntax of label and annotation keys: an optional DNS-1123
/// subdomain prefix and `/`, then a name of at most 63 characters matching
/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`. Returns Kubernetes' messages; empty = valid.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. \
                 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Checks a label value: empty, or at most 63 characters matching the qualified-name pattern.
/// Returns Kubernetes' messages; empty means valid.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !matches_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Checks a path segment name (RBAC objects): may not be `.` or `..`, may not contain `/` or
/// `%`. Returns Kubernetes' messages; empty means valid.
pub fn is_valid_path_segment_name(value: &str) -> Vec<String> {
    if value == "." || value == ".." {
        return vec![format!("may not be '{value}'")];
    }
    is_valid_path_segment_prefix(value)
}

/// The part of the path segment rule that also applies to a `generateName` prefix.
fn is_valid_path_segment_prefix(value: &str) -> Vec<String> {
    ["/", "%"]
        .iter()
        .filter(|illegal| value.contains(*illegal))
        .map(|illegal| format!("may not contain '{illegal}'"))
        .collect()
}

/// Renders a JSON value that should have been a string, for error messages.
fn describe_non_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(_) => "bool".to_string(),
        Value::Number(_) => "number".to_string(),
        Value::Array(_) => "array".to_string(),
        Value::Object(_) => "object".to_string(),
        Value::String(_) => "string".to_string(),
    }
}

/// Validates `metadata.labels`: keys must be qualified names, values valid label values.
/// Returns one field error per problem, in map order; empty means valid.
pub fn validate_labels(labels: &Map<String, Value>) -> Vec<String> {
    validate_labels_at(labels, "metadata.labels")
}

/// [`validate_labels`] for labels found at another field path (for example
/// `spec.template.metadata.labels`).
pub fn validate_labels_at(labels: &Map<String, Value>, path: &str) -> Vec<String> {
    let mut errs = Vec::new();
    for (key, value) in labels {
        for msg in is_qualified_name(key) {
            errs.push(invalid(path, key, &msg));
        }
        match value {
            Value::String(v) => {
                for msg in is_valid_label_value(v) {
                    errs.push(invalid(path, v, &msg));
                }
            }
            other => errs.push(invalid(
                &format!("{path}[{key}]"),
                &describe_non_string(other),
                "label values must be strings",
            )),
        }
    }
    errs
}

/// Validates `metadata.annotations`: keys must be qualified names (compared case-insensitively,
/// as Kubernetes does) and keys plus values may total at most 256 KiB.
pub fn validate_annotations(annotations: &Map<String, Value>) -> Vec<String> {
    validate_annotations_at(annotations, "metadata.annotations")
}

/// [`validate_annotations`] for annotations found at another field path.
pub fn validate_annotations_at(annotations: &Map<String, Value>, path: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (key, value) in annotations {
        for msg in is_qualified_name(&key.to_lowercase()) {
            errs.push(invalid(path, key, &msg));
        }
        total += key.len();
        match value {
            Value::String(v) => total += v.len(),
            other => errs.push(invalid(
                &format!("{path}[{key}]"),
                &describe_non_string(other),
                "annotation values must be strings",
            )),
        }
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES {
        errs.push(format!(
            "{path}: Too long: may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT_BYTES} bytes"
        ));
    }
    errs
}

/// Which syntax an object's `metadata.name` must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (≤ 253): the default for most kinds and for custom resources.
    Subdomain,
    /// DNS-1123 label (≤ 63): Namespaces.
    Label,
    /// DNS-1035 label (≤ 63, starts with a letter): Services.
    Dns1035Label,
    /// Any string that is a valid URL path segment: RBAC roles and bindings (names such as
    /// `system:controller:foo` are legal there).
    PathSegment,
}

impl NameRule {
    /// Kubernetes' messages for `name` under this rule; empty means valid.
    pub fn check(self, name: &str) -> Vec<String> {
        match self {
            NameRule::Subdomain => is_dns1123_subdomain(name),
            NameRule::Label => is_dns1123_label(name),
            NameRule::Dns1035Label => is_dns1035_label(name),
            NameRule::PathSegment => is_valid_path_segment_name(name),
        }
    }

    /// Kubernetes' messages for a `generateName` prefix under this rule; empty means valid.
    ///
    /// As in Kubernetes, a trailing `-` is allowed because random characters follow it (it
    /// is masked as an alphanumeric character before checking), and for path segments only
    /// the "may not contain" part applies.
    pub fn check_prefix(self, prefix: &str) -> Vec<String> {
        match self {
            NameRule::PathSegment => is_valid_path_segment_prefix(prefix),
            rule => rule.check(&mask_trailing_dash(prefix)),
        }
    }
}

/// Replaces a final `-` with `a` when the prefix is longer than one character, so that the
/// "must end with an alphanumeric character" rule does not reject `generateName: web-`.
fn mask_trailing_dash(prefix: &str) -> String {
    match prefix.strip_suffix('-') {
        Some(rest) if prefix.len() > 1 => format!("{rest}a"),
        _ => prefix.to_string(),
    }
}

/// The name rule Kubernetes applies to objects of `kind` (the `kind` field, e.g. `Service`).
/// Unknown kinds, including custom resources, use DNS-1123 subdomains.
pub fn name_rule_for(kind: &str) -> NameRule {
    match kind {
        "Namespace" => NameRule::Label,
        "Service" => NameRule::Dns1035Label,
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

/// Validates `metadata.name` for an object of `kind`. The error is a Kubernetes field error
/// (`metadata.name: Invalid value: "Foo": ...`), several aggregated as `[e1, e2]`.
pub fn validate_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("metadata.name: Required value: name or generateName is required".to_string());
    }
    let errs: Vec<String> = name_rule_for(kind)
        .check(name)
        .iter()
        .map(|msg| invalid("metadata.name", name, msg))
        .collect();
    if errs.is_empty() {
        Ok(())
    } else {
        Err(aggregate(&errs))
    }
}

/// Validates a `metadata.generateName` prefix for an object of `kind`: accepted when the prefix
/// followed by random alphanumeric characters can form a valid name (Kubernetes' rule). An
/// empty prefix means "no generateName" and yields the "name or generateName is required"
/// error; call this only when the client set a prefix and no name.
pub fn validate_generate_name_prefix(kind: &str, prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("metadata.name: Required value: name or generateName is required".to_string());
    }
    let errs: Vec<String> = name_rule_for(kind)
        .check_prefix(prefix)
        .iter()
        .map(|msg| invalid("metadata.generateName", prefix, msg))
        .collect();
    if errs.is_empty() {
        Ok(())
    } else {
        Err(aggregate(&errs))
    }
}

/// Validates the final name produced from a `generateName` prefix (the caller truncates the
/// prefix to [`GENERATED_NAME_MAX_PREFIX_LENGTH`] and appends
/// [`GENERATED_NAME_RANDOM_LENGTH`] random characters). Same rules as [`validate_name`].
pub fn validate_generated_name(kind: &str, generated: &str) -> Result<(), String> {
    validate_name(kind, generated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn dns1123_label() {
        assert!(is_dns1123_label("a").is_empty());
        assert!(is_dns1123_label("my-name").is_empty());
        assert!(is_dns1123_label("123-abc").is_empty());
        assert!(is_dns1123_label(&"a".repeat(63)).is_empty());
        assert_eq!(
            is_dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert_eq!(
            is_dns1123_label("Foo"),
            vec![
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters \
                 or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  \
                 or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert_eq!(is_dns1123_label("-a").len(), 1);
        assert_eq!(is_dns1123_label("a-").len(), 1);
        assert_eq!(is_dns1123_label("").len(), 1);
        assert_eq!(is_dns1123_label("a_b").len(), 1);
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
        assert_eq!(is_dns1123_label("é").len(), 1);
    }

    #[test]
    fn dns1123_subdomain() {
        assert!(is_dns1123_subdomain("example.com").is_empty());
        assert!(is_dns1123_subdomain("a").is_empty());
        assert!(is_dns1123_subdomain("a-b.c-d.0").is_empty());
        let long = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(long.len(), 253);
        assert!(is_dns1123_subdomain(&long).is_empty());
        let too_long = format!("{long}e");
        assert_eq!(
            is_dns1123_subdomain(&too_long),
            vec!["must be no more than 253 characters"]
        );
        for bad in [
            "",
            "Example.com",
            "-a",
            "a-",
            ".a",
            "a.",
            "a..b",
            "a.-b",
            "a_b",
            "a b",
        ] {
            assert_eq!(
                is_dns1123_subdomain(bad),
                vec![
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
                     characters, '-' or '.', and must start and end with an alphanumeric \
                     character (e.g. 'example.com', regex used for validation is \
                     '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                ],
                "{bad:?}"
            );
        }
        // Too long and malformed: both messages, length first.
        assert_eq!(is_dns1123_subdomain(&"A".repeat(300)).len(), 2);
    }

    #[test]
    fn dns1035_label() {
        assert!(is_dns1035_label("my-svc").is_empty());
        assert!(is_dns1035_label("abc-123").is_empty());
        assert!(is_dns1035_label("a").is_empty());
        assert_eq!(
            is_dns1035_label("1abc"),
            vec![
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', \
                 start with an alphabetic character, and end with an alphanumeric character \
                 (e.g. 'my-name',  or 'abc-123', regex used for validation is \
                 '[a-z]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        for bad in ["", "-a", "a-", "A", "a.b", "a_b"] {
            assert_eq!(is_dns1035_label(bad).len(), 1, "{bad:?}");
        }
        assert_eq!(is_dns1035_label(&"a".repeat(64)).len(), 1);
    }

    #[test]
    fn qualified_names() {
        for good in [
            "a",
            "app",
            "MyName",
            "my.name",
            "123-abc",
            "a_b",
            "example.com/key",
            "app.kubernetes.io/name",
            "k8s.io/Some_Key.1",
        ] {
            assert!(is_qualified_name(good).is_empty(), "{good:?}");
        }
        assert!(is_qualified_name(&"a".repeat(63)).is_empty());
        assert_eq!(
            is_qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        assert_eq!(
            is_qualified_name("Bad Key"),
            vec![
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must \
                 start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
                 '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            ]
        );
        assert_eq!(is_qualified_name("-a").len(), 1);
        assert_eq!(is_qualified_name("a-").len(), 1);
        let empty = is_qualified_name("");
        assert_eq!(empty[0], "name part must be non-empty");
        let no_prefix = is_qualified_name("/key");
        assert_eq!(no_prefix, vec!["prefix part must be non-empty"]);
        let bad_prefix = is_qualified_name("Example.com/key");
        assert_eq!(bad_prefix.len(), 1);
        assert!(bad_prefix[0].starts_with("prefix part a lowercase RFC 1123 subdomain"));
        let no_name = is_qualified_name("example.com/");
        assert_eq!(no_name[0], "name part must be non-empty");
        let two_slashes = is_qualified_name("a/b/c");
        assert_eq!(two_slashes.len(), 1);
        assert!(two_slashes[0].starts_with("a qualified name must consist of"));
        assert!(two_slashes[0].ends_with(
            "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ));
    }

    #[test]
    fn label_values() {
        for good in ["", "a", "MyValue", "my_value", "12345", "v1.2-3"] {
            assert!(is_valid_label_value(good).is_empty(), "{good:?}");
        }
        assert!(is_valid_label_value(&"x".repeat(63)).is_empty());
        assert_eq!(
            is_valid_label_value(&"x".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        for bad in ["-a", "a-", "_a", "a b", "a/b", "Bad Value!", "é"] {
            assert_eq!(is_valid_label_value(bad).len(), 1, "{bad:?}");
        }
    }

    #[test]
    fn labels_map() {
        let ok = obj(json!({"app": "web", "app.kubernetes.io/name": "x", "empty": ""}));
        assert!(validate_labels(&ok).is_empty());
        let bad = obj(json!({"app": "Bad Value!", "Bad Key": "ok", "n": 3}));
        let errs = validate_labels(&bad);
        assert_eq!(errs.len(), 3);
        assert_eq!(
            errs[0],
            "metadata.labels: Invalid value: \"Bad Value!\": a valid label must be an empty string \
             or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
             alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for \
             validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert!(errs[1].starts_with("metadata.labels: Invalid value: \"Bad Key\": name part must"));
        assert!(errs[2].starts_with("metadata.labels[n]: Invalid value:"));
        let nested = validate_labels_at(&obj(json!({"-x": "y"})), "spec.template.metadata.labels");
        assert!(nested[0].starts_with("spec.template.metadata.labels: Invalid value: \"-x\""));
    }

    #[test]
    fn annotations_map() {
        // Keys are case-insensitive for annotations, unlike the prefix of label keys.
        let ok = obj(json!({
            "Example.COM/Some-Key": "anything at all, even spaces & symbols!",
            "kubectl.kubernetes.io/last-applied-configuration": "{}"
        }));
        assert!(validate_annotations(&ok).is_empty());
        let bad = obj(json!({"bad key": "v"}));
        let errs = validate_annotations(&bad);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("metadata.annotations: Invalid value: \"bad key\": name part"));

        let mut big = Map::new();
        big.insert(
            "a".to_string(),
            Value::String("x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES - 1)),
        );
        assert!(validate_annotations(&big).is_empty());
        big.insert("b".to_string(), Value::String(String::new()));
        assert_eq!(
            validate_annotations(&big),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
    }

    #[test]
    fn name_rules() {
        assert_eq!(name_rule_for("Namespace"), NameRule::Label);
        assert_eq!(name_rule_for("Service"), NameRule::Dns1035Label);
        for kind in ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"] {
            assert_eq!(name_rule_for(kind), NameRule::PathSegment);
        }
        for kind in [
            "Pod",
            "Deployment",
            "ConfigMap",
            "Secret",
            "Application",
            "MyCustomThing",
        ] {
            assert_eq!(name_rule_for(kind), NameRule::Subdomain);
        }
    }

    #[test]
    fn names_by_kind() {
        assert!(validate_name("Pod", "web-0").is_ok());
        assert!(validate_name("ConfigMap", "kube-root-ca.crt").is_ok());
        assert_eq!(
            validate_name("Pod", "Web"),
            Err(
                "metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain must \
                 consist of lower case alphanumeric characters, '-' or '.', and must start and \
                 end with an alphanumeric character (e.g. 'example.com', regex used for \
                 validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                    .to_string()
            )
        );
        assert!(validate_name("Namespace", "team-a").is_ok());
        assert_eq!(
            validate_name("Namespace", "team.a"),
            Err("metadata.name: Invalid value: \"team.a\": must not contain dots".to_string())
        );
        assert!(validate_name("Service", "api").is_ok());
        assert!(validate_name("Service", "1api").is_err());
        assert!(validate_name("Deployment", "1api").is_ok());
        assert!(validate_name("Service", &"a".repeat(64)).is_err());
        assert!(validate_name("Deployment", &"a".repeat(64)).is_ok());

        assert!(validate_name("ClusterRole", "system:controller:job-controller").is_ok());
        assert!(validate_name("Role", "Has Spaces OK").is_ok());
        assert_eq!(
            validate_name("RoleBinding", ".."),
            Err("metadata.name: Invalid value: \"..\": may not be '..'".to_string())
        );
        assert!(validate_name("RoleBinding", ".").is_err());
        assert_eq!(
            validate_name("ClusterRoleBinding", "a/b%c"),
            Err(
                "[metadata.name: Invalid value: \"a/b%c\": may not contain '/', metadata.name: \
                 Invalid value: \"a/b%c\": may not contain '%']"
                    .to_string()
            )
        );
        assert!(validate_name("Pod", "").is_err());
        assert!(validate_name("Role", "").is_err());
        // Too long and malformed at once: aggregated.
        let err = validate_name("Pod", &"A".repeat(254))
            .err()
            .unwrap_or_default();
        assert!(err.starts_with("[metadata.name: Invalid value:"));
    }

    #[test]
    fn generate_name_prefixes() {
        assert!(validate_generate_name_prefix("Pod", "web-").is_ok());
        assert!(validate_generate_name_prefix("Pod", "web").is_ok());
        assert!(validate_generate_name_prefix("Pod", "web.").is_err());
        assert!(validate_generate_name_prefix("Pod", "Web-").is_err());
        assert!(validate_generate_name_prefix("Pod", "-").is_err());
        assert!(validate_generate_name_prefix("Pod", "-web-").is_err());
        let err = validate_generate_name_prefix("Pod", "Web-")
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("metadata.generateName: Invalid value: \"Web-\":"),
            "{err}"
        );
        assert!(validate_generate_name_prefix("Service", "svc-").is_ok());
        assert!(validate_generate_name_prefix("Service", "1svc-").is_err());
        assert!(validate_generate_name_prefix("Namespace", "ns.a-").is_err());
        assert!(validate_generate_name_prefix("Role", ".").is_ok());
        assert!(validate_generate_name_prefix("Role", "a/").is_err());
        // Empty prefix: nothing to generate from.
        assert_eq!(
            validate_generate_name_prefix("Pod", ""),
            Err("metadata.name: Required value: name or generateName is required".to_string())
        );

        assert!(validate_generated_name("Pod", "web-x7k2p").is_ok());
        assert!(validate_generated_name("Service", "svc-abcde").is_ok());
        assert_eq!(GENERATED_NAME_MAX_PREFIX_LENGTH, 58);
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\x01\"");
        assert_eq!(aggregate(&["x".to_string()]), "x");
        assert_eq!(aggregate(&["x".to_string(), "y".to_string()]), "[x, y]");
    }
}
