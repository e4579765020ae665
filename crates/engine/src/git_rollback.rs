//! The rules of `mooring rollback git`: names, texts and edits, as pure functions.
//!
//! The seed's Git rollback runbook creates a branch `rollback/<app>/<timestamp>`, reverts
//! the commits after the target, updates the Application's `targetRevision` in its
//! manifest (`yq`), commits with the reason, the initiator and a timestamp, pushes, and
//! opens a pull request with a pre- and a post-rollback checklist, labels
//! `rollback,urgent` and reviewers. Everything here decides *what* those look like; Git
//! and the forge's API are the edges' (`mooring_source`, `mooring_controller::forge`), so
//! the CLI and the RollbackPolicy's `gitRevert` produce the same branch, message and
//! pull request.
//!
//! # Which commits
//!
//! A monorepo holds many applications; a rollback of one must not revert the others'
//! changes. A commit is kept when one of the files it changed lies under the
//! application's render inputs (its path, kustomize bases, components and patches, Helm
//! value files: `mooring_render::source_inputs`, judged by `mooring_render::inputs_touched`,
//! the rule render reuse applies), taken at the commit *and* at its parent, so a commit
//! that adds or removes a base counts. A commit is reverted whole.
//!
//! # The Application manifest (app-of-apps)
//!
//! When an Application pins `targetRevision` to a commit and is itself defined in Git,
//! [`set_target_revision`] edits that one value in the manifest's text, keeping every
//! other byte (comments, order, quoting of other fields), and checks by parsing the
//! result that exactly the intended field changed.

use mooring_core::time::Timestamp;
use serde_json::{json, Value};

/// Labels of the rollback pull request, as the seed's runbook sets them.
pub const LABELS: [&str; 2] = ["rollback", "urgent"];

/// Why an edit or a URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GitRollbackError {
    /// The manifest file has no Application with that name.
    #[error(
        "{file} defines no Application named {app:?}; give the file that defines it (--app-file)"
    )]
    ApplicationNotInFile { file: String, app: String },
    /// The Application's `targetRevision` line could not be found or edited safely.
    #[error("cannot update targetRevision of Application {app:?} in {file}: {reason}")]
    Edit {
        file: String,
        app: String,
        reason: String,
    },
    /// The repository URL does not name an owner and a repository on a forge.
    #[error("repository URL {url:?} does not name a forge repository (host/owner/name): {reason}")]
    ForgeUrl { url: String, reason: String },
}

/// `rollback/APP/YYYYMMDD_HHMMSS` (UTC).
pub fn branch_name(app: &str, now: Timestamp) -> String {
    format!("rollback/{app}/{}", now.strftime("%Y%m%d_%H%M%S"))
}

/// Who asked for a rollback, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Why {
    /// The application.
    pub app: String,
    /// The revision rolled back to, as given.
    pub to: String,
    /// The reason given.
    pub reason: String,
    /// Who initiated it.
    pub initiator: String,
    /// When, RFC 3339 UTC.
    pub timestamp: String,
}

impl Why {
    /// The fields, stamped with `now`.
    pub fn new(app: &str, to: &str, reason: &str, initiator: &str, now: Timestamp) -> Why {
        Why {
            app: app.to_string(),
            to: to.to_string(),
            reason: reason.to_string(),
            initiator: initiator.to_string(),
            timestamp: mooring_core::time::format(now),
        }
    }

    /// `Rollback APP to REV`: the commit's subject and the pull request's title.
    pub fn title(&self) -> String {
        format!("Rollback {} to {}", self.app, self.to)
    }

    /// The commit message: the title, then Reason, Rollback initiated by, Timestamp and
    /// the reverted commits (`short summary`, newest first).
    pub fn commit_message(&self, reverted: &[(String, String)]) -> String {
        let mut m = format!(
            "{}\n\nReason: {}\nRollback initiated by: {}\nTimestamp: {}\n",
            self.title(),
            one_line(&self.reason),
            one_line(&self.initiator),
            self.timestamp
        );
        if !reverted.is_empty() {
            m.push_str("\nReverted commits:\n");
            for (id, summary) in reverted {
                m.push_str(&format!("- {id} {summary}\n"));
            }
        }
        m
    }

