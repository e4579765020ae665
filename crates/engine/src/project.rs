//! AppProject rules, with Argo CD's exact semantics, as pure functions.
//!
//! A project answers four questions about an Application, and the controller asks them
//! before anything is applied:
//!
//! - **May it render this repository?** `sourceRepos` are globs over normalised repository
//!   URLs (`*` stops at `/`, `**` does not); a `!pattern` that matches the URL refuses it
//!   outright, whatever else matches, and — exactly as in Argo CD's `IsSourcePermitted` —
//!   a `!pattern` that does not match counts as a match (so `!x` alone permits all but x).
//! - **May it deploy there?** `destinations` pair a cluster (`server` or `name`) with a
//!   `namespace`, all globs; an entry whose `!` pattern excludes the cluster or namespace
//!   refuses the destination even when another entry matches: deny wins
//!   (`IsDestinationPermitted`). Every namespaced object's own namespace is checked too.
//! - **May it create this kind?** Cluster-scoped kinds must be in
//!   `clusterResourceWhitelist` (empty = none) and not in `clusterResourceBlacklist`;
//!   namespaced kinds must be in `namespaceResourceWhitelist` when one is given (absent =
//!   all, empty = none) and not in `namespaceResourceBlacklist` (`IsGroupKindPermitted`;
//!   group and kind are shell globs).
//! - **May it sync now?** A sync window is active from each start of its cron `schedule`
//!   (five fields, in `timeZone`, default UTC) for `duration`; it concerns an app when one
//!   of its `applications`, `namespaces` or `clusters` globs matches (all of the given
//!   ones with `andOperator`). An active `deny`
//!   window blocks syncs (manual ones too, unless every active deny window has
//!   `manualSync`); when allow windows exist and none is active, syncs are blocked
//!   (manual ones pass if one of them has `manualSync`); deny wins over allow
//!   (`SyncWindows.CanSync`). [`can_sync`] also says when the answer may change next, so
//!   the controller re-checks exactly when a window opens or closes.
//!
//! A missing project is an error, never a permissive stand-in; the controller creates Argo
//! CD's `default` AppProject ([`AppProject::default_project`]) when it is missing, as
//! argocd-server does. Refusals are structured ([`Refusal`]) and say which rule refused
//! what. Role policies are checked in [`roles`].

use chrono::{DateTime, TimeZone, Utc};
use mooring_core::app::{ApplicationDestination, IN_CLUSTER, IN_CLUSTER_NAME};
use mooring_core::project::{
    AppProject, GroupKind, OrphanedResourcesMonitorSettings, SyncWindow, SyncWindowKind,
};
use mooring_core::ResourceKey;
use std::time::{Duration, SystemTime};

pub mod roles;

/// Why a project refuses an Application, a resource or a sync.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("project {project} does not permit source repository {repo} ({rule})")]
    Source {
        project: String,
        repo: String,
        rule: String,
    },
    #[error(
        "project {project} does not permit destination {cluster} namespace {namespace} ({rule})"
    )]
    Destination {
        project: String,
        cluster: String,
        namespace: String,
        rule: String,
    },
    #[error("project {project} does not permit {resource} ({rule})")]
    Resource {
        project: String,
        resource: Box<ResourceKey>,
        rule: String,
    },
    #[error("project {project} does not permit applications in namespace {namespace} ({rule})")]
    AppNamespace {
        project: String,
        namespace: String,
        rule: String,
    },
}

/// A sync window the engine cannot evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("sync window schedule {schedule:?}: {reason}")]
    Schedule { schedule: String, reason: String },
    #[error("sync window duration {0:?} is not a Go duration (e.g. 1h30m)")]
    Duration(String),
    #[error("sync window time zone {0:?} is not an IANA time zone")]
    TimeZone(String),
}

