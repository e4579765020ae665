//! Rollback through Git: revert, on a branch (or the tracked branch), the commits after a
//! good revision that touch one application, push, and open the pull request.
//!
//! This is the orchestration behind `mooring rollback git` and a RollbackPolicy's
//! `gitRevert`, so it takes everything as values ([`Request`]) and knows nothing of a
//! command line. The steps:
//!
//! 1. **Where.** The application's source (the only one, or the one chosen among
//!    `spec.sources`) names the repository; the branch is [`Request::branch`] or the
//!    source's `targetRevision` when that is a branch. A `targetRevision` that pins a
//!    commit has no branch to follow: give one.
//! 2. **What.** The commits after the target on the branch's first-parent history
//!    (`git log --first-parent REV..BRANCH`), and among them those whose changed files
//!    lie under the app's render inputs at the commit or its parent
//!    (`mooring_render::source_inputs` and `inputs_touched`, the rule render reuse
//!    applies), or all of them with
//!    [`Request::all`] (the seed's whole-range revert). When the inputs of a commit
//!    cannot be listed (the app's directory does not exist there), its path alone is used
//!    and a warning says so.
//! 3. **The manifest.** When the app pins `targetRevision` to a commit, the file that
//!    defines the Application gets `targetRevision: <target>`: [`Request::app_file`];
//!    else the one YAML file defining an Application of that name under the parent
//!    Application's path ([`Request::parent`], the app-of-apps parent found by its
//!    tracking id) or, without a parent, in the whole repository. When the parent lives
//!    in the same repository, the edit is part of the revert commit; when it lives in
//!    another one, that repository gets a second commit (the edit alone) on a branch of
//!    the same name, pushed after the first, with its own pull request
//!    ([`ParentChange`]). When no file defines it, a warning says the pin must be
//!    updated where it is defined.
//! 4. **Commit.** One revert commit (in-memory merges, `mooring_source::RepoCache::revert`)
//!    with the seed's message, on `rollback/APP/YYYYMMDD_HHMMSS` or, in
//!    [`Mode::Direct`], on the branch itself. A conflict stops here: nothing is written
//!    or pushed, and the error names the files.
//! 5. **Push** (never forced: a direct push onto a branch that moved is refused), then the
//!    **pull request** ([`crate::forge`]).
//!
//! A dry run does steps 1–4 in memory and returns the diff and the pull request's text.

use crate::forge::{Forge, ForgeError, Opened, PullRequest};
use crate::outbound::Outbound;
use mooring_core::app::{Application, ApplicationSource};
use mooring_core::time::Timestamp;
use mooring_engine::git_rollback::{self as rules, Why};
use mooring_source::{
    redact_url, CommitId, CommitInfo, Credentials, FileEdit, Identity, Limits, RepoCache,
    RevertRequest, SourceError,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Where the revert commit goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// A new branch `rollback/APP/YYYYMMDD_HHMMSS` (and, with a forge, a pull request).
    Branch,
    /// The tracked branch itself.
    Direct,
}

/// The pull request to open after the push.
#[derive(Clone, Debug)]
pub struct PrOptions {
    pub forge: Forge,
    pub reviewers: Vec<String>,
    /// The forge path (`owner/name`) of the parent Application's repository, when it is
    /// another one: its manifest change gets a pull request there too.
    pub parent_repo: Option<String>,
}

/// The Application that deploys this one (app-of-apps), found by its tracking id: where
/// the manifest to update lives.
#[derive(Clone, Debug)]
pub struct Parent {
    /// The parent Application's name.
    pub name: String,
    /// Its repository URL to fetch and push (after repository aliases).
    pub repo_url: String,
    pub credentials: Credentials,
    /// Its tracked branch (its `targetRevision`, when that is a branch).
    pub branch: Option<String>,
    /// Its source path: the directory searched for the manifest.
    pub path: String,
}

