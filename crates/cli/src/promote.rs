//! `mooring promote APP --revision REV | --image NAME=REF`: the hybrid delivery model's CI
//! job in one command. CI commits to the GitOps repository; the controller deploys.
//!
//! * `--revision REV` sets the Application manifest's `targetRevision` (of `spec.source`,
//!   or of the source at `--source-position`) in the file that defines it: the one YAML
//!   file under the path of the Application that deploys it (app-of-apps, found by its
//!   tracking id as `mooring rollback git` does), in that parent's repository.
//! * `--image NAME=REF` sets one entry of `images:` in the kustomization of the app's
//!   source path, in the app's own repository (`kustomize edit set image` syntax).
//!
//! Both edits keep every other byte of the file and are checked by parsing the result
//! (`mooring_engine::delivery`). The commit (`promote APP: … OLD → NEW`, plus who
//! promoted) is made on the branch's head through the repository Secret's credentials and
//! pushed, never forced; when the branch moved meanwhile, the edit is made again on the
//! new head (`mooring_source::RepoCache::update_branch`, the image watcher's write-back
//! loop, [`ATTEMPTS`] attempts).
//!
//! `--push` decides whether anything is written: Argo CD has no promote, and a CI job
//! wants to see the change before making it, so without `--push` the diff and the commit
//! message are printed and nothing is stored or sent (a dry run). `--wait` (needs
//! `--push`) then follows the app until it is Synced and Healthy at the promoted commit.
//!
//! Exit codes: 0 promoted (or previewed, or already there), 1 `--wait` timed out or the
//! app is Degraded, 2 usage or runtime error (nothing pushed).

use crate::output::{emit, Output};
use anyhow::{bail, Context as _};
use clap::Args;
use mooring_controller::git_rollback;
use mooring_engine::delivery::{self, ImageSpec, Promotion};
use mooring_engine::git_rollback as rules;
use mooring_k8s::kube;
use mooring_k8s::kube::api::{DynamicObject, Patch, PatchParams};
use mooring_source::{BranchEdit, CommitId, Credentials, RepoCache, UpdateOptions};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("change").required(true).args(["revision", "image"])))]
pub struct PromoteArgs {
    /// The Application (`NAME` or `NAMESPACE/NAME`), or with --env the app's base name.
    pub app: String,
    /// Set the Application manifest's targetRevision to REV (branch, tag or commit).
    #[arg(long)]
    pub revision: Option<String>,
    /// Set an image of the app's kustomization: `NAME=NEWNAME[:TAG][@DIGEST]`, `NAME:TAG`
    /// or `NAME@DIGEST` (as `kustomize edit set image`).
    #[arg(long)]
    pub image: Option<String>,
    /// The environment: the app `APP-ENV`, or the app labelled `environment: ENV`.
    #[arg(long)]
    pub env: Option<String>,
    /// Commit and push. Without it the diff and the commit message are printed and
    /// nothing is written.
    #[arg(long)]
    pub push: bool,
    /// Wait until the app is Synced and Healthy at the promoted commit (needs --push).
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait waits.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// The branch to commit to (default: the tracked branch: the parent Application's
    /// targetRevision for --revision, the app's own for --image).
    #[arg(long)]
    pub branch: Option<String>,
    /// A line added to the commit message (a release note, the CI run's URL).
    #[arg(long)]
    pub message: Option<String>,
    /// 1-based position in spec.sources of the source to promote (multi-source apps).
    #[arg(long)]
    pub source_position: Option<usize>,
    /// Who promoted (default: `git config user.name`, then $USER).
    #[arg(long)]
    pub initiator: Option<String>,
    /// Author e-mail of the commit (default: `git config user.email`).
    #[arg(long)]
    pub author_email: Option<String>,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// What `-o json` prints.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Outcome {
    app: String,
    promotion: Promotion,
    repo_url: String,
    branch: String,
    file: String,
    base: CommitId,
    commit: Option<CommitId>,
    attempts: usize,
    pushed: bool,
    message: String,
    diff: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    waited: Option<String>,
}

/// The edit to make, decided before any Git work.
enum Change {
    Revision {
        rev: String,
        source_index: Option<usize>,
    },
    Image(ImageSpec),
}