/// gobwas/glob matching as Argo CD uses it: `*` (not crossing `separator`), `**` (crossing
/// it), `?`, `[abc]`, `[!abc]`, `[a-z]`, `{a,b}`, `\` escapes. With `allow_negation`, a
/// leading `!` inverts the match.
pub fn glob_match(
    pattern: &str,
    value: &str,
    allow_negation: bool,
    separator: Option<char>,
) -> bool {
    if allow_negation {
        if let Some(p) = pattern.strip_prefix('!') {
            return !glob_match(p, value, false, separator);
        }
    }
    if pattern == "*" {
        return true;
    }
    // Most entries are literal (`""`, `apps`, `Namespace`): no regex for those.
    if !pattern.contains(['*', '?', '[', '{', '\\']) {
        return pattern == value;
    }
    // An invalid (or oversized) pattern matches nothing, as gobwas/glob's compile error
    // does in Argo CD's `glob.Match`.
    glob_regex(pattern, separator).is_some_and(|re| re.is_match(value))
}

/// Longest glob accepted; project fields are short, a longer one is hostile input.
const MAX_GLOB: usize = 4096;

fn glob_regex(pattern: &str, separator: Option<char>) -> Option<regex::Regex> {
    if pattern.len() > MAX_GLOB {
        return None;
    }
    let not_sep = |out: &mut String| match separator {
        Some(s) => {
            out.push_str("[^");
            out.push_str(&regex::escape(&s.to_string()));
            out.push(']');
        }
        None => out.push_str("(?s:.)"),
    };
    let mut out = String::from("^");
    let mut chars = pattern.chars().peekable();
    let mut braces = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                if chars.peek() == Some(&'*') {
                    chars.next();
                    out.push_str("(?s:.)*");
                } else {
                    not_sep(&mut out);
                    out.push('*');
                }
            }
            '?' => not_sep(&mut out),
            '[' => {
                out.push('[');
                if matches!(chars.peek(), Some('!') | Some('^')) {
                    chars.next();
                    out.push('^');
                }
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == ']' {
                        closed = true;
                        break;
                    }
                    if matches!(c, '\\' | '[' | '&' | '~' | '|') {
                        out.push('\\');
                    }
                    out.push(c);
                }
                if !closed {
                    return None;
                }
                out.push(']');
            }
            '{' => {
                braces += 1;
                out.push_str("(?:");
            }
            '}' if braces > 0 => {
                braces -= 1;
                out.push(')');
            }
            ',' if braces > 0 => out.push('|'),
            '\\' => {
                let next = chars.next()?;
                out.push_str(&regex::escape(&next.to_string()));
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    if braces > 0 {
        return None;
    }
    out.push('$');
    regex::RegexBuilder::new(&out)
        .size_limit(1 << 20)
        .build()
        .ok()
}

/// Go's `filepath.Match` (used for white/blacklist group and kind): `*`, `?`, classes.
fn shell_match(pattern: &str, value: &str) -> bool {
    glob_match(pattern, value, false, Some('/'))
}

/// Argo CD's `git.NormalizeGitURL`, enough for matching: lower case, no trailing `/` or
/// `.git`.
pub fn normalize_repo_url(url: &str) -> String {
    let u = url.trim().to_lowercase();
    let u = u.trim_end_matches('/');
    u.strip_suffix(".git").unwrap_or(u).to_string()
}

fn is_deny(p: &str) -> bool {
    p.starts_with('!')
}

/// `IsSourcePermitted`.
pub fn check_source(proj: &AppProject, repo_url: &str) -> Result<(), Refusal> {
    let src = normalize_repo_url(repo_url);
    let mut any = false;
    for pattern in &proj.spec.source_repos {
        let normalized = match pattern.strip_prefix('!') {
            Some(p) => format!("!{}", normalize_repo_url(p)),
            None => normalize_repo_url(pattern),
        };
        if glob_match(&normalized, &src, true, Some('/')) {
            any = true;
        } else if is_deny(&normalized) {
            return Err(Refusal::Source {
                project: proj.name().into(),
                repo: repo_url.into(),
                rule: format!("sourceRepos entry {pattern:?} excludes it"),
            });
        }
    }
    if any {
        Ok(())
    } else {
        Err(Refusal::Source {
            project: proj.name().into(),
            repo: repo_url.into(),
            rule: format!(
                "no sourceRepos entry matches; permitted: {:?}",
                proj.spec.source_repos
            ),
        })
    }
}

/// Where an Application (or one of its objects) goes: the cluster by server URL and/or
/// name (the controller fills both when it knows them), and the namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destination {
    pub server: String,
    pub name: String,
    pub namespace: String,
}