    /// The pull request's body: the fields, the reverted commits, and the seed's pre- and
    /// post-rollback checklists.
    pub fn pr_body(&self, head: &str, branch: &str, reverted: &[(String, String)]) -> String {
        let mut b = format!(
            "## {}\n\n**Reason:** {}\n**Rollback initiated by:** {}\n**Timestamp:** {}\n**Branch:** `{branch}` (reverts onto `{head}`)\n",
            self.title(),
            one_line(&self.reason),
            one_line(&self.initiator),
            self.timestamp
        );
        b.push_str("\n### Reverted commits\n\n");
        for (id, summary) in reverted {
            b.push_str(&format!("- {id} {summary}\n"));
        }
        b.push_str(PRE_CHECKLIST);
        b.push_str(POST_CHECKLIST);
        b
    }
}

/// The checklist to tick before merging.
pub const PRE_CHECKLIST: &str = "\n### Pre-rollback checklist\n\n\
- [ ] Incident documented and linked\n\
- [ ] Target revision verified as the last known good version\n\
- [ ] Stakeholders notified\n\
- [ ] Data, schema and model compatibility with the target revision checked\n";

/// The checklist to tick after the rollback is deployed.
pub const POST_CHECKLIST: &str = "\n### Post-rollback checklist\n\n\
- [ ] Application synced and healthy at the target revision\n\
- [ ] Error rate, latency and model accuracy back to baseline\n\
- [ ] Monitoring dashboards updated\n\
- [ ] Post-mortem scheduled and root cause tracked\n";