pub async fn run(args: PromoteArgs, common: crate::app::Common) -> anyhow::Result<ExitCode> {
    if args.wait && !args.push {
        bail!("--wait follows the pushed commit; it needs --push");
    }
    if args.source_position == Some(0) {
        bail!("--source-position is 1-based (the first source is 1)");
    }
    if args.app.starts_with('-') {
        bail!("application name {:?} must not start with '-'", args.app);
    }
    let change = match (&args.revision, &args.image) {
        (Some(rev), None) => {
            validate_revision(rev)?;
            Change::Revision {
                rev: rev.trim().to_string(),
                source_index: args.source_position.map(|p| p - 1),
            }
        }
        (None, Some(image)) => Change::Image(ImageSpec::parse(image)?),
        _ => bail!("give exactly one of --revision and --image"),
    };
    if let Some(b) = &args.branch {
        mooring_source::validate_branch(b)?;
    }

    let m = crate::connect::connect(&common.management).await?;
    let default_ns = common.app_namespace(&m).to_string();
    let (ns, base_name) = mooring_core::app::qualified_name(&args.app, &default_ns);
    let api: kube::Api<DynamicObject> = kube::Api::namespaced_with(
        m.client.clone(),
        ns,
        &mooring_k8s::resources::application_resource(),
    );
    let name = match &args.env {
        Some(env) => {
            let list = api
                .list(&Default::default())
                .await
                .with_context(|| format!("listing Applications in {ns}"))?;
            let apps: Vec<(String, std::collections::BTreeMap<String, String>)> = list
                .items
                .into_iter()
                .map(|a| {
                    (
                        a.metadata.name.unwrap_or_default(),
                        a.metadata.labels.unwrap_or_default(),
                    )
                })
                .collect();
            delivery::env_app(&apps, base_name, env)?
        }
        None => base_name.to_string(),
    };
    let (ctx, app) = crate::app::offline(&m, &api, &name).await?;
    if let Err(why) = mooring_controller::project::check_app(&ctx, &app).await? {
        bail!("application {name}: {why}");
    }
    crate::rollback::load_credentials(&m, &ctx).await?;

    let initiator = args
        .initiator
        .clone()
        .or_else(|| crate::rollback::git_config("user.name"))
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let author = mooring_source::Identity {
        name: initiator.clone(),
        email: args
            .author_email
            .clone()
            .or_else(|| crate::rollback::git_config("user.email"))
            .unwrap_or_else(|| "promote@mooring.invalid".into()),
    };

    // Where: repository, credentials, branch, and the directory the file is in.
    let index = match &change {
        Change::Revision { source_index, .. } => *source_index,
        Change::Image(_) => args.source_position.map(|p| p - 1),
    };
    let (source, source_index) = git_rollback::pick_source(&app, index)?;
    let target = match &change {
        Change::Revision { .. } => {
            let parent = git_rollback::parent_of(&ctx, &app).await?.with_context(|| {
                format!(
                    "application {name} is not deployed by another Application (no tracking id naming a parent): its manifest is not in a GitOps repository Mooring deploys from, so there is nothing to promote in Git"
                )
            })?;
            let ps = parent.source().cloned().with_context(|| {
                format!("the parent Application {} has no source", parent.name())
            })?;
            let url = ctx.fetch_url(&ps.repo_url);
            Target {
                credentials: ctx.credentials_for(
                    &url,
                    Some(mooring_controller::project::project_name(&parent)),
                ),
                repo_url: url,
                branch: branch_of(
                    args.branch.as_deref(),
                    ps.target_revision.as_deref(),
                    parent.name(),
                )?,
                dir: ps.path.clone().unwrap_or_default(),
            }
        }
        Change::Image(_) => {
            if source.chart.is_some() {
                bail!("application {name}: its source is a Helm chart, not a kustomization in Git");
            }
            let url = ctx.fetch_url(&source.repo_url);
            Target {
                credentials: ctx
                    .credentials_for(&url, Some(mooring_controller::project::project_name(&app))),
                repo_url: url,
                branch: branch_of(
                    args.branch.as_deref(),
                    source.target_revision.as_deref(),
                    &name,
                )?,
                dir: source.path.clone().unwrap_or_default(),
            }
        }
    };

    let old_revision = source.target_revision.clone().unwrap_or_default();
    let work = Work {
        app: name.clone(),
        change,
        target: target.clone(),
        source_index,
        old_revision,
        initiator,
        author,
        message: args.message.clone(),
        push: args.push,
    };
    let repos = ctx.repos.clone();
    let mut outcome = tokio::task::spawn_blocking(move || commit(&repos, &work))
        .await
        .context("the Git work stopped")??;

    let mut code = ExitCode::SUCCESS;
    if args.wait && (outcome.pushed || outcome.diff.is_empty()) {
        let app_api: kube::Api<DynamicObject> = api.clone();
        let wanted = match &outcome.promotion {
            Promotion::TargetRevision { new, .. } => {
                let url = ctx.fetch_url(&source.repo_url);
                let creds = ctx
                    .credentials_for(&url, Some(mooring_controller::project::project_name(&app)));
                let repos = ctx.repos.clone();
                let rev = new.clone();
                let commit = tokio::task::spawn_blocking(move || repos.resolve(&url, &rev, &creds))
                    .await
                    .context("the Git work stopped")??;
                Wanted {
                    revision: Some(new.clone()),
                    commit,
                }
            }
            Promotion::Image { .. } => Wanted {
                revision: None,
                commit: outcome
                    .commit
                    .clone()
                    .unwrap_or_else(|| outcome.base.clone()),
            },
        };
        let parent = git_rollback::parent_of(&ctx, &app)
            .await?
            .map(|p| p.name().to_string());
        let (c, said) = wait(
            &app_api,
            &name,
            parent.as_deref(),
            source_index,
            &wanted,
            args.timeout,
        )
        .await?;
        code = c;
        outcome.waited = Some(said);
    }
    if args.output != Output::Table {
        emit(&outcome, args.output)?;
        return Ok(code);
    }
    if outcome.diff.is_empty() {
        println!(
            "{name} is already at {}: {} on {} of {} needs no change; nothing committed",
            match &outcome.promotion {
                Promotion::TargetRevision { new, .. } => new.clone(),
                Promotion::Image { new, .. } => new.clone(),
            },
            outcome.file,
            outcome.branch,
            outcome.repo_url
        );
    } else {
        print!("{}", outcome.diff);
        println!();
        println!("{}", outcome.message.trim_end());
        println!();
        match (&outcome.commit, outcome.pushed) {
            (Some(c), true) => println!(
                "Pushed {} to {} of {}{}",
                c.short(),
                outcome.branch,
                outcome.repo_url,
                if outcome.attempts > 1 {
                    format!(
                        " (the branch moved; edited again on the new head, attempt {})",
                        outcome.attempts
                    )
                } else {
                    String::new()
                }
            ),
            _ => println!(
                "Dry run: nothing committed or pushed (add --push to commit to {} of {})",
                outcome.branch, outcome.repo_url
            ),
        }
    }
    if let Some(w) = &outcome.waited {
        println!("{w}");
    }
    Ok(code)
}