impl Destination {
    /// An Application's destination as Argo CD checks it: the in-cluster one
    /// ([`ApplicationDestination::is_in_cluster`]) with both its server URL and its name
    /// filled in; any other cluster as written (the controller fills the missing half from
    /// its cluster registry).
    pub fn of(d: &ApplicationDestination) -> Destination {
        let (server, name) = if d.is_in_cluster() {
            (IN_CLUSTER.to_string(), IN_CLUSTER_NAME.to_string())
        } else {
            (
                d.server.clone().unwrap_or_default(),
                d.name.clone().unwrap_or_default(),
            )
        };
        Destination {
            server,
            name,
            namespace: d.namespace.clone().unwrap_or_default(),
        }
    }

    fn cluster(&self) -> &str {
        if self.server.is_empty() {
            &self.name
        } else {
            &self.server
        }
    }
}

/// `IsDestinationPermitted` (`isDestinationMatched`), deny patterns first-class.
pub fn check_destination(proj: &AppProject, dst: &Destination) -> Result<(), Refusal> {
    let refuse = |rule: String| Refusal::Destination {
        project: proj.name().into(),
        cluster: dst.cluster().into(),
        namespace: dst.namespace.clone(),
        rule,
    };
    let mut any = false;
    for (i, item) in proj.spec.destinations.iter().enumerate() {
        let name_matched = !dst.name.is_empty() && glob_match(&item.name, &dst.name, true, None);
        let server_matched =
            !dst.server.is_empty() && glob_match(&item.server, &dst.server, true, None);
        let ns_matched = glob_match(&item.namespace, &dst.namespace, true, None);
        let rule = || {
            format!(
                "destinations[{i}] {{server: {:?}, name: {:?}, namespace: {:?}}}",
                item.server, item.name, item.namespace
            )
        };
        if (server_matched || name_matched) && ns_matched {
            any = true;
        } else if (!name_matched && is_deny(&item.name))
            || (!server_matched && is_deny(&item.server) && ns_matched)
        {
            return Err(refuse(format!("{} excludes the cluster", rule())));
        } else if !ns_matched && is_deny(&item.namespace) && server_matched {
            return Err(refuse(format!("{} excludes the namespace", rule())));
        }
    }
    if any {
        Ok(())
    } else {
        Err(refuse("no destinations entry matches".into()))
    }
}

fn in_list(gk: (&str, &str), list: &[GroupKind]) -> Option<usize> {
    list.iter()
        .position(|item| shell_match(&item.kind, gk.1) && shell_match(&item.group, gk.0))
}

fn describe_gk(list: &str, i: usize, gk: &GroupKind) -> String {
    format!("{list}[{i}] {{group: {:?}, kind: {:?}}}", gk.group, gk.kind)
}

/// `IsGroupKindPermitted`: `Err(rule)` names the list (and entry) that refused.
pub fn group_kind_permitted(
    proj: &AppProject,
    group: &str,
    kind: &str,
    namespaced: bool,
) -> Result<(), String> {
    let s = &proj.spec;
    let gk = (group, kind);
    if namespaced {
        if let Some(white) = &s.namespace_resource_whitelist {
            if white.is_empty() {
                return Err(
                    "namespaceResourceWhitelist is empty: no namespaced kind is permitted".into(),
                );
            }
            if in_list(gk, white).is_none() {
                return Err("not in namespaceResourceWhitelist".into());
            }
        }
        if let Some(i) = in_list(gk, &s.namespace_resource_blacklist) {
            return Err(describe_gk(
                "namespaceResourceBlacklist",
                i,
                &s.namespace_resource_blacklist[i],
            ));
        }
        return Ok(());
    }
    if s.cluster_resource_whitelist.is_empty() {
        return Err(
            "clusterResourceWhitelist is empty: no cluster-scoped kind is permitted".into(),
        );
    }
    if in_list(gk, &s.cluster_resource_whitelist).is_none() {
        return Err("cluster-scoped and not in clusterResourceWhitelist".into());
    }
    if let Some(i) = in_list(gk, &s.cluster_resource_blacklist) {
        return Err(describe_gk(
            "clusterResourceBlacklist",
            i,
            &s.cluster_resource_blacklist[i],
        ));
    }
    Ok(())
}