/// Reason and initiator are one line in the message's trailer block.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a `targetRevision` pins a commit (a full or abbreviated SHA), not a branch or
/// tag: only then does the Application manifest follow the rollback.
pub fn pins_commit(target_revision: &str) -> bool {
    let t = target_revision.trim();
    (7..=40).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The branch a write-back commits to: `explicit` (a `--branch` flag, the image
/// updater's `git-branch` annotation), else the tracked `targetRevision` when it names a
/// branch (`refs/heads/` stripped). `Err(tracked)` — what the app tracks — when that is
/// `HEAD` or a pinned commit: the caller asks for the branch its own way.
pub fn write_branch(explicit: Option<&str>, tracked: Option<&str>) -> Result<String, String> {
    if let Some(b) = explicit {
        return Ok(b.to_string());
    }
    let t = tracked.unwrap_or_default().trim();
    if t.is_empty() || t == "HEAD" || pins_commit(t) {
        return Err(if t.is_empty() { "HEAD" } else { t }.to_string());
    }
    Ok(t.strip_prefix("refs/heads/").unwrap_or(t).to_string())
}

/// Set `targetRevision` of the Application `app` in the YAML text `file_text` (one or more
/// documents) to `revision`: in `spec.source`, or in `spec.sources[source_index]`. Only
/// that scalar changes; the rest of the text is kept byte for byte.
pub fn set_target_revision(
    file: &str,
    file_text: &str,
    app: &str,
    source_index: Option<usize>,
    revision: &str,
) -> Result<String, GitRollbackError> {
    let edit_err = |reason: String| GitRollbackError::Edit {
        file: file.to_string(),
        app: app.to_string(),
        reason,
    };
    // Split into documents at `---` lines, keeping offsets.
    let mut docs: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in file_text.split_inclusive('\n') {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            docs.push((start, offset));
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push((start, file_text.len()));
    let mut found = None;
    for (s, e) in docs {
        let text = &file_text[s..e];
        let Ok(v) = mooring_core::yaml::parse_one(text) else {
            continue;
        };
        let is_app = v.get("kind").and_then(Value::as_str) == Some("Application")
            && v.pointer("/metadata/name").and_then(Value::as_str) == Some(app);
        if is_app {
            found = Some((s, e, v));
            break;
        }
    }
    let Some((s, e, doc)) = found else {
        return Err(GitRollbackError::ApplicationNotInFile {
            file: file.to_string(),
            app: app.to_string(),
        });
    };
    let pointer = match source_index {
        None => "/spec/source/targetRevision".to_string(),
        Some(i) => format!("/spec/sources/{i}/targetRevision"),
    };
    if doc.pointer(&pointer).is_none() {
        return Err(edit_err(format!("it has no {pointer}")));
    }
    // The n-th `targetRevision:` key of the document, in text order, is the one of
    // source n (Argo CD manifests list one per source); a single source has exactly one.
    let text = &file_text[s..e];
    let mut hits = Vec::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_start().trim_start_matches("- ");
        if let Some(rest) = body.strip_prefix("targetRevision:") {
            let value_start = pos + (line.len() - body.len()) + "targetRevision:".len();
            hits.push((
                value_start,
                pos + line.trim_end_matches(['\n', '\r']).len(),
                rest,
            ));
        }
        pos += line.len();
    }
    let wanted = source_index.unwrap_or(0);
    if source_index.is_none() && hits.len() != 1 {
        return Err(edit_err(format!(
            "expected one targetRevision line, found {} (flow-style or multi-line YAML is not edited)",
            hits.len()
        )));
    }
    let Some(&(vs, ve, rest)) = hits.get(wanted) else {
        return Err(edit_err(format!(
            "no targetRevision line for source {wanted} (flow-style YAML is not edited)"
        )));
    };
    // Keep a trailing comment.
    let comment = rest
        .find(" #")
        .map(|i| &rest[rest[..i].trim_end().len()..])
        .unwrap_or("");
    let mut out = String::with_capacity(file_text.len() + 40);
    out.push_str(&file_text[..s + vs]);
    // Quoted (a JSON string is a YAML double-quoted scalar): an all-digit SHA would
    // otherwise read as a number.
    let quoted = serde_json::to_string(revision).map_err(|e| edit_err(e.to_string()))?;
    out.push_str(&format!(
        " {quoted}{}",
        comment.trim_end_matches(['\n', '\r'])
    ));
    out.push_str(&file_text[s + ve..]);
    // Check: the document now says `revision` there and nothing else changed.
    let new_doc = mooring_core::yaml::parse_one(&out[s..out.len() - (file_text.len() - e)])
        .map_err(|e| edit_err(format!("the edited document does not parse: {e}")))?;
    let mut expected = doc.clone();
    if let Some(slot) = expected.pointer_mut(&pointer) {
        *slot = json!(revision);
    }
    if new_doc != expected {
        return Err(edit_err(
            "the edit would change more than targetRevision (unusual YAML layout)".into(),
        ));
    }
    Ok(out)
}

/// A forge repository named by a Git URL: the web host and the repository's path
/// (`owner/name`, or `group/subgroup/name` on GitLab), without `.git`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForgeRepo {
    /// `scheme://host[:port]` of the web and API server (`https` for ssh URLs).
    pub base: String,
    /// The host alone.
    pub host: String,
    /// `owner/name`.
    pub path: String,
}

/// The forge repository of a Git URL (`https://host/owner/name.git`,
/// `ssh://git@host/owner/name.git`, `git@host:owner/name.git`).
pub fn forge_repo(url: &str) -> Result<ForgeRepo, GitRollbackError> {
    let err = |reason: &str| GitRollbackError::ForgeUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
        ("https", r)
    } else if let Some(r) = url.strip_prefix("http://") {
        ("http", r)
    } else if let Some(r) = url.strip_prefix("ssh://") {
        ("ssh", r)
    } else if !url.contains("://") && url.contains(':') {
        ("scp", url)
    } else {
        return Err(err(
            "only http(s), ssh and user@host:path URLs name a forge",
        ));
    };
    let (authority, path) = if scheme == "scp" {
        rest.split_once(':').ok_or_else(|| err("no path"))?
    } else {
        rest.split_once('/').ok_or_else(|| err("no path"))?
    };
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host_port
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host_port, |(h, _)| h);
    if host.is_empty() {
        return Err(err("no host"));
    }
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    if path.split('/').filter(|s| !s.is_empty()).count() < 2
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(err("the path must be owner/name"));
    }
    let base = match scheme {
        "http" | "https" => format!("{scheme}://{host_port}"),
        _ => format!("https://{host}"),
    };
    Ok(ForgeRepo {
        base,
        host: host.to_string(),
        path: path.to_string(),
    })
}

/// One file of a unified diff (`a/PATH` → `b/PATH`), three lines of context; a missing
/// side is `/dev/null`. Non-UTF-8 content is shown as a one-line note.
pub fn file_diff(path: &str, before: Option<&[u8]>, after: Option<&[u8]>) -> String {
    let text = |b: Option<&[u8]>| b.map(|b| std::str::from_utf8(b).map(str::to_string));
    match (text(before), text(after)) {
        (Some(Err(_)), _) | (_, Some(Err(_))) => {
            format!("Binary files a/{path} and b/{path} differ\n")
        }
        (old, new) => {
            let a = if old.is_some() {
                format!("a/{path}")
            } else {
                "/dev/null".into()
            };
            let b = if new.is_some() {
                format!("b/{path}")
            } else {
                "/dev/null".into()
            };
            let old = old.and_then(Result::ok).unwrap_or_default();
            let new = new.and_then(Result::ok).unwrap_or_default();
            similar::TextDiff::from_lines(&old, &new)
                .unified_diff()
                .context_radius(3)
                .header(&a, &b)
                .to_string()
        }
    }
}

#[cfg(test)]
mod tests;
