//! The RollbackPolicy's Git side: `spec.gitRevert` (revert the bad commits once, with the
//! code of `mooring rollback git`) and the check that lets automated sync resume (Git
//! renders the good revision again).

use super::{secret_value, write_status};
use crate::Context;
use mooring_core::app::Application;
use mooring_core::rollback::{
    ApplicationRollbackStatus, GitRevertMode, GitRevertRecord, RollbackPolicy, RollbackPolicyStatus,
};
use serde_json::json;

/// `spec.gitRevert`: after a rollback (a sync back to a revision, or an aborted Rollout
/// returning to its stable revision, `toRevision`), revert the bad commits in Git
/// (`crate::git_rollback`, what `mooring rollback git` does), at most once per rollback:
/// the attempt is recorded (`Pending`) in the policy status before any Git work, so a
/// controller restarted in between never pushes a second revert. The outcome (commit,
/// branch, pull request, or the error) goes to the status and to an Event on the
/// Application (`GitRevertPushed` / `GitRevertFailed`), which notifications subscribe to.
///
/// The Git work runs inline: the loop is the only writer of the policy's status, and a
/// revert of a local clone takes well under a second (a remote push and pull request
/// longer; other policies wait meanwhile).
pub(super) async fn git_revert_once(
    ctx: &Context,
    p: &RollbackPolicy,
    app: &Application,
    reason: &str,
    statuses: &mut [ApplicationRollbackStatus],
    i: usize,
    status: &RollbackPolicyStatus,
) {
    let Some(spec) = p.spec.git_revert.as_ref() else {
        return;
    };
    let Some(record) = statuses[i].last_rollback.clone() else {
        return;
    };
    let (Some(to), "syncRevision" | "abortRollout") =
        (record.to_revision.clone(), record.mode.as_str())
    else {
        return;
    };
    if statuses[i]
        .git_revert
        .as_ref()
        .is_some_and(|g| g.rollback_at == record.at)
    {
        return;
    }
    statuses[i].git_revert = Some(GitRevertRecord {
        rollback_at: record.at.clone(),
        phase: "Pending".into(),
        ..Default::default()
    });
    let mut pending = status.clone();
    pending.applications = statuses.to_vec();
    if let Err(e) = write_status(ctx, p.namespace(), p.name(), &pending).await {
        tracing::warn!(
            "recording the git revert of {}: {e}; not reverting",
            app.name()
        );
        return;
    }
    let result = git_revert(ctx, p, spec, app, &to, reason).await;
    let (phase, event_type, event_reason, message) = match &result {
        Ok(o) => {
            let pr = o
                .pull_request
                .as_ref()
                .map(|pr| format!("; pull request {}", pr.url))
                .unwrap_or_default();
            (
                "Pushed",
                crate::events::EventType::Normal,
                "GitRevertPushed",
                format!(
                    "reverted {} commit(s) after {to} on {} ({}), commit {}{pr}",
                    o.reverted.len(),
                    o.branch,
                    o.repo_url,
                    o.commit
                ),
            )
        }
        Err(e) => (
            "Failed",
            crate::events::EventType::Warning,
            "GitRevertFailed",
            format!("reverting Git to {to} failed: {e}"),
        ),
    };
    statuses[i].git_revert = Some(GitRevertRecord {
        rollback_at: record.at.clone(),
        phase: phase.into(),
        branch: result.as_ref().ok().map(|o| o.branch.clone()),
        commit: result.as_ref().ok().map(|o| o.commit.to_string()),
        pull_request_url: result
            .as_ref()
            .ok()
            .and_then(|o| o.pull_request.as_ref().map(|pr| pr.url.clone())),
        message: message.clone(),
    });
    let object = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": app.metadata,
    });
    crate::events::record(
        ctx,
        &object,
        event_type,
        event_reason,
        &message,
        "mooring-rollback",
    )
    .await;
}

/// The Git revert itself, with the repository credentials the controller uses for the
/// app's source and, for a pull request, the forge token from the policy's namespace.
async fn git_revert(
    ctx: &Context,
    p: &RollbackPolicy,
    spec: &mooring_core::rollback::GitRevertSpec,
    app: &Application,
    to: &str,
    reason: &str,
) -> Result<crate::git_rollback::Outcome, String> {
    use crate::git_rollback::{Ask, Mode, PrAsk};
    if app.sources().is_empty() {
        return Err("the application has no source".into());
    }
    if app.sources().len() > 1 {
        return Err("gitRevert reverts single-source applications only".into());
    }
    let pr = match (spec.mode, spec.pull_request.as_ref()) {
        (GitRevertMode::Direct, _) => None,
        (GitRevertMode::PullRequest, None) => {
            return Err("gitRevert.mode pullRequest needs gitRevert.pullRequest".into())
        }
        (GitRevertMode::PullRequest, Some(pr)) => Some(PrAsk {
            kind: pr.provider.parse().map_err(|e| format!("{e}"))?,
            api_url: pr.api_url.clone(),
            token: secret_value(ctx, p.namespace(), &pr.token_secret_ref).await?,
            reviewers: pr.reviewers.clone(),
        }),
    };
    // The fetch URL, the repository Secret's credentials, the parent Application (an
    // app-of-apps manifest pinned to a commit follows the revert) and the forge
    // repository come from `request_for`, as for `mooring rollback git`.
    let ask = Ask {
        to: to.to_string(),
        reason: reason.to_string(),
        initiator: format!("RollbackPolicy {}/{}", p.namespace(), p.name()),
        author: mooring_source::Identity {
            name: "Mooring RollbackPolicy".into(),
            email: "rollback-policy@mooring.invalid".into(),
        },
        mode: match spec.mode {
            GitRevertMode::Direct => Mode::Direct,
            GitRevertMode::PullRequest => Mode::Branch,
        },
        branch: None,
        all: spec.all,
        app_file: None,
        source_index: None,
        dry_run: false,
        push: true,
        pr,
        now: mooring_core::time::now(),
    };
    let request = crate::git_rollback::request_for(ctx, app.clone(), ask)
        .await
        .map_err(|e| e.to_string())?;
    crate::git_rollback::run(ctx.repos.clone(), &ctx.outbound, request)
        .await
        .map_err(|e| e.to_string())
}

/// Whether Git's head (as the controller last compared it) renders for the app what the
/// rolled-back revision `to` rendered, and is not the bad revision `from`
/// ([`crate::git_rollback::renders_same`]). Single-source apps; any doubt (a commit not
/// in the cache, an unreadable tree) is "no".
pub(super) async fn git_renders(ctx: &Context, app: &Application, from: &str, to: &str) -> bool {
    let Some(head) = app.status.as_ref().and_then(|s| s.sync.revision.clone()) else {
        return false;
    };
    let [source] = app.sources() else {
        return false;
    };
    if head == from {
        return false;
    }
    let (Ok(head), Ok(target)) = (
        head.parse::<mooring_source::CommitId>(),
        to.parse::<mooring_source::CommitId>(),
    ) else {
        return false;
    };
    let repos = ctx.repos.clone();
    let url = ctx.fetch_url(&source.repo_url);
    let source = source.clone();
    tokio::task::spawn_blocking(move || {
        crate::git_rollback::renders_same(
            &repos,
            &url,
            &source,
            &target,
            &head,
            &mooring_source::Limits::default(),
        )
    })
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or(false)
}