/// The second commit, in the parent Application's repository, when the manifest lives
/// there.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentChange {
    pub parent: String,
    /// The repository, password redacted.
    pub repo_url: String,
    pub base_branch: String,
    pub branch: String,
    pub commit: CommitId,
    pub manifest: String,
    pub diff: String,
    pub pushed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<Opened>,
}

/// Everything a Git rollback needs.
#[derive(Clone, Debug)]
pub struct Request {
    pub app: Application,
    /// The repository URL to fetch and push (the source's, after repository aliases).
    pub repo_url: String,
    pub credentials: Credentials,
    /// The good revision (commit, tag or branch).
    pub to: String,
    pub reason: String,
    pub initiator: String,
    /// Author and committer of the revert commit.
    pub author: Identity,
    pub mode: Mode,
    /// The branch to revert on (default: the source's `targetRevision` when it is a branch).
    pub branch: Option<String>,
    /// Revert every commit after `to`, not only those touching the app.
    pub all: bool,
    /// The repository file defining the Application, when it pins a commit.
    pub app_file: Option<String>,
    /// Index in `spec.sources` of the source to roll back (multi-source apps).
    pub source_index: Option<usize>,
    /// The parent Application (app-of-apps), when there is one.
    pub parent: Option<Parent>,
    pub dry_run: bool,
    pub push: bool,
    pub pr: Option<PrOptions>,
    pub now: Timestamp,
    pub limits: Limits,
}