/// The check of one rendered object before a sync (Argo CD's sync permission validator):
/// its kind, and for a namespaced object its namespace on the app's cluster.
pub fn check_resource(
    proj: &AppProject,
    key: &ResourceKey,
    namespaced: bool,
    app_dst: &Destination,
) -> Result<(), Refusal> {
    group_kind_permitted(proj, &key.group, &key.kind, namespaced).map_err(|rule| {
        Refusal::Resource {
            project: proj.name().into(),
            resource: Box::new(key.clone()),
            rule,
        }
    })?;
    if namespaced && !key.namespace.is_empty() {
        let dst = Destination {
            namespace: key.namespace.clone(),
            ..app_dst.clone()
        };
        check_destination(proj, &dst).map_err(|e| match e {
            Refusal::Destination { rule, .. } => Refusal::Resource {
                project: proj.name().into(),
                resource: Box::new(key.clone()),
                rule: format!(
                    "namespace {} is not a permitted destination: {rule}",
                    key.namespace
                ),
            },
            other => other,
        })?;
    }
    Ok(())
}

/// Where Applications and ApplicationSets are read from, and which projects they may use:
/// Argo CD's control-plane namespace and "applications in any namespace", one rule for the
/// controller, the REST API, the CLI and `mooring check`.
///
/// - Objects in the control-plane `namespace` are the admin's: they may use any project.
/// - Elsewhere, the namespace must match one of `application_namespaces` (the controller's
///   `--application-namespaces`: shell-style globs such as `team-*`, or a regular
///   expression between slashes, `/^team-(a|b)$/`), **and** the project must list it in
///   `spec.sourceNamespaces`. Anything else is never reconciled.
/// - AppProjects (and cluster, repository and settings objects) are read only from the
///   control-plane namespace, so a tenant cannot bring its own project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlane {
    pub namespace: String,
    pub application_namespaces: Vec<String>,
}

impl Default for ControlPlane {
    fn default() -> Self {
        ControlPlane {
            namespace: mooring_core::app::CONTROL_PLANE_NAMESPACE.into(),
            application_namespaces: vec![],
        }
    }
}

impl ControlPlane {
    /// A control plane in `namespace` that reads Applications from there only.
    pub fn new(namespace: impl Into<String>) -> Self {
        ControlPlane {
            namespace: namespace.into(),
            application_namespaces: vec![],
        }
    }

    /// Refuse an `--application-namespaces` entry that matches nothing because it cannot be
    /// compiled (`/(/`, an unclosed `[`): the admin is told at start, naming it, instead of
    /// the pattern silently allowing no namespace.
    pub fn validate(&self) -> Result<(), String> {
        for p in &self.application_namespaces {
            if !namespace_pattern_valid(p) {
                return Err(format!(
                    "--application-namespaces entry {p:?} is not a valid glob or /regex/"
                ));
            }
        }
        Ok(())
    }

    /// Whether `namespace` is the control plane's own (an empty one counts as such: an
    /// object written without a namespace is applied there).
    pub fn is_control_plane(&self, namespace: &str) -> bool {
        namespace.is_empty() || namespace == self.namespace
    }

    /// How Argo CD's CLI and UI name an app: `name` in the control-plane namespace,
    /// `namespace/name` elsewhere (RBAC objects are `project/` + this).
    pub fn qualified_name(&self, namespace: &str, name: &str) -> String {
        if self.is_control_plane(namespace) {
            name.to_string()
        } else {
            format!("{namespace}/{name}")
        }
    }

    /// Whether Applications (and ApplicationSets) in `namespace` are read at all (Argo
    /// CD's `IsNamespaceEnabled`).
    pub fn namespace_enabled(&self, namespace: &str) -> bool {
        namespace == self.namespace
            || self
                .application_namespaces
                .iter()
                .any(|p| namespace_pattern_match(p, namespace))
    }