/// A `--revision` that can only be a revision: no option, space or control character.
fn validate_revision(rev: &str) -> anyhow::Result<()> {
    let r = rev.trim();
    if r.is_empty() {
        bail!("--revision must not be empty");
    }
    if r.starts_with('-') {
        bail!("--revision {r:?} must not start with '-'");
    }
    if let Some(c) = r.chars().find(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\' | '"' | '#')
    }) {
        bail!("--revision {r:?}: {c:?} cannot be part of a branch, tag or commit");
    }
    Ok(())
}

/// The branch to commit to: the flag, else the tracked revision when it is a branch.
fn branch_of(flag: Option<&str>, tracked: Option<&str>, who: &str) -> anyhow::Result<String> {
    let b = rules::write_branch(flag, tracked).map_err(|t| {
        anyhow::anyhow!(
            "{who} tracks {t:?}, not a branch: give the branch to commit to with --branch"
        )
    })?;
    mooring_source::validate_branch(&b)?;
    Ok(b)
}

#[derive(Clone)]
struct Target {
    repo_url: String,
    credentials: Credentials,
    branch: String,
    /// The directory the file is in (the parent's path, or the app's source path).
    dir: String,
}

struct Work {
    app: String,
    change: Change,
    target: Target,
    source_index: Option<usize>,
    old_revision: String,
    initiator: String,
    author: mooring_source::Identity,
    message: Option<String>,
    push: bool,
}