/// What a Git rollback did (or, in a dry run, would do).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub app: String,
    /// The repository, password redacted.
    pub repo_url: String,
    /// The branch reverted on.
    pub base_branch: String,
    /// Its head when read.
    pub head: CommitId,
    /// The target revision's commit.
    pub target: CommitId,
    /// The branch the commit goes to (`rollback/…`, or the base branch in direct mode).
    pub branch: String,
    pub mode: Mode,
    /// The revert commit (in a dry run: the commit that would be made).
    pub commit: CommitId,
    /// The commits reverted, newest first.
    pub reverted: Vec<CommitInfo>,
    /// The commits after the target that were kept (they touch other apps only).
    pub kept: Vec<CommitInfo>,
    /// The Application manifest whose `targetRevision` was updated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// The manifest's change in the parent's repository, when it lives in another one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_change: Option<ParentChange>,
    pub message: String,
    /// Unified diff of the commit against the branch head.
    pub diff: String,
    pub dry_run: bool,
    pub pushed: bool,
    pub pr_title: String,
    pub pr_body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<Opened>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Why a Git rollback failed. Nothing was pushed unless the variant says so.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("application {app}: {reason}")]
    Spec { app: String, reason: String },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Rules(#[from] rules::GitRollbackError),
    #[error("application {app}: none of the {count} commits after {to} on {branch} touches its inputs ({inputs}); nothing to roll back (--all reverts every commit)")]
    NothingTouchesApp {
        app: String,
        count: usize,
        to: String,
        branch: String,
        inputs: String,
    },
    #[error("application {app}: {branch} is already at {to}; nothing to roll back")]
    AlreadyThere {
        app: String,
        branch: String,
        to: String,
    },
    #[error("the branch {branch} was pushed, but opening the pull request failed: {source}")]
    PullRequest {
        branch: String,
        #[source]
        source: Box<ForgeError>,
    },
    #[error("the rollback branch {branch} was pushed, but pushing the Application manifest's change to {url} failed: {source}")]
    ParentPush {
        branch: String,
        url: String,
        #[source]
        source: Box<SourceError>,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

/// What the caller decides; [`request_for`] adds what the Application and the controller
/// know (repository, credentials, parent, forge repository).
#[derive(Clone, Debug)]
pub struct Ask {
    pub to: String,
    pub reason: String,
    pub initiator: String,
    pub author: Identity,
    pub mode: Mode,
    pub branch: Option<String>,
    pub all: bool,
    pub app_file: Option<String>,
    pub source_index: Option<usize>,
    pub dry_run: bool,
    pub push: bool,
    pub pr: Option<PrAsk>,
    pub now: Timestamp,
}

/// The pull request the caller wants.
#[derive(Clone, Debug)]
pub struct PrAsk {
    pub kind: crate::forge::ForgeKind,
    /// The API base (default: from the repository URL's host).
    pub api_url: Option<String>,
    pub token: String,
    pub reviewers: Vec<String>,
}

/// The [`Request`] for rolling back `app` as `ask` says, with what the controller uses
/// for the app: the fetch URL (repository aliases), the repository Secret's credentials
/// for the app's project, and the parent Application (app-of-apps, by tracking id) read
/// from the management cluster. `mooring rollback git` and the RollbackPolicy's
/// `gitRevert` both call this.
pub async fn request_for(
    ctx: &crate::Context,
    app: Application,
    ask: Ask,
) -> Result<Request, Error> {
    let (source, _) = pick_source(&app, ask.source_index)?;
    let repo_url = ctx.fetch_url(&source.repo_url);
    let credentials = ctx.credentials_for(&repo_url, Some(crate::project::project_name(&app)));
    let parent_app = parent_of(ctx, &app).await?;
    let parent_source = parent_app.as_ref().and_then(|p| p.source().cloned());
    let parent = match (&parent_app, &parent_source) {
        (Some(p), Some(s)) => {
            let url = ctx.fetch_url(&s.repo_url);
            let revision = s.target_revision.clone().unwrap_or_default();
            Some(Parent {
                name: p.name().to_string(),
                credentials: ctx.credentials_for(&url, Some(crate::project::project_name(p))),
                repo_url: url,
                branch: (!revision.is_empty()
                    && revision != "HEAD"
                    && !rules::pins_commit(&revision))
                .then_some(revision),
                path: s.path.clone().unwrap_or_default(),
            })
        }
        _ => None,
    };
    let pr = match ask.pr {
        Some(p) => {
            let repo = rules::forge_repo(&source.repo_url)?;
            Some(PrOptions {
                forge: Forge {
                    kind: p.kind,
                    api: p.api_url.unwrap_or_else(|| p.kind.default_api(&repo)),
                    repo: repo.path,
                    token: p.token,
                },
                reviewers: p.reviewers,
                parent_repo: parent_source
                    .as_ref()
                    .filter(|s| s.repo_url != source.repo_url)
                    .and_then(|s| rules::forge_repo(&s.repo_url).ok())
                    .map(|r| r.path),
            })
        }
        None => None,
    };
    Ok(Request {
        app,
        repo_url,
        credentials,
        to: ask.to,
        reason: ask.reason,
        initiator: ask.initiator,
        author: ask.author,
        mode: ask.mode,
        branch: ask.branch,
        all: ask.all,
        app_file: ask.app_file,
        source_index: ask.source_index,
        parent,
        dry_run: ask.dry_run,
        push: ask.push,
        pr,
        now: ask.now,
        limits: Limits::default(),
    })
}

/// The Application that deployed `app` (Argo CD's tracking annotation, else the
/// `app.kubernetes.io/instance` label), when it is another Application of the same
/// namespace. `mooring promote` finds the manifest to edit with it too.
pub async fn parent_of(
    ctx: &crate::Context,
    app: &Application,
) -> Result<Option<Application>, Error> {
    let meta = serde_json::to_value(&app.metadata).map_err(|e| Error::Internal(e.to_string()))?;
    let instance = meta
        .pointer("/annotations")
        .and_then(|a| a.get(mooring_k8s::cluster::TRACKING_ANNOTATION))
        .and_then(|v| v.as_str())
        .and_then(mooring_k8s::cluster::tracking_app)
        .or_else(|| {
            meta.pointer("/labels")
                .and_then(|l| l.get("app.kubernetes.io/instance"))
                .and_then(|v| v.as_str())
        })
        .map(str::to_string);
    let Some(name) = instance.filter(|n| n != app.name()) else {
        return Ok(None);
    };
    let read = |e: String| Error::Internal(format!("reading the parent Application {name}: {e}"));
    let Some(parent) = ctx
        .apps_api(app.namespace())
        .get_opt(&name)
        .await
        .map_err(|e| read(e.to_string()))?
    else {
        return Ok(None);
    };
    let value = serde_json::to_value(parent).map_err(|e| read(e.to_string()))?;
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| read(e.to_string()))
}

/// Run a Git rollback (blocking Git work runs on tokio's blocking pool).
pub async fn run(
    repos: Arc<RepoCache>,
    outbound: &Outbound,
    req: Request,
) -> Result<Outcome, Error> {
    let pr = req.pr.clone();
    let mut outcome = {
        let req = req.clone();
        tokio::task::spawn_blocking(move || prepare(&repos, &req))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??
    };
    if let (Some(pr), true, Mode::Branch) = (pr, outcome.pushed, req.mode) {
        let request = PullRequest {
            title: outcome.pr_title.clone(),
            body: outcome.pr_body.clone(),
            head: outcome.branch.clone(),
            base: outcome.base_branch.clone(),
            labels: rules::LABELS.iter().map(|l| l.to_string()).collect(),
            reviewers: pr.reviewers.clone(),
        };
        let opened =
            pr.forge
                .open(outbound, &request)
                .await
                .map_err(|source| Error::PullRequest {
                    branch: outcome.branch.clone(),
                    source: Box::new(source),
                })?;
        outcome.warnings.extend(opened.warnings.iter().cloned());
        outcome.pull_request = Some(opened);
        if let (Some(repo), Some(change)) = (&pr.parent_repo, outcome.parent_change.as_mut()) {
            if change.pushed {
                let forge = Forge {
                    repo: repo.clone(),
                    ..pr.forge.clone()
                };
                let request = PullRequest {
                    head: change.branch.clone(),
                    base: change.base_branch.clone(),
                    ..request
                };
                let opened =
                    forge
                        .open(outbound, &request)
                        .await
                        .map_err(|source| Error::PullRequest {
                            branch: change.branch.clone(),
                            source: Box::new(source),
                        })?;
                outcome.warnings.extend(opened.warnings.iter().cloned());
                change.pull_request = Some(opened);
            }
        }
    }
    Ok(outcome)
}

/// The source rolled back, with its index in `spec.sources` (None: `spec.source`).
fn source_of(req: &Request) -> Result<(ApplicationSource, Option<usize>), Error> {
    pick_source(&req.app, req.source_index)
}

/// The source of `app` a rollback works on: `spec.source`, or in `spec.sources` the one
/// at `index`, else the only one with a path. (`mooring promote` picks the same way.)
pub fn pick_source(
    app: &Application,
    source_index: Option<usize>,
) -> Result<(ApplicationSource, Option<usize>), Error> {
    let spec_err = |reason: String| Error::Spec {
        app: app.name().to_string(),
        reason,
    };
    if !app.has_multiple_sources() {
        let s = app
            .sources()
            .first()
            .cloned()
            .ok_or_else(|| spec_err("it has no source".into()))?;
        return Ok((s, None));
    }
    let sources = app.sources();
    let index = match source_index {
        Some(i) if i < sources.len() => i,
        Some(i) => {
            return Err(spec_err(format!(
                "source index {i} is out of range: spec.sources has {} sources",
                sources.len()
            )))
        }
        None => {
            let with_path: Vec<usize> = (0..sources.len())
                .filter(|&i| sources[i].path.is_some() && sources[i].chart.is_none())
                .collect();
            match with_path.as_slice() {
                [one] => *one,
                _ => {
                    return Err(spec_err(format!(
                        "spec.sources has {} sources with a path; choose one (source index)",
                        with_path.len()
                    )))
                }
            }
        }
    };
    Ok((sources[index].clone(), Some(index)))
}

/// Steps 1 to 4 (and the push): everything but the pull request.
fn prepare(repos: &RepoCache, req: &Request) -> Result<Outcome, Error> {
    let app_name = req.app.name().to_string();
    let (source, source_index) = source_of(req)?;
    if source.chart.is_some() {
        return Err(Error::Spec {
            app: app_name,
            reason: "its source is a Helm repository chart, not a Git path".into(),
        });
    }
    let url = req.repo_url.as_str();
    let creds = &req.credentials;
    let tracked = source.target_revision.clone().unwrap_or_default();
    let pinned = rules::pins_commit(&tracked);
    let branch = match &req.branch {
        Some(b) => b.clone(),
        None if !pinned && !tracked.is_empty() && tracked != "HEAD" => tracked.clone(),
        None => {
            return Err(Error::Spec {
                app: app_name,
                reason: format!(
                    "targetRevision {tracked:?} is not a branch; name the branch to revert on"
                ),
            })
        }
    };
    mooring_source::validate_branch(&branch)?;
    let head = repos.resolve(url, &format!("refs/heads/{branch}"), creds)?;
    let target = repos.resolve(url, &req.to, creds)?;
    let range = repos.first_parent_range(url, &target, &head)?;
    if range.is_empty() {
        return Err(Error::AlreadyThere {
            app: app_name,
            branch,
            to: req.to.clone(),
        });
    }

    // Which commits touch the app.
    let mut warnings = Vec::new();
    let (reverted, kept): (Vec<CommitInfo>, Vec<CommitInfo>) = if req.all {
        (range.clone(), vec![])
    } else {
        let mut inputs: HashMap<CommitId, Vec<String>> = HashMap::new();
        let mut inputs_at = |c: &CommitId| -> Result<Vec<String>, Error> {
            if let Some(i) = inputs.get(c) {
                return Ok(i.clone());
            }
            let i = app_inputs(repos, url, c, &source, &req.limits, &mut warnings)?;
            inputs.insert(c.clone(), i.clone());
            Ok(i)
        };
        let mut touched = Vec::new();
        let mut others = Vec::new();
        let mut parent = target.clone();
        for c in &range {
            let before = inputs_at(&parent)?;
            let after = inputs_at(&c.id)?;
            let both: Vec<String> = before.into_iter().chain(after).collect();
            if mooring_render::inputs_touched(&both, &c.changed) {
                touched.push(c.clone());
            } else {
                others.push(c.clone());
            }
            parent = c.id.clone();
        }
        if touched.is_empty() {
            let shown = inputs_at(&head)?.join(", ");
            return Err(Error::NothingTouchesApp {
                app: app_name,
                count: range.len(),
                to: req.to.clone(),
                branch,
                inputs: shown,
            });
        }
        (touched, others)
    };
    let newest_first: Vec<CommitInfo> = reverted.iter().rev().cloned().collect();

    // The Application manifest, when the app pins a commit.
    let other_repo_parent = req
        .parent
        .as_ref()
        .filter(|p| p.repo_url != req.repo_url && req.app_file.is_none());
    let search_dir = req
        .parent
        .as_ref()
        .filter(|p| p.repo_url == req.repo_url)
        .map_or("", |p| p.path.as_str());
    let manifest = if pinned && other_repo_parent.is_none() {
        find_manifest(
            repos,
            url,
            &head,
            &app_name,
            req.app_file.as_deref(),
            search_dir,
            &req.limits,
            &mut warnings,
        )?
    } else {
        None
    };
    let new_rev = target.to_string();
    let edit_in = |file: &str, text: &[u8]| -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(text).map_err(|_| "it is not UTF-8".to_string())?;
        rules::set_target_revision(file, text, req.app.name(), source_index, &new_rev)
            .map(String::into_bytes)
            .map_err(|e| e.to_string())
    };
    let edit = |text: &[u8]| edit_in(manifest.as_deref().unwrap_or_default(), text);
    let mut edits = Vec::new();
    if let Some(path) = &manifest {
        edits.push(FileEdit {
            path: path.clone(),
            edit: &edit,
        });
    }

    let why = Why::new(&app_name, &req.to, &req.reason, &req.initiator, req.now);
    let listed: Vec<(String, String)> = newest_first
        .iter()
        .map(|c| (c.id.short().to_string(), c.summary.clone()))
        .collect();
    let message = why.commit_message(&listed);
    let rollback_branch = match req.mode {
        Mode::Branch => rules::branch_name(&app_name, req.now),
        Mode::Direct => branch.clone(),
    };
    let write = !req.dry_run;
    let done = repos.revert(
        url,
        &RevertRequest {
            head: head.clone(),
            commits: newest_first.iter().map(|c| c.id.clone()).collect(),
            edits,
            message: message.clone(),
            author: req.author.clone(),
            committer: req.author.clone(),
            time: req.now.as_second(),
            write,
        },
    )?;
    let diff: String = done
        .changes
        .iter()
        .map(|c| rules::file_diff(&c.path, c.before.as_deref(), c.after.as_deref()))
        .collect();
    // The manifest in the parent's repository: a second commit there, prepared (in
    // memory) before anything is pushed.
    let mut parent_change = None;
    if let (true, Some(p)) = (pinned, other_repo_parent) {
        let pbranch = p.branch.clone().ok_or_else(|| Error::Spec {
            app: app_name.clone(),
            reason: format!(
                "its parent Application {} does not track a branch, so its manifest cannot be updated; update targetRevision there by hand",
                p.name
            ),
        })?;
        mooring_source::validate_branch(&pbranch)?;
        let phead = repos.resolve(
            &p.repo_url,
            &format!("refs/heads/{pbranch}"),
            &p.credentials,
        )?;
        if let Some(file) = find_manifest(
            repos,
            &p.repo_url,
            &phead,
            &app_name,
            None,
            &p.path,
            &req.limits,
            &mut warnings,
        )? {
            let pedit = |text: &[u8]| edit_in(&file, text);
            let pdone = repos.revert(
                &p.repo_url,
                &RevertRequest {
                    head: phead,
                    commits: vec![],
                    edits: vec![FileEdit {
                        path: file.clone(),
                        edit: &pedit,
                    }],
                    message: message.clone(),
                    author: req.author.clone(),
                    committer: req.author.clone(),
                    time: req.now.as_second(),
                    write,
                },
            )?;
            parent_change = Some(ParentChange {
                parent: p.name.clone(),
                repo_url: redact_url(&p.repo_url),
                branch: match req.mode {
                    Mode::Branch => rollback_branch.clone(),
                    Mode::Direct => pbranch.clone(),
                },
                base_branch: pbranch,
                commit: pdone.commit,
                manifest: file,
                diff: pdone
                    .changes
                    .iter()
                    .map(|c| rules::file_diff(&c.path, c.before.as_deref(), c.after.as_deref()))
                    .collect(),
                pushed: false,
                pull_request: None,
            });
        }
    }
    let pushed = if write && req.push {
        repos.push(url, &done.commit, &rollback_branch, creds)?;
        if let (Some(change), Some(p)) = (parent_change.as_mut(), other_repo_parent) {
            repos
                .push(&p.repo_url, &change.commit, &change.branch, &p.credentials)
                .map_err(|e| Error::ParentPush {
                    branch: rollback_branch.clone(),
                    url: redact_url(&p.repo_url),
                    source: Box::new(e),
                })?;
            change.pushed = true;
        }
        true
    } else {
        false
    };
    Ok(Outcome {
        app: app_name,
        repo_url: redact_url(url),
        pr_body: why.pr_body(&branch, &rollback_branch, &listed),
        pr_title: why.title(),
        base_branch: branch,
        head,
        target,
        branch: rollback_branch,
        mode: req.mode,
        commit: done.commit,
        reverted: newest_first,
        kept,
        manifest,
        parent_change,
        message,
        diff,
        dry_run: req.dry_run,
        pushed,
        pull_request: None,
        warnings,
    })
}