    /// Whether an Application (or ApplicationSet) in `app_namespace` may use `proj`. The
    /// project itself must come from the control-plane namespace (the caller reads it
    /// from nowhere else).
    pub fn check_app_namespace(
        &self,
        proj: &AppProject,
        app_namespace: &str,
    ) -> Result<(), Refusal> {
        if app_namespace == self.namespace {
            return Ok(());
        }
        if !self.namespace_enabled(app_namespace) {
            return Err(Refusal::AppNamespace {
                project: proj.name().into(),
                namespace: app_namespace.into(),
                rule: format!(
                    "applications are read from {:?} and the controller's --application-namespaces {:?} only",
                    self.namespace, self.application_namespaces
                ),
            });
        }
        if proj
            .spec
            .source_namespaces
            .iter()
            .any(|p| namespace_pattern_match(p, app_namespace))
        {
            return Ok(());
        }
        Err(Refusal::AppNamespace {
            project: proj.name().into(),
            namespace: app_namespace.into(),
            rule: format!(
                "the project's sourceNamespaces {:?} do not include it",
                proj.spec.source_namespaces
            ),
        })
    }

    /// The instance name an app's tracking ids carry (see
    /// [`mooring_core::app::instance_name`]).
    pub fn instance_name(&self, app_namespace: &str, app_name: &str) -> String {
        mooring_core::app::instance_name(app_namespace, app_name, &self.namespace)
    }
}

/// Whether a namespace pattern compiles (see [`namespace_pattern_match`]).
fn namespace_pattern_valid(pattern: &str) -> bool {
    let pattern = pattern.trim();
    match pattern
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix('/'))
        .filter(|p| !p.is_empty())
    {
        Some(re) => {
            re.len() <= MAX_GLOB
                && regex::RegexBuilder::new(re)
                    .size_limit(1 << 20)
                    .build()
                    .is_ok()
        }
        None => {
            !pattern.contains(['*', '?', '[', '{', '\\']) || glob_regex(pattern, None).is_some()
        }
    }
}

/// One `--application-namespaces` or `sourceNamespaces` entry against a namespace:
/// `/regex/` or a glob (Argo CD's `glob.MatchStringInList(…, REGEXP)` for both). An invalid
/// or oversized pattern matches nothing ([`ControlPlane::validate`] refuses it at start).
fn namespace_pattern_match(pattern: &str, namespace: &str) -> bool {
    let pattern = pattern.trim();
    match pattern
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix('/'))
        .filter(|p| !p.is_empty())
    {
        Some(re) if re.len() <= MAX_GLOB => regex::RegexBuilder::new(re)
            .size_limit(1 << 20)
            .build()
            .is_ok_and(|r| r.is_match(namespace)),
        Some(_) => false,
        None => glob_match(pattern, namespace, false, None),
    }
}

/// The sync windows of `proj` that concern an app (`SyncWindows.Matches`).
pub fn matching_windows<'a>(
    proj: &'a AppProject,
    app_name: &str,
    dst: &Destination,
) -> Vec<&'a SyncWindow> {
    let any = |patterns: &[String], values: &[&str]| {
        patterns.iter().any(|p| {
            values
                .iter()
                .any(|v| !v.is_empty() && glob_match(p, v, false, None))
        })
    };
    proj.spec
        .sync_windows
        .iter()
        .filter(|w| {
            let selectors = [
                (&w.applications, any(&w.applications, &[app_name])),
                (&w.namespaces, any(&w.namespaces, &[&dst.namespace])),
                (&w.clusters, any(&w.clusters, &[&dst.server, &dst.name])),
            ];
            if w.and_operator {
                let given: Vec<bool> = selectors
                    .iter()
                    .filter(|(list, _)| !list.is_empty())
                    .map(|(_, matched)| *matched)
                    .collect();
                !given.is_empty() && given.iter().all(|m| *m)
            } else {
                selectors.iter().any(|(_, matched)| *matched)
            }
        })
        .collect()
}

struct Parsed {
    schedule: Schedule,
    duration: chrono::Duration,
}

/// A cron schedule (five fields, robfig/cron's syntax as Argo CD and CronJobs write it)
/// in an IANA time zone: sync windows, and disaster-recovery drills.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    tz: chrono_tz::Tz,
}