/// Find the file at the branch head, make the edit there, commit and (with `push`) push,
/// redoing the edit on the new head when the branch moved.
fn commit(repos: &RepoCache, w: &Work) -> anyhow::Result<Outcome> {
    let t = &w.target;
    let head = repos.resolve(
        &t.repo_url,
        &format!("refs/heads/{}", t.branch),
        &t.credentials,
    )?;
    let limits = mooring_source::Limits::default();
    let (file, promotion) = match &w.change {
        Change::Revision { rev, .. } => {
            let mut warnings = Vec::new();
            let file = git_rollback::find_manifest(
                repos,
                &t.repo_url,
                &head,
                &w.app,
                None,
                &t.dir,
                &limits,
                &mut warnings,
            )?
            .with_context(|| {
                format!(
                    "no YAML file under {} of {} (branch {}) defines the Application {}",
                    if t.dir.is_empty() { "." } else { &t.dir },
                    mooring_source::redact_url(&t.repo_url),
                    t.branch,
                    w.app
                )
            })?;
            (
                file,
                Promotion::TargetRevision {
                    old: w.old_revision.clone(),
                    new: rev.clone(),
                },
            )
        }
        Change::Image(spec) => {
            let dir = t.dir.trim_start_matches("./").trim_matches('/');
            let dir = if dir == "." { "" } else { dir };
            let mut found = None;
            for name in mooring_core::files::KUSTOMIZATION_FILES {
                let path = if dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{dir}/{name}")
                };
                if let Some(bytes) = repos.read_file(&t.repo_url, &head, &path)? {
                    found = Some((path, bytes));
                    break;
                }
            }
            let (file, bytes) = found.with_context(|| {
                format!(
                    "{} of {} (branch {}) has no kustomization: --image edits a kustomization's images:",
                    if dir.is_empty() { "." } else { dir },
                    mooring_source::redact_url(&t.repo_url),
                    t.branch
                )
            })?;
            let old = std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| mooring_core::yaml::parse_one(s).ok())
                .and_then(|doc| delivery::current_image(&doc, &spec.name));
            (
                file,
                Promotion::Image {
                    name: spec.name.clone(),
                    old,
                    new: spec.reference(),
                },
            )
        }
    };
    let edit = |text: &[u8]| -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(text).map_err(|_| format!("{file} is not UTF-8"))?;
        match &w.change {
            Change::Revision { rev, .. } => {
                { rules::set_target_revision(&file, text, &w.app, w.source_index, rev) }
                    .map_err(|e| e.to_string())
            }
            Change::Image(spec) => {
                delivery::set_kustomize_image(&file, text, spec).map_err(|e| e.to_string())
            }
        }
        .map(String::into_bytes)
    };
    let message =
        delivery::promotion_message(&w.app, &promotion, &w.initiator, w.message.as_deref());
    let url = t.repo_url.as_str();
    // The file at a head, edited: `None` when the edit changes nothing.
    let edited = |repos: &RepoCache,
                  head: &CommitId|
     -> Result<Option<BeforeAfter>, mooring_source::SourceError> {
        let failed = |reason: String| mooring_source::SourceError::EditFailed {
            url: mooring_source::redact_url(url),
            path: file.clone(),
            reason,
        };
        let before = repos
            .read_file(url, head, &file)?
            .ok_or_else(|| failed(format!("it is not in {}", head.short())))?;
        let after = edit(&before).map_err(failed)?;
        Ok((before != after).then_some((before, after)))
    };
    let outcome =
        |base: CommitId, commit: Option<CommitId>, attempts: u32, pushed: bool, diff: String| {
            Outcome {
                app: w.app.clone(),
                promotion: promotion.clone(),
                repo_url: mooring_source::redact_url(url),
                branch: t.branch.clone(),
                file: file.clone(),
                base,
                commit,
                attempts: attempts as usize,
                pushed,
                message: message.clone(),
                diff,
                waited: None,
            }
        };
    let diff_of = |(before, after): &(Vec<u8>, Vec<u8>)| {
        rules::file_diff(&file, Some(before.as_slice()), Some(after.as_slice()))
    };
    if !w.push {
        // A preview: the edit at the head, in memory; nothing stored or sent.
        let diff = edited(repos, &head)?
            .map(|c| diff_of(&c))
            .unwrap_or_default();
        return Ok(outcome(head, None, 1, false, diff));
    }
    // Commit and push (never forced); when the branch moved, the edit is made again on
    // the new head (`RepoCache::update_branch`, shared with the image watcher).
    let mut last_diff = String::new();
    let done = repos.update_branch(
        url,
        &t.credentials,
        &UpdateOptions {
            branch: &t.branch,
            author: &w.author,
            attempts: ATTEMPTS,
        },
        |repos, head| {
            let Some(change) = edited(repos, head)? else {
                return Ok(None);
            };
            last_diff = diff_of(&change);
            Ok(Some(BranchEdit {
                files: vec![(file.clone(), change.1)],
                message: message.clone(),
            }))
        },
        |_| Ok(()),
    )?;
    Ok(match done {
        Some(d) => outcome(d.parent, Some(d.commit), d.attempts, true, last_diff),
        None => outcome(head, None, 1, false, String::new()),
    })
}