/// Whether `head` renders for `source` what `target` rendered: no file that differs
/// between them is an input of the app's render at either commit (the rule render reuse
/// relies on: `mooring_render::inputs_touched`). Both commits must be in the cache. This
/// is how a RollbackPolicy sees that Git holds the rolled-back version again, whether by
/// its own revert, a merged pull request, or a fix by hand.
pub fn renders_same(
    repos: &RepoCache,
    url: &str,
    source: &ApplicationSource,
    target: &CommitId,
    head: &CommitId,
    limits: &Limits,
) -> Result<bool, Error> {
    if target == head {
        return Ok(true);
    }
    let changed = repos.changed_paths(url, target, head)?;
    let mut warnings = Vec::new();
    let inputs: Vec<String> = app_inputs(repos, url, target, source, limits, &mut warnings)?
        .into_iter()
        .chain(app_inputs(repos, url, head, source, limits, &mut warnings)?)
        .collect();
    Ok(!mooring_render::inputs_touched(&inputs, &changed))
}

/// The render inputs of `source` at commit `c` (its path alone when they cannot be
/// listed, with a warning).
fn app_inputs(
    repos: &RepoCache,
    url: &str,
    c: &CommitId,
    source: &ApplicationSource,
    limits: &Limits,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, Error> {
    let dir = tempfile::Builder::new()
        .prefix("mooring-rollback-")
        .tempdir()
        .map_err(|e| Error::Internal(format!("temporary directory: {e}")))?;
    repos.export(url, c, dir.path(), limits)?;
    let path = source.path.clone().unwrap_or_else(|| ".".into());
    match mooring_render::source_inputs(dir.path(), source) {
        Ok(i) => Ok(i),
        Err(e) => {
            warnings.push(format!(
                "at {}: the inputs of {path} cannot be listed ({e}); only {path} itself counts there",
                c.short()
            ));
            Ok(vec![path.trim_start_matches("./").to_string()])
        }
    }
}

/// The repository file that defines Application `app` at `head`: the given one, or the
/// one YAML file under `under` (`""`: the whole repository) defining an Application of
/// that name.
#[allow(clippy::too_many_arguments)]
pub fn find_manifest(
    repos: &RepoCache,
    url: &str,
    head: &CommitId,
    app: &str,
    app_file: Option<&str>,
    under: &str,
    limits: &Limits,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, Error> {
    if let Some(file) = app_file {
        if repos.read_file(url, head, file)?.is_none() {
            return Err(rules::GitRollbackError::ApplicationNotInFile {
                file: file.to_string(),
                app: app.to_string(),
            }
            .into());
        }
        return Ok(Some(file.trim_start_matches("./").to_string()));
    }
    let under = under.trim_start_matches("./").trim_matches('/');
    let under = if under == "." { "" } else { under };
    let files = repos.read_tree(url, head, under, limits)?;
    let mut found = Vec::new();
    for f in files {
        if !(f.path.ends_with(".yaml") || f.path.ends_with(".yml")) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(&f.data) else {
            continue;
        };
        if !text.contains(app) || !text.contains("Application") {
            continue;
        }
        let defines = mooring_core::yaml::parse_all(text)
            .map(|docs| {
                docs.iter().any(|d| {
                    d.get("kind").and_then(|k| k.as_str()) == Some("Application")
                        && d.pointer("/metadata/name").and_then(|n| n.as_str()) == Some(app)
                })
            })
            .unwrap_or(false);
        if defines {
            found.push(if under.is_empty() {
                f.path
            } else {
                format!("{under}/{}", f.path)
            });
        }
    }
    match found.len() {
        1 => Ok(found.pop()),
        0 => {
            warnings.push(format!(
                "the Application {app} pins targetRevision to a commit, and no file of {}{} defines it: update its targetRevision where it is defined (or give the file)",
                redact_url(url),
                if under.is_empty() { String::new() } else { format!(" under {under}") }
            ));
            Ok(None)
        }
        _ => Err(Error::Spec {
            app: app.to_string(),
            reason: format!(
                "several files define it ({}); give the one to update",
                found.join(", ")
            ),
        }),
    }
}