impl Schedule {
    /// Parse `schedule` (five fields) in `time_zone` (empty: UTC).
    pub fn parse(schedule: &str, time_zone: &str) -> Result<Schedule, WindowError> {
        Self::parse_fields(schedule, time_zone, false)
    }

    /// Like [`Schedule::parse`], also accepting six fields with leading seconds (drills
    /// a few seconds ahead: `30 14 3 * * *`).
    pub fn parse_with_seconds(schedule: &str, time_zone: &str) -> Result<Schedule, WindowError> {
        Self::parse_fields(schedule, time_zone, true)
    }

    fn parse_fields(
        schedule: &str,
        time_zone: &str,
        seconds: bool,
    ) -> Result<Schedule, WindowError> {
        let mut cron = croner::Cron::new(schedule);
        if seconds {
            cron.with_seconds_optional();
        }
        let cron = cron.parse().map_err(|e| WindowError::Schedule {
            schedule: schedule.to_string(),
            reason: e.to_string(),
        })?;
        let fields = schedule.split_whitespace().count();
        let shape_ok = fields == 5 || (seconds && fields == 6) || schedule.trim().starts_with('@');
        if !shape_ok {
            return Err(WindowError::Schedule {
                schedule: schedule.to_string(),
                reason: if seconds {
                    "expected five fields (minute hour day-of-month month day-of-week) or six with leading seconds".into()
                } else {
                    "expected five fields: minute hour day-of-month month day-of-week".into()
                },
            });
        }
        let tz = if time_zone.is_empty() {
            chrono_tz::UTC
        } else {
            time_zone
                .parse()
                .map_err(|_| WindowError::TimeZone(time_zone.to_string()))?
        };
        Ok(Schedule { cron, tz })
    }

    /// The first start strictly after `t` (robfig/cron's `Next`).
    pub fn next_after(&self, t: SystemTime) -> Option<SystemTime> {
        next_start(self, to_chrono(t)).map(SystemTime::from)
    }
}

fn parse_window(w: &SyncWindow) -> Result<Parsed, WindowError> {
    let schedule = Schedule::parse(&w.schedule, &w.time_zone)?;
    let duration = mooring_core::time::parse_go_duration(&w.duration)
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .ok_or_else(|| WindowError::Duration(w.duration.clone()))?;
    Ok(Parsed { schedule, duration })
}

