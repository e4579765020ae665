//! AppProject role policies, checked line by line before they grant anything.
//!
//! A project role's `policies` are written by whoever may edit the AppProject, and are
//! merged into the REST API's casbin policy. Unchecked, one entry holding a line break
//! (`…allow\ng, proj:team-a:ci, role:admin`), a `g` line, another subject or an object in
//! another project would widen the role beyond its project (issue 12, finding 10). The rule
//! is Argo CD's `validatePolicy`: each entry is exactly one `p` line for
//! `proj:PROJECT:ROLE`, on a project-scoped resource, on an object `PROJECT/…`. A bad entry
//! disables its whole role (fail closed: a refused `deny` line must not leave the role's
//! `allow` lines standing). The REST API enforces it and the controller reports it on the
//! AppProject as a Warning Event; both call [`check_project`] / [`check_role`], so they
//! cannot disagree.

use mooring_core::name::{validate_object_name, InvalidName};

/// Resources a project role's policy may name (Argo CD's `rbac.ProjectScoped`).
pub const PROJECT_SCOPED: &[&str] = &[
    "applications",
    "applicationsets",
    "logs",
    "exec",
    "repositories",
    "clusters",
];

/// Why (part of) an AppProject gives no rights.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectPolicyError {
    #[error("AppProject {0}; its roles give no rights")]
    Name(#[from] InvalidName),
    #[error("AppProject {project:?}: role name {role:?} is invalid: use letters, digits, '-' and '_', starting and ending with a letter or digit; the role gives no rights")]
    RoleName { project: String, role: String },
    #[error("AppProject {project:?} role {role:?} policy line {line} {text:?} is refused: {why}; the role gives no rights until it is fixed")]
    Line {
        project: String,
        role: String,
        /// 1-based index in the role's `policies`.
        line: usize,
        text: String,
        why: String,
    },
}

impl ProjectPolicyError {
    /// Whether this error disables role `name` (a bad project name disables every role).
    pub fn disables(&self, name: &str) -> bool {
        match self {
            ProjectPolicyError::Name(_) => true,
            ProjectPolicyError::RoleName { role, .. } | ProjectPolicyError::Line { role, .. } => {
                role == name
            }
        }
    }
}

/// CSV fields: split on commas outside double quotes (as casbin's CSV reader does, so
/// `"{get,sync}"` is one field), trimmed, quotes removed.
pub fn policy_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().expect("never empty").push(c),
        }
    }
    out.iter().map(|f| f.trim().to_string()).collect()
}

/// Argo CD's role name rule: `[a-zA-Z0-9]([-_a-zA-Z0-9]*[a-zA-Z0-9])?`.
pub fn valid_role_name(name: &str) -> bool {
    let b = name.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        }
        _ => false,
    }
}

/// Every error of project `project`'s roles (`(name, policies)`): its name first (which
/// disables all roles, so nothing else is checked), then each role's first refused entry.
pub fn check_project<'a>(
    project: &str,
    roles: impl IntoIterator<Item = (&'a str, &'a [String])>,
) -> Vec<ProjectPolicyError> {
    if let Err(e) = validate_object_name("project", project) {
        return vec![e.into()];
    }
    roles
        .into_iter()
        .filter_map(|(role, policies)| check_role(project, role, policies).err())
        .collect()
}

/// Check role `role` of project `project`: its name and each of its `policies` entries.
pub fn check_role(
    project: &str,
    role: &str,
    policies: &[String],
) -> Result<(), ProjectPolicyError> {
    if !valid_role_name(role) {
        return Err(ProjectPolicyError::RoleName {
            project: project.to_string(),
            role: role.to_string(),
        });
    }
    for (i, entry) in policies.iter().enumerate() {
        check_entry(project, role, entry).map_err(|why| ProjectPolicyError::Line {
            project: project.to_string(),
            role: role.to_string(),
            line: i + 1,
            text: entry.clone(),
            why,
        })?;
    }
    Ok(())
}

/// Check one `spec.roles[].policies` entry (Argo CD's `validatePolicy`); `Err(why)` when
/// refused.
fn check_entry(project: &str, role: &str, entry: &str) -> Result<(), String> {
    if entry.chars().any(|c| c.is_control()) {
        return Err(
            "it contains a line break or control character: one policy line per entry".into(),
        );
    }
    let f = policy_fields(entry);
    match f[0].as_str() {
        "p" => {}
        "g" => return Err("a `g` line would grant roles; project roles take `groups`".into()),
        other => return Err(format!("policy lines start with `p`, not {other:?}")),
    }
    if f.len() != 5 && f.len() != 6 {
        return Err(format!(
            "it must be `p, proj:{project}:{role}, RESOURCE, ACTION, {project}/OBJECT, allow|deny` ({} fields found)",
            f.len()
        ));
    }
    let subject = format!("proj:{project}:{role}");
    if f[1] != subject {
        return Err(format!("the subject must be {subject:?}, not {:?}", f[1]));
    }
    if !PROJECT_SCOPED.contains(&f[2].as_str()) {
        return Err(format!(
            "the resource must be one of {}, not {:?}",
            PROJECT_SCOPED.join(", "),
            f[2]
        ));
    }
    if f[3].is_empty() {
        return Err("the action is empty".into());
    }
    let inside = f[4]
        .strip_prefix(project)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_alphanumeric() || "*-_./?".contains(c))
        });
    if !inside {
        return Err(format!(
            "the object must be {project}/* or {project}/NAME inside the project, not {:?}",
            f[4]
        ));
    }
    match f.get(5).map(String::as_str) {
        None | Some("allow") | Some("deny") => Ok(()),
        Some(other) => Err(format!("the effect must be allow or deny, not {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_role_is_checked_and_a_bad_project_name_disables_all() {
        let good = lines(&["p, proj:a:ci, applications, get, a/*, allow"]);
        let injected =
            lines(&["p, proj:a:ci, applications, get, a/*, allow\ng, proj:a:ci, role:admin"]);
        let outside = lines(&["p, proj:a:ops, applications, delete, b/*, allow"]);
        let ok = lines(&["p, proj:a:ok, applications, sync, a/web, deny"]);
        assert!(check_project("a", [("ci", good.as_slice())]).is_empty());
        let errors = check_project(
            "a",
            [
                ("ci", injected.as_slice()),
                ("ops", outside.as_slice()),
                ("ok", ok.as_slice()),
            ],
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].disables("ci") && !errors[0].disables("ok"));
        assert!(
            errors[0].to_string().contains("line break"),
            "{}",
            errors[0]
        );
        assert!(errors[1].to_string().contains("b/*"), "{}", errors[1]);
        let errors = check_project("a/b", [("ci", good.as_slice())]);
        assert!(matches!(errors[..], [ProjectPolicyError::Name(_)]));
        assert!(errors[0].disables("anything"));
        assert!(matches!(
            check_role("a", "bad name", &good),
            Err(ProjectPolicyError::RoleName { .. })
        ));
    }
}
