//! Argo CD's RBAC model, evaluated by a small focused evaluator (pure: no I/O).
//!
//! # Why not the `casbin` crate
//!
//! Argo CD stores its policy as casbin CSV and evaluates it with casbin, but the model it
//! uses is fixed and tiny:
//!
//! ```text
//! r = sub, res, act, obj
//! p = sub, res, act, obj, eft
//! g = _, _
//! e = some(where (p.eft == allow)) && !some(where (p.eft == deny))
//! m = g(r.sub, p.sub) && globMatch(r.res, p.res) && globMatch(r.act, p.act) && globMatch(r.obj, p.obj)
//! ```
//!
//! The `casbin` crate brings a script engine (rhai) and an async adapter layer to evaluate
//! arbitrary models; that costs compile time on every build of the server for generality
//! we never use. This module implements exactly the model above (~300 lines, table
//! tested), with `globset` (already in the tree through `render`) for Argo's glob matching
//! (`*` spans `/`, `?`, `[…]`, `{a,b}`), so the policy files of an Argo CD installation
//! mean the same thing here. Argo's optional `policy.matchMode: regex` is refused (fail
//! closed) rather than misread as globs.
//!
//! # The rules, as Argo CD applies them
//!
//! * Lines: `p, SUBJECT, RESOURCE, ACTION, OBJECT, allow|deny` and `g, SUBJECT, ROLE`
//!   (`#` comments). Roles inherit transitively through `g` lines.
//! * Built-in roles `role:readonly` and `role:admin` ([`BUILTIN_POLICY`]), with
//!   `g, admin, role:admin`.
//! * Within one subject, a matching `deny` beats any `allow`.
//! * `policy.default` (the default role) is checked first: if it allows, the request is
//!   allowed.
//! * A user is allowed when their own name, or any of their groups, is allowed — each
//!   evaluated separately, as Argo CD does.
//! * For objects of a project (see [`project_of`]: `PROJECT/NAME` objects of
//!   applications, applicationsets, logs, exec, project-scoped repositories and clusters;
//!   the project itself for `projects`), the project's roles are added for that request
//!   only: `p, proj:PROJECT:ROLE, projects, get, PROJECT, allow` for each role, the `p`
//!   lines of `spec.roles[].policies` and `g, GROUP, proj:PROJECT:ROLE` for each of the
//!   role's `groups`.
//! * **Project role policies are checked line by line**, as Argo CD's `validatePolicy`
//!   checks them when a project is saved (Mooring reads projects from the cluster, so it
//!   checks them when it reads them): each entry is exactly one line `p, proj:PROJECT:ROLE,
//!   RESOURCE, ACTION, PROJECT/OBJECT[, allow|deny]`, with a project-scoped resource and
//!   an object inside the project. An entry with a line break (which would smuggle a `g,
//!   …, role:admin` line into the policy), a `g` line, another subject or an object
//!   outside the project is refused with a [`ProjectPolicyError`] naming the project, the
//!   role and the line, and the **whole role is disabled** (fail closed: a refused `deny`
//!   line must not widen the role). Its tokens and groups get nothing from it, and a
//!   refusal quotes the error. Project and role names are checked too: a project name that
//!   is not a Kubernetes name (`a/b`) or a role name outside Argo CD's
//!   `[a-zA-Z0-9]([-_a-zA-Z0-9]*[a-zA-Z0-9])?` gives the project or role no rights.
//! * Argo CD only tries a user's groups that appear on the left of some `g` line (a
//!   lookup shortcut); here every group is tried, so `p, GROUP, …` lines work without a
//!   `g` line.
//! * A project-role token (`proj:PROJECT:ROLE`) is only ever allowed on its own
//!   project's objects, and only while the role still exists.

use globset::{Glob, GlobMatcher};
use mooring_engine::project::roles::{check_project, policy_fields};
pub use mooring_engine::project::roles::{valid_role_name, ProjectPolicyError, PROJECT_SCOPED};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Argo CD's `assets/builtin-policy.csv`.
pub const BUILTIN_POLICY: &str = "\
p, role:readonly, applications, get, */*, allow
p, role:readonly, applicationsets, get, */*, allow
p, role:readonly, certificates, get, *, allow
p, role:readonly, clusters, get, *, allow
p, role:readonly, repositories, get, *, allow
p, role:readonly, write-repositories, get, *, allow
p, role:readonly, projects, get, *, allow
p, role:readonly, accounts, get, *, allow
p, role:readonly, gpgkeys, get, *, allow
p, role:readonly, logs, get, */*, allow