/// A file's content before and after the edit.
type BeforeAfter = (Vec<u8>, Vec<u8>);

/// Attempts of the fetch-edit-push loop before giving up on a branch that keeps moving.
const ATTEMPTS: u32 = 5;

/// What `--wait` waits for.
struct Wanted {
    /// The app's targetRevision must be this (a `--revision` promotion).
    revision: Option<String>,
    /// The app must be synced at this commit.
    commit: CommitId,
}

/// Follow the app (asking the controller to refresh it, and its parent, so the new commit
/// is seen without waiting for the poll) until it is Synced and Healthy at the commit.
async fn wait(
    api: &kube::Api<DynamicObject>,
    name: &str,
    parent: Option<&str>,
    source_index: Option<usize>,
    wanted: &Wanted,
    timeout: u64,
) -> anyhow::Result<(ExitCode, String)> {
    let start = Instant::now();
    let mut last = String::new();
    let mut last_refresh: Option<Instant> = None;
    let (rev_ptr, synced_ptr) = match source_index {
        None => (
            "/spec/source/targetRevision".to_string(),
            "/status/sync/revision".to_string(),
        ),
        Some(i) => (
            format!("/spec/sources/{i}/targetRevision"),
            format!("/status/sync/revisions/{i}"),
        ),
    };
    loop {
        if last_refresh.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
            for who in std::iter::once(name).chain(parent) {
                let _ = api
                    .patch(
                        who,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"annotations": {
                            mooring_controller::reconcile::REFRESH_ANNOTATION: "normal"}}})),
                    )
                    .await;
            }
            last_refresh = Some(Instant::now());
        }
        let a = crate::app::get_app(api, name).await?;
        let s = |p: &str| {
            a.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (rev, synced, sync, health) = (
            s(&rev_ptr),
            s(&synced_ptr),
            s("/status/sync/status"),
            s("/status/health/status"),
        );
        let at_rev = wanted.revision.as_ref().is_none_or(|r| *r == rev);
        let at_commit = synced == wanted.commit.as_str();
        let line = format!(
            "{name}: targetRevision {rev}  synced at {}  sync {sync}  health {health}",
            if synced.is_empty() {
                "-"
            } else {
                &synced[..synced.len().min(12)]
            }
        );
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        if at_rev && at_commit && sync == "Synced" && health == "Healthy" {
            return Ok((
                ExitCode::SUCCESS,
                format!("{name} is Synced and Healthy at {}", wanted.commit.short()),
            ));
        }
        if at_rev && at_commit && sync == "Synced" && health == "Degraded" {
            return Ok((
                ExitCode::from(1),
                format!("{name} is synced at {} but Degraded", wanted.commit.short()),
            ));
        }
        if start.elapsed() > Duration::from_secs(timeout) {
            return Ok((
                ExitCode::from(1),
                format!(
                    "timed out after {timeout}s waiting for {name} to be Synced and Healthy at {}; see `mooring app get {name}`",
                    wanted.commit.short()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