fn to_chrono(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

/// The first schedule start strictly after `t` (robfig/cron's `Next`).
fn next_start(p: &Schedule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = p.tz.from_utc_datetime(&t.naive_utc());
    p.cron
        .find_next_occurrence(&local, false)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Whether a window is active at `now`: a start lies in (now − duration, now)
/// (Argo CD's `SyncWindow.Active`). Returns the window's end when active.
pub fn window_active(w: &SyncWindow, now: SystemTime) -> Result<Option<SystemTime>, WindowError> {
    let p = parse_window(w)?;
    let now = to_chrono(now);
    Ok(next_start(&p.schedule, now - p.duration)
        .filter(|s| *s < now)
        .map(|s| SystemTime::from(s + p.duration)))
}

/// The answer of [`can_sync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowVerdict {
    pub allowed: bool,
    /// Why not (empty when allowed).
    pub reason: String,
    /// The next time a window concerning the app opens or closes (when to ask again).
    pub next_change: Option<SystemTime>,
}

fn describe_window(w: &SyncWindow) -> String {
    format!(
        "{} window {:?} for {}{}",
        w.kind.as_str(),
        w.schedule,
        w.duration,
        if w.time_zone.is_empty() {
            String::new()
        } else {
            format!(" ({})", w.time_zone)
        }
    )
}

/// `SyncWindows.CanSync(isManual)` over the windows that concern an app, at `now`.
pub fn can_sync(
    windows: &[&SyncWindow],
    now: SystemTime,
    manual: bool,
) -> Result<WindowVerdict, WindowError> {
    let mut next_change: Option<SystemTime> = None;
    let mut consider = |t: SystemTime| {
        if t > now && next_change.is_none_or(|n| t < n) {
            next_change = Some(t);
        }
    };
    let mut active_deny = Vec::new();
    let mut active_allow = Vec::new();
    let mut inactive_allow = Vec::new();
    for w in windows {
        let p = parse_window(w)?;
        if let Some(start) = next_start(&p.schedule, to_chrono(now)) {
            consider(SystemTime::from(start));
        }
        match window_active(w, now)? {
            Some(end) => {
                consider(end);
                match w.kind {
                    SyncWindowKind::Deny => active_deny.push(*w),
                    SyncWindowKind::Allow => active_allow.push(*w),
                }
            }
            None if w.kind == SyncWindowKind::Allow => inactive_allow.push(*w),
            None => {}
        }
    }
    let verdict = |allowed: bool, reason: String| WindowVerdict {
        allowed,
        reason,
        next_change,
    };
    if !active_deny.is_empty() {
        let manual_enabled = active_deny.iter().all(|w| w.manual_sync);
        if manual && manual_enabled {
            return Ok(verdict(true, String::new()));
        }
        let names: Vec<String> = active_deny.iter().map(|w| describe_window(w)).collect();
        return Ok(verdict(
            false,
            format!(
                "{} sync is blocked by active {}{}",
                if manual { "manual" } else { "automated" },
                names.join(", "),
                if manual {
                    " (manualSync is not enabled)"
                } else {
                    ""
                }
            ),
        ));
    }
    if !active_allow.is_empty() {
        return Ok(verdict(true, String::new()));
    }
    if !inactive_allow.is_empty() {
        if manual && inactive_allow.iter().any(|w| w.manual_sync) {
            return Ok(verdict(true, String::new()));
        }
        let names: Vec<String> = inactive_allow.iter().map(|w| describe_window(w)).collect();
        return Ok(verdict(
            false,
            format!(
                "{} sync is blocked: no allow window is active ({})",
                if manual { "manual" } else { "automated" },
                names.join(", ")
            ),
        ));
    }
    Ok(verdict(true, String::new()))
}

/// Orphaned resources (`orphanedResources`): of the unmanaged objects in an app's
/// destination namespace, those without an owner and not ignored — by Argo CD's built-in
/// exclusions (the `default` ServiceAccount, the `kube-root-ca.crt` ConfigMap, the
/// `kubernetes` Service in `default`) or by an `ignore` entry (group, kind and name globs;
/// empty kind or name = any). `unmanaged` must already exclude objects an app tracks.
pub fn orphaned_resources(
    unmanaged: &[serde_json::Value],
    settings: &OrphanedResourcesMonitorSettings,
) -> Vec<ResourceKey> {
    let mut out: Vec<ResourceKey> = unmanaged
        .iter()
        .filter(|o| {
            o.pointer("/metadata/ownerReferences")
                .and_then(serde_json::Value::as_array)
                .is_none_or(|a| a.is_empty())
        })
        .filter_map(ResourceKey::of)
        .filter(|k| !known_orphan_exclusion(k, settings))
        .collect();
    out.sort();
    out
}

fn known_orphan_exclusion(k: &ResourceKey, settings: &OrphanedResourcesMonitorSettings) -> bool {
    let core = k.group.is_empty();
    if (core && k.kind == "Service" && k.name == "kubernetes" && k.namespace == "default")
        || (core && k.kind == "ServiceAccount" && k.name == "default")
        || (core && k.kind == "ConfigMap" && k.name == "kube-root-ca.crt")
    {
        return true;
    }
    settings.ignore.iter().any(|i| {
        (i.kind.is_empty() || glob_match(&i.kind, &k.kind, false, None))
            && glob_match(&i.group, &k.group, false, None)
            && (i.name.is_empty() || glob_match(&i.name, &k.name, false, None))
    })
}

/// Whether a project asks for orphaned-resource warnings (`warn` defaults to true once
/// `orphanedResources` is present).
pub fn warns_of_orphans(proj: &AppProject) -> Option<&OrphanedResourcesMonitorSettings> {
    proj.spec
        .orphaned_resources
        .as_ref()
        .filter(|o| o.warn.unwrap_or(true))
}

/// How long until `t` (zero when past).
pub fn until(t: SystemTime, now: SystemTime) -> Duration {
    t.duration_since(now).unwrap_or_default()
}

#[cfg(test)]
mod tests;