p, role:admin, applications, create, */*, allow
p, role:admin, applications, update, */*, allow
p, role:admin, applications, update/*, */*, allow
p, role:admin, applications, delete, */*, allow
p, role:admin, applications, delete/*, */*, allow
p, role:admin, applications, sync, */*, allow
p, role:admin, applications, rollback, */*, allow
p, role:admin, applications, override, */*, allow
p, role:admin, applications, action/*, */*, allow
p, role:admin, applicationsets, create, */*, allow
p, role:admin, applicationsets, update, */*, allow
p, role:admin, applicationsets, delete, */*, allow
p, role:admin, certificates, create, *, allow
p, role:admin, certificates, update, *, allow
p, role:admin, certificates, delete, *, allow
p, role:admin, clusters, create, *, allow
p, role:admin, clusters, update, *, allow
p, role:admin, clusters, delete, *, allow
p, role:admin, repositories, create, *, allow
p, role:admin, repositories, update, *, allow
p, role:admin, repositories, delete, *, allow
p, role:admin, write-repositories, create, *, allow
p, role:admin, write-repositories, update, *, allow
p, role:admin, write-repositories, delete, *, allow
p, role:admin, projects, create, *, allow
p, role:admin, projects, update, *, allow
p, role:admin, projects, delete, *, allow
p, role:admin, accounts, update, *, allow
p, role:admin, gpgkeys, create, *, allow
p, role:admin, gpgkeys, delete, *, allow
p, role:admin, exec, create, */*, allow
p, role:admin, exec, debug, */*, allow

g, role:admin, role:readonly
g, admin, role:admin
";

/// Resources Argo CD's RBAC knows.
pub const RESOURCES: &[&str] = &[
    "applications",
    "applicationsets",
    "projects",
    "clusters",
    "repositories",
    "write-repositories",
    "accounts",
    "certificates",
    "gpgkeys",
    "logs",
    "exec",
    "extensions",
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RbacError {
    #[error("policy line {line}: {text:?}: {why}")]
    Line {
        line: usize,
        text: String,
        why: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    glob: GlobMatcher,
}

impl Pattern {
    fn new(text: &str) -> Result<Self, String> {
        let glob = Glob::new(text)
            .map_err(|e| format!("bad glob {text:?}: {e}"))?
            .compile_matcher();
        Ok(Pattern {
            text: text.to_string(),
            glob,
        })
    }

    /// A pattern matching exactly `text` (globs are not interpreted).
    fn literal(text: &str) -> Self {
        let escaped = globset::escape(text);
        Pattern {
            text: text.to_string(),
            glob: Glob::new(&escaped)
                .map(|g| g.compile_matcher())
                .unwrap_or_else(|_| {
                    Glob::new("")
                        .expect("the empty glob compiles")
                        .compile_matcher()
                }),
        }
    }

    fn matches(&self, s: &str) -> bool {
        self.text == s || self.text == "*" || self.glob.is_match(s)
    }
}

#[derive(Debug, Clone)]
struct Rule {
    subject: String,
    resource: Pattern,
    action: Pattern,
    object: Pattern,
    effect: Effect,
}

/// A parsed policy: `p` rules and `g` role bindings.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<Rule>,
    /// subject → roles it holds directly.
    grouping: BTreeMap<String, BTreeSet<String>>,
}

impl Policy {
    /// Parse casbin CSV lines (`p, …` and `g, …`).
    pub fn parse(csv: &str) -> Result<Policy, RbacError> {
        let mut p = Policy::default();
        p.add_csv(csv)?;
        Ok(p)
    }

    /// Argo CD's built-in policy.
    pub fn builtin() -> Policy {
        Policy::parse(BUILTIN_POLICY).expect("the built-in policy parses")
    }

    /// Add casbin CSV lines.
    pub fn add_csv(&mut self, csv: &str) -> Result<(), RbacError> {
        for (i, raw) in csv.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |why: String| RbacError::Line {
                line: i + 1,
                text: line.to_string(),
                why,
            };
            let f = policy_fields(line);
            match f[0].as_str() {
                "p" => {
                    if f.len() != 5 && f.len() != 6 {
                        return Err(err(format!(
                            "a p line has 5 fields after `p` (subject, resource, action, object, effect), found {}",
                            f.len() - 1
                        )));
                    }
                    let effect = match f.get(5).map(String::as_str) {
                        None | Some("allow") => Effect::Allow,
                        Some("deny") => Effect::Deny,
                        Some(other) => {
                            return Err(err(format!("effect must be allow or deny, not {other:?}")))
                        }
                    };
                    if f[1].is_empty() {
                        return Err(err("empty subject".into()));
                    }
                    self.rules.push(Rule {
                        subject: f[1].clone(),
                        resource: Pattern::new(&f[2]).map_err(err)?,
                        action: Pattern::new(&f[3]).map_err(err)?,
                        object: Pattern::new(&f[4]).map_err(err)?,
                        effect,
                    });
                }
                "g" => {
                    if f.len() != 3 || f[1].is_empty() || f[2].is_empty() {
                        return Err(err("a g line is `g, SUBJECT, ROLE`".into()));
                    }
                    self.grouping
                        .entry(f[1].clone())
                        .or_default()
                        .insert(f[2].clone());
                }
                other => return Err(err(format!("lines start with `p` or `g`, not {other:?}"))),
            }
        }
        Ok(())
    }

    /// One casbin `enforce(sub, res, act, obj)`: some allow and no deny.
    pub fn enforce(&self, subject: &str, resource: &str, action: &str, object: &str) -> bool {
        enforce_all(&[self], subject, resource, action, object)
    }
}

/// `enforce` over the union of `policies` (the global policy plus a project's runtime
/// policy), without copying them.
fn enforce_all(
    policies: &[&Policy],
    subject: &str,
    resource: &str,
    action: &str,
    object: &str,
) -> bool {
    // `subject` and every role it holds, transitively.
    let mut roles = BTreeSet::from([subject.to_string()]);
    let mut todo = vec![subject.to_string()];
    while let Some(s) = todo.pop() {
        for p in policies {
            for r in p.grouping.get(&s).into_iter().flatten() {
                if roles.insert(r.clone()) {
                    todo.push(r.clone());
                }
            }
        }
    }
    let mut allowed = false;
    for r in policies.iter().flat_map(|p| p.rules.iter()) {
        if roles.contains(&r.subject)
            && r.resource.matches(resource)
            && r.action.matches(action)
            && r.object.matches(object)
        {
            match r.effect {
                Effect::Deny => return false,
                Effect::Allow => allowed = true,
            }
        }
    }
    allowed
}

/// A role of an AppProject (`spec.roles[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRole {
    pub name: String,
    pub policies: Vec<String>,
    pub groups: Vec<String>,
}

/// The RBAC-relevant part of an AppProject, read from JSON so it works with any typed
/// representation of the project.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub roles: Vec<ProjectRole>,
    /// What was refused while compiling (each disables its role, or the whole project).
    pub errors: Vec<ProjectPolicyError>,
    /// The runtime policy, compiled once.
    compiled: Policy,
}

impl Project {
    /// From an AppProject object (`metadata.name`, `spec.roles`).
    pub fn from_json(v: &Value) -> Project {
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        };
        let mut p = Project {
            compiled: Policy::default(),
            errors: Vec::new(),
            name: v
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            roles: v
                .pointer("/spec/roles")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|r| ProjectRole {
                    name: r
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    policies: strings(r.get("policies")),
                    groups: strings(r.get("groups")),
                })
                .collect(),
        };
        let (compiled, errors) = p.compile();
        p.compiled = compiled;
        p.errors = errors;
        p
    }

    /// The role `name`, when it exists and is not disabled by an error.
    pub fn role(&self, name: &str) -> Option<&ProjectRole> {
        self.roles
            .iter()
            .find(|r| r.name == name)
            .filter(|_| self.role_error(name).is_none())
    }

    /// The first error that disables role `name` (or the whole project), if any.
    pub fn role_error(&self, name: &str) -> Option<&ProjectPolicyError> {
        self.errors.iter().find(|e| e.disables(name))
    }

    /// The project's runtime policy: each valid role's `p` lines, plus `g, GROUP,
    /// proj:PROJECT:ROLE` for each of its groups (see the module docs for what is
    /// refused).
    pub fn policy(&self) -> &Policy {
        &self.compiled
    }

    fn compile(&self) -> (Policy, Vec<ProjectPolicyError>) {
        let mut out = Policy::default();
        let mut errors = check_project(
            &self.name,
            self.roles
                .iter()
                .map(|r| (r.name.as_str(), r.policies.as_slice())),
        );
        'roles: for role in &self.roles {
            if errors.iter().any(|e| e.disables(&role.name)) {
                continue;
            }
            let subject = format!("proj:{}:{}", self.name, role.name);
            let mut lines = Policy::default();
            for (i, line) in role.policies.iter().enumerate() {
                // Checked above: exactly one `p` line, so this parses one rule.
                if let Err(e) = lines.add_csv(line) {
                    errors.push(ProjectPolicyError::Line {
                        project: self.name.clone(),
                        role: role.name.clone(),
                        line: i + 1,
                        text: line.clone(),
                        why: e.to_string(),
                    });
                    continue 'roles;
                }
            }
            // Every role may read its own project (Argo CD's ProjectPoliciesString).
            out.rules.push(Rule {
                subject: subject.clone(),
                resource: Pattern::literal("projects"),
                action: Pattern::literal("get"),
                object: Pattern::literal(&self.name),
                effect: Effect::Allow,
            });
            out.rules.extend(lines.rules);
            for g in &role.groups {
                out.grouping
                    .entry(g.clone())
                    .or_default()
                    .insert(subject.clone());
            }
        }
        (out, errors)
    }
}

/// Who is asking: a local account (with its groups) or a project role token.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub name: String,
    pub groups: Vec<String>,
}

impl Subject {
    pub fn new(name: &str, groups: &[&str]) -> Subject {
        Subject {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// `proj:PROJECT:ROLE` → (PROJECT, ROLE), when both are valid names.
    pub fn project_role(&self) -> Option<(&str, &str)> {
        let rest = self.name.strip_prefix("proj:")?;
        let (project, role) = rest.split_once(':')?;
        (mooring_core::name::validate_object_name("project", project).is_ok()
            && valid_role_name(role))
        .then_some((project, role))
    }
}

/// The project whose roles apply to a request, as Argo CD's `getProjectFromRequest`
/// finds it: the first segment of `PROJECT/…` objects of applications, applicationsets,
/// logs, exec and project-scoped repositories and clusters; the object itself for
/// `projects`.
///
/// A first segment that is not a Kubernetes name names no project.
pub fn project_of<'a>(resource: &str, object: &'a str) -> Option<&'a str> {
    let project = match resource {
        r if PROJECT_SCOPED.contains(&r) => object.split_once('/').map(|(p, _)| p),
        "projects" => Some(object),
        _ => None,
    }?;
    mooring_core::name::validate_object_name("project", project)
        .is_ok()
        .then_some(project)
}

/// The settings of `argocd-rbac-cm` (`mooring-rbac-cm`): built-in + `policy.csv`
/// (+ `policy.*.csv` overlays), `policy.default`, `scopes`.
#[derive(Debug, Clone)]
pub struct Rbac {
    pub policy: Policy,
    pub default_role: Option<String>,
    /// Claims that carry groups (Argo's `scopes`, default `[groups]`); kept for
    /// compatibility of the ConfigMap: local accounts' groups come from `mooring-cm`.
    pub scopes: Vec<String>,
}

impl Default for Rbac {
    fn default() -> Self {
        Rbac {
            policy: Policy::builtin(),
            default_role: None,
            scopes: vec!["groups".into()],
        }
    }
}

impl Rbac {
    /// From the data of the RBAC ConfigMap.
    pub fn from_configmap(data: &BTreeMap<String, String>) -> Result<Rbac, RbacError> {
        let mut policy = Policy::builtin();
        if let Some(csv) = data.get("policy.csv") {
            policy.add_csv(csv)?;
        }
        for (k, v) in data {
            if k.starts_with("policy.") && k.ends_with(".csv") && k != "policy.csv" {
                policy.add_csv(v)?;
            }
        }
        if let Some(mode) = data.get("policy.matchMode").map(|m| m.trim()) {
            if mode != "glob" && !mode.is_empty() {
                return Err(RbacError::Line {
                    line: 0,
                    text: format!("policy.matchMode: {mode}"),
                    why: "only glob matching is supported; rewrite the policy with globs".into(),
                });
            }
        }
        let default_role = data
            .get("policy.default")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let scopes = data
            .get("scopes")
            .map(|s| {
                s.trim_matches(|c| c == '[' || c == ']' || char::is_whitespace(c))
                    .split(',')
                    .map(|x| x.trim().trim_matches('\'').trim_matches('"').to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_else(|| vec!["groups".into()]);
        Ok(Rbac {
            policy,
            default_role,
            scopes,
        })
    }

    /// May `subject` perform `action` on `resource` `object`? `project` is the AppProject
    /// named by the object (see [`project_of`]), when it exists.
    pub fn allowed(
        &self,
        subject: &Subject,
        resource: &str,
        action: &str,
        object: &str,
        project: Option<&Project>,
    ) -> bool {
        if let Some(d) = &self.default_role {
            if self.policy.enforce(d, resource, action, object) {
                return true;
            }
        }
        let wanted = project_of(resource, object);
        if subject.name.starts_with("proj:") && subject.project_role().is_none() {
            // A project-role subject whose names do not parse has no rights.
            return false;
        }
        if let Some((proj, role)) = subject.project_role() {
            // A project token: only its own project, only while the role exists.
            return match (wanted, project) {
                (Some(w), Some(p)) if w == proj && p.name == proj => {
                    p.role(role).is_some()
                        && enforce_all(
                            &[&self.policy, p.policy()],
                            &subject.name,
                            resource,
                            action,
                            object,
                        )
                }
                (Some(_), _) => false,
                (None, _) => self.policy.enforce(&subject.name, resource, action, object),
            };
        }
        let project = project.filter(|p| Some(p.name.as_str()) == wanted);
        let policies: Vec<&Policy> = std::iter::once(&self.policy)
            .chain(project.map(Project::policy))
            .collect();
        std::iter::once(&subject.name)
            .chain(subject.groups.iter())
            .any(|s| enforce_all(&policies, s, resource, action, object))
    }

    /// Like [`Rbac::allowed`], with Argo CD's message on refusal.
    pub fn check(
        &self,
        subject: &Subject,
        resource: &str,
        action: &str,
        object: &str,
        project: Option<&Project>,
    ) -> Result<(), Denied> {
        if self.allowed(subject, resource, action, object, project) {
            return Ok(());
        }
        // Say why when the caller's project role is disabled by a refused policy.
        let disabled = project.and_then(|p| match subject.project_role() {
            Some((proj, role)) if proj == p.name => p.role_error(role),
            Some(_) => None,
            None => p
                .roles
                .iter()
                .filter(|r| r.groups.iter().any(|g| subject.groups.contains(g)))
                .find_map(|r| p.role_error(&r.name)),
        });
        Err(Denied {
            resource: resource.into(),
            action: action.into(),
            object: object.into(),
            subject: subject.name.clone(),
            because: disabled.map(|e| format!(" ({e})")).unwrap_or_default(),
        })
    }
}

/// A refused request, worded as Argo CD words it (plus, when the caller's project role is
/// disabled, the [`ProjectPolicyError`] that disabled it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("permission denied: {resource}, {action}, {object}, sub: {subject}{because}")]
pub struct Denied {
    pub resource: String,
    pub action: String,
    pub object: String,
    pub subject: String,
    /// ` (why)` or empty.
    pub because: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ml_platform() -> Project {
        Project::from_json(&json!({
            "metadata": {"name": "ml-platform"},
            "spec": {"roles": [
                {"name": "ml-engineers", "groups": ["ml-engineers"], "policies": [
                    "p, proj:ml-platform:ml-engineers, applications, get, ml-platform/*, allow",
                    "p, proj:ml-platform:ml-engineers, applications, sync, ml-platform/*, allow",
                    "p, proj:ml-platform:ml-engineers, applications, sync, ml-platform/frozen-*, deny",
                ]},
                // Outside the project or for another subject: refused, the role disabled.
                {"name": "escape", "groups": ["ml-engineers"], "policies": [
                    "p, proj:ml-platform:escape, applications, delete, other/*, allow",
                ]},
                {"name": "impostor", "groups": ["ml-engineers"], "policies": [
                    "p, role:admin, applications, delete, ml-platform/*, allow",
                ]},
                {"name": "data-scientists", "groups": ["data-science"], "policies": [
                    "p, proj:ml-platform:data-scientists, applications, get, ml-platform/*, allow",
                ]},
            ]}
        }))
    }

    fn other() -> Project {
        Project::from_json(&json!({"metadata": {"name": "other"}, "spec": {"roles": [
            {"name": "ml-engineers", "policies": ["p, proj:other:ml-engineers, applications, *, other/*, allow"]}
        ]}}))
    }

    fn rbac(csv: &str, default: Option<&str>) -> Rbac {
        let mut data = BTreeMap::new();
        data.insert("policy.csv".to_string(), csv.to_string());
        if let Some(d) = default {
            data.insert("policy.default".to_string(), d.to_string());
        }
        Rbac::from_configmap(&data).expect("policy parses")
    }

    const CSV: &str = r#"
# platform team
p, role:deployer, applications, sync, */*, allow
p, role:deployer, applications, get, */*, allow
p, role:deployer, applications, sync, prod/*, deny
p, role:ops, applications, action/apps/Deployment/*, */*, allow
p, role:ops, clusters, get, https://*.example.com, allow
p, alice, applications, delete, team-a/app-?, allow
p, bob, applications, "{get,sync}", team-[ab]/*, allow
g, deployers, role:deployer
g, carol, deployers
g, opsgroup, role:ops
g, ci, role:admin
"#;

    type Case<'a> = (
        &'a Rbac,
        &'a str,
        &'a [&'a str],
        &'a str,
        &'a str,
        &'a str,
        Option<&'a Project>,
        bool,
    );

    #[test]
    fn table() {
        let r = rbac(CSV, None);
        let r_default = rbac(CSV, Some("role:readonly"));
        let mlp = ml_platform();
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // built-in roles
            (&r, "admin", &[], "applications", "sync", "any/app", None, true),
            (&r, "admin", &[], "clusters", "delete", "https://x", None, true),
            (&r, "admin", &[], "exec", "create", "p/a", None, true),
            (&r, "ci", &[], "applications", "delete", "p/a", None, true),
            (&r, "nobody", &[], "applications", "get", "p/a", None, false),
            // default role
            (&r_default, "nobody", &[], "applications", "get", "p/a", None, true),
            (&r_default, "nobody", &[], "projects", "get", "p", None, true),
            (&r_default, "nobody", &[], "applications", "sync", "p/a", None, false),
            (&r_default, "nobody", &[], "applications", "action/x", "p/a", None, false),
            // groups, transitive roles, deny wins within a subject
            (&r, "x", &["deployers"], "applications", "sync", "dev/a", None, true),
            (&r, "x", &["deployers"], "applications", "sync", "prod/a", None, false),
            (&r, "carol", &[], "applications", "sync", "dev/a", None, true),
            (&r, "carol", &[], "applications", "sync", "prod/a", None, false),
            (&r, "carol", &[], "applications", "get", "prod/a", None, true),
            (&r, "carol", &[], "applications", "delete", "dev/a", None, false),
            // globs: * spans '/', ?, [..], {..}
            (&r, "x", &["opsgroup"], "applications", "action/apps/Deployment/restart", "p/a", None, true),
            (&r, "x", &["opsgroup"], "applications", "action/apps/StatefulSet/restart", "p/a", None, false),
            (&r, "x", &["opsgroup"], "clusters", "get", "https://east.example.com", None, true),
            (&r, "x", &["opsgroup"], "clusters", "get", "https://east.example.org", None, false),
            (&r, "alice", &[], "applications", "delete", "team-a/app-1", None, true),
            (&r, "alice", &[], "applications", "delete", "team-a/app-10", None, false),
            (&r, "bob", &[], "applications", "sync", "team-b/x", None, true),
            (&r, "bob", &[], "applications", "get", "team-c/x", None, false),
            (&r, "bob", &[], "applications", "delete", "team-a/x", None, false),
            // project roles through groups
            (&r, "eve", &["ml-engineers"], "applications", "sync", "ml-platform/inference-east", Some(&mlp), true),
            (&r, "eve", &["ml-engineers"], "applications", "sync", "ml-platform/frozen-1", Some(&mlp), false),
            (&r, "eve", &["ml-engineers"], "applications", "delete", "other/x", Some(&mlp), false),
            (&r, "dan", &["data-science"], "applications", "get", "ml-platform/inference-east", Some(&mlp), true),
            (&r, "dan", &["data-science"], "applications", "sync", "ml-platform/inference-east", Some(&mlp), false),
            // lines in a role naming other subjects are ignored
            (&r, "admin", &[], "applications", "delete", "ml-platform/a", Some(&mlp), true),
            // project tokens
            (&r, "proj:ml-platform:ml-engineers", &[], "applications", "sync", "ml-platform/a", Some(&mlp), true),
            (&r, "proj:ml-platform:data-scientists", &[], "applications", "get", "ml-platform/a", Some(&mlp), true),
            (&r, "proj:ml-platform:data-scientists", &[], "applications", "sync", "ml-platform/a", Some(&mlp), false),
            (&r, "proj:ml-platform:ml-engineers", &[], "applications", "sync", "other/a", Some(&mlp), false),
            (&r, "proj:ml-platform:gone", &[], "applications", "get", "ml-platform/a", Some(&mlp), false),
            (&r, "proj:ml-platform:ml-engineers", &[], "applications", "sync", "ml-platform/a", None, false),
            (&r, "proj:ml-platform:ml-engineers", &[], "projects", "delete", "ml-platform", Some(&mlp), false),
            (&r, "proj:ml-platform:data-scientists", &[], "projects", "get", "ml-platform", Some(&mlp), true),
            (&r, "proj:ml-platform:data-scientists", &[], "projects", "get", "other", Some(&mlp), false),
            (&r, "dan", &["data-science"], "projects", "get", "ml-platform", Some(&mlp), true),
            (&r, "dan", &["data-science"], "projects", "get", "other", None, false),
        ];
        for (i, (rb, sub, groups, res, act, obj, proj, want)) in cases.iter().enumerate() {
            let s = Subject::new(sub, groups);
            assert_eq!(
                rb.allowed(&s, res, act, obj, *proj),
                *want,
                "case {i}: {sub} {groups:?} {res} {act} {obj}"
            );
        }
    }

    #[test]
    fn wrong_project_token_on_another_projects_object() {
        // proj:other:ml-engineers may do anything in `other`, nothing in ml-platform,
        // even when handed ml-platform's project.
        let r = Rbac::default();
        let s = Subject::new("proj:other:ml-engineers", &[]);
        let (o, m) = (other(), ml_platform());
        assert!(r.allowed(&s, "applications", "delete", "other/a", Some(&o)));
        assert!(!r.allowed(&s, "applications", "get", "ml-platform/a", Some(&m)));
        assert!(!r.allowed(&s, "applications", "get", "ml-platform/a", Some(&o)));
    }

    #[test]
    fn denied_message() {
        let r = Rbac::default();
        let e = r
            .check(
                &Subject::new("proj:ml-platform:data-scientists", &[]),
                "applications",
                "sync",
                "ml-platform/inference-east",
                Some(&ml_platform()),
            )
            .expect_err("denied");
        assert_eq!(
            e.to_string(),
            "permission denied: applications, sync, ml-platform/inference-east, sub: proj:ml-platform:data-scientists"
        );
    }

    #[test]
    fn bad_lines_are_refused_with_the_line() {
        for (csv, needle) in [
            ("p, a, b", "5 fields"),
            ("p, a, applications, get, */*, maybe", "allow or deny"),
            ("x, a, b", "start with"),
            ("g, a", "g, SUBJECT, ROLE"),
            ("p, a, applications, get, [, allow", "bad glob"),
        ] {
            let e = Policy::parse(csv).expect_err(csv).to_string();
            assert!(e.contains(needle), "{csv}: {e}");
            assert!(e.contains("line 1"), "{e}");
        }
    }

    #[test]
    fn scopes_and_overlays() {
        let data: BTreeMap<String, String> = [
            ("scopes", "[groups, email]"),
            (
                "policy.overlay.csv",
                "p, zed, applications, get, */*, allow",
            ),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let r = Rbac::from_configmap(&data).expect("parses");
        assert_eq!(r.scopes, vec!["groups", "email"]);
        let mut regex = data.clone();
        regex.insert("policy.matchMode".into(), "regex".into());
        let e = Rbac::from_configmap(&regex).expect_err("fail closed");
        assert!(e.to_string().contains("only glob"), "{e}");
        assert!(r.allowed(
            &Subject::new("zed", &[]),
            "applications",
            "get",
            "a/b",
            None
        ));
    }

    #[test]
    fn project_of_objects() {
        assert_eq!(project_of("applications", "p/a"), Some("p"));
        assert_eq!(project_of("applications", "p/ns/a"), Some("p"));
        assert_eq!(project_of("clusters", "p/a"), Some("p"));
        // A URL splits too, but `https:` is not a Kubernetes name: no project.
        assert_eq!(project_of("clusters", "https://x"), None);
        assert_eq!(project_of("applications", "A_B/x"), None);
        assert_eq!(project_of("projects", "p"), Some("p"));
        assert_eq!(project_of("accounts", "a/b"), None);
        assert_eq!(project_of("applications", "noslash"), None);
    }

    #[test]
    fn role_policies_are_checked_line_by_line_and_a_bad_line_disables_the_role() {
        let p = Project::from_json(&json!({"metadata": {"name": "team-a"}, "spec": {"roles": [
            {"name": "ci", "groups": ["team-a-ci"], "policies": [
                "p, proj:team-a:ci, applications, get, team-a/*, allow",
                "p, proj:team-a:ci, applications, get, team-a/*, allow\ng, proj:team-a:ci, role:admin",
            ]},
            {"name": "g-line", "policies": ["g, proj:team-a:g-line, role:admin"]},
            {"name": "outside", "policies": ["p, proj:team-a:outside, applications, get, b/*, allow"]},
            {"name": "prefix", "policies": ["p, proj:team-a:prefix, applications, get, team-ab/*, allow"]},
            {"name": "resource", "policies": ["p, proj:team-a:resource, accounts, update, team-a/*, allow"]},
            {"name": "ok", "groups": ["team-a-ok"], "policies": [
                "p, proj:team-a:ok, applications, sync, team-a/web, allow",
                "p, proj:team-a:ok, applications, get, team-a/ns/web, deny",
            ]},
            {"name": "bad:name", "policies": []},
        ]}}));
        let why = |role: &str| {
            p.role_error(role)
                .map(ToString::to_string)
                .unwrap_or_default()
        };
        let ci = why("ci");
        assert!(
            ci.contains("\"team-a\"")
                && ci.contains("\"ci\"")
                && ci.contains("line 2")
                && ci.contains("line break"),
            "{ci}"
        );
        assert!(why("g-line").contains("`g` line"), "{}", why("g-line"));
        assert!(
            why("outside").contains("inside the project"),
            "{}",
            why("outside")
        );
        assert!(
            why("prefix").contains("inside the project"),
            "{}",
            why("prefix")
        );
        assert!(
            why("resource").contains("resource must be"),
            "{}",
            why("resource")
        );
        assert!(why("bad:name").contains("role name"), "{}", why("bad:name"));
        assert!(p.role_error("ok").is_none());
        assert!(p.role("ci").is_none() && p.role("ok").is_some());
        let r = Rbac::default();
        let ci = Subject::new("proj:team-a:ci", &[]);
        // Nothing of the injected line, nor of the role's valid line, is in force.
        for (res, act, obj) in [
            ("applications", "get", "team-a/web"),
            ("applications", "delete", "other/x"),
            ("projects", "update", "team-a"),
            ("accounts", "update", "admin"),
        ] {
            assert!(
                !r.allowed(&ci, res, act, obj, Some(&p)),
                "{res} {act} {obj}"
            );
        }
        let denied = r
            .check(&ci, "applications", "get", "team-a/web", Some(&p))
            .expect_err("disabled");
        assert!(denied.to_string().contains("line 2"), "{denied}");
        // Users of the role's group get nothing from it either, and are told why.
        let user = Subject::new("eve", &["team-a-ci"]);
        let denied = r
            .check(&user, "applications", "get", "team-a/web", Some(&p))
            .expect_err("disabled");
        assert!(denied.to_string().contains("policy line 2"), "{denied}");
        let ok = Subject::new("proj:team-a:ok", &[]);
        assert!(r.allowed(&ok, "applications", "sync", "team-a/web", Some(&p)));
        assert!(r.allowed(&ok, "projects", "get", "team-a", Some(&p)));
        // A project whose name is not a Kubernetes name gives no rights at all.
        let slash = Project::from_json(&json!({"metadata": {"name": "a/b"}, "spec": {"roles": [
            {"name": "r", "policies": ["p, proj:a/b:r, applications, get, a/b/*, allow"]}
        ]}}));
        assert!(
            matches!(slash.errors.as_slice(), [ProjectPolicyError::Name(_)]),
            "{:?}",
            slash.errors
        );
        let s = Subject::new("proj:a/b:r", &[]);
        assert_eq!(s.project_role(), None);
        assert!(!r.allowed(&s, "applications", "get", "a/b/x", Some(&slash)));
    }
}
