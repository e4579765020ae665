//! `mooring rollback git APP --to REV --reason TEXT`: the seed's Git rollback runbook as a
//! command. The work is `mooring_controller::git_rollback::run` (shared with the
//! RollbackPolicy's `gitRevert`); this module reads the Application, its project, the
//! repository credentials and the forge token from the management cluster, and prints.
//!
//! Exit codes: 0 done (or a dry run printed), 2 usage or runtime error (nothing pushed
//! unless the message says the branch was).

use crate::output::{emit, Output};
use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use mooring_controller::forge::ForgeKind;
use mooring_controller::git_rollback::{self, Mode};
use mooring_k8s::k8s_openapi::api::core::v1::Secret;
use mooring_k8s::kube;
use std::process::ExitCode;

/// The environment variable holding a forge token when no Secret is named.
pub const TOKEN_ENV: &str = "MOORING_FORGE_TOKEN";

#[derive(Subcommand, Debug)]
pub enum RollbackCommand {
    /// Revert, on a branch `rollback/APP/YYYYMMDD_HHMMSS`, the commits after REV that touch
    /// APP's render inputs; push it and open a pull request.
    Git(GitArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ForgeArg {
    Github,
    Gitlab,
    Gitea,
}

#[derive(Args, Debug)]
pub struct GitArgs {
    /// The Application (`NAME` or `NAMESPACE/NAME`).
    pub app: String,
    /// The good revision to roll back to (commit SHA, tag or branch).
    #[arg(long)]
    pub to: String,
    /// Why (goes into the commit message and the pull request).
    #[arg(long)]
    pub reason: String,
    /// Print the diff, the commit message and the pull request without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Push the rollback branch (or, with --direct, the tracked branch).
    #[arg(long)]
    pub push: bool,
    /// Open a pull request on this forge after the push.
    #[arg(long, value_enum)]
    pub pr: Option<ForgeArg>,
    /// Commit on the tracked branch itself instead of a rollback branch (refused if the
    /// branch moved meanwhile: the push is never forced).
    #[arg(long)]
    pub direct: bool,
    /// Revert every commit after REV, not only those touching the app.
    #[arg(long)]
    pub all: bool,
    /// Reviewers of the pull request (repeatable, or comma-separated).
    #[arg(long = "reviewer", value_delimiter = ',')]
    pub reviewers: Vec<String>,
    /// Who initiated the rollback (default: `git config user.name`, then $USER).
    #[arg(long)]
    pub initiator: Option<String>,
    /// Author and committer name of the revert commit (default: the initiator).
    #[arg(long)]
    pub author_name: Option<String>,
    /// Author and committer e-mail (default: `git config user.email`).
    #[arg(long)]
    pub author_email: Option<String>,
    /// The branch to revert on (default: the source's targetRevision when it is a branch).
    #[arg(long)]
    pub branch: Option<String>,
    /// The repository file defining the Application, when it pins targetRevision to a
    /// commit (default: the one file at the branch head that defines it).
    #[arg(long)]
    pub app_file: Option<String>,
    /// 1-based position in spec.sources of the source to roll back (multi-source apps).
    #[arg(long)]
    pub source_position: Option<usize>,
    /// The forge's API base URL (default: from the repository URL's host).
    #[arg(long)]
    pub forge_url: Option<String>,
    /// Secret `NAME[/KEY]` in the control-plane namespace holding the forge token (key
    /// default `token`); else $MOORING_FORGE_TOKEN.
    #[arg(long)]
    pub token_secret: Option<String>,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(cmd: RollbackCommand, common: crate::app::Common) -> anyhow::Result<ExitCode> {
    let RollbackCommand::Git(args) = cmd;
    if args.direct && args.pr.is_some() {
        bail!("--direct commits on the tracked branch; it cannot be combined with --pr");
    }
    if args.dry_run && args.push {
        bail!("--dry-run writes nothing; it cannot be combined with --push");
    }
    if args.pr.is_some() && !args.push && !args.dry_run {
        bail!("--pr needs --push (the pull request is opened from the pushed branch)");
    }
    if args.source_position == Some(0) {
        bail!("--source-position is 1-based (the first source is 1)");
    }
    if args.reason.trim().is_empty() {
        bail!("--reason must not be empty");
    }
    let m = crate::connect::connect(&common.management).await?;
    let (ns, name) = mooring_core::app::qualified_name(&args.app, common.app_namespace(&m));
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        m.client.clone(),
        ns,
        &mooring_k8s::resources::application_resource(),
    );
    let (ctx, app) = crate::app::offline(&m, &api, name).await?;
    // The project must allow the app's repository (and the rest of the app), as for a sync.
    if let Err(why) = mooring_controller::project::check_app(&ctx, &app).await? {
        bail!("application {name}: {why}");
    }
    let index = args.source_position.map(|p| p.saturating_sub(1));
    let tracked = match index {
        Some(i) => app.sources().get(i),
        None => app.source(),
    }
    .and_then(|s| s.target_revision.clone())
    .unwrap_or_default();
    if args.branch.is_none() && mooring_engine::git_rollback::pins_commit(&tracked) {
        bail!("application {name} pins targetRevision to {tracked}; give the branch to revert on with --branch");
    }
    load_credentials(&m, &ctx).await?;
    let pr = match args.pr {
        Some(kind) => Some(git_rollback::PrAsk {
            kind: match kind {
                ForgeArg::Github => ForgeKind::Github,
                ForgeArg::Gitlab => ForgeKind::Gitlab,
                ForgeArg::Gitea => ForgeKind::Gitea,
            },
            api_url: args.forge_url.clone(),
            // A dry run only prints the pull request.
            token: if args.dry_run {
                String::new()
            } else {
                forge_token(&m, args.token_secret.as_deref()).await?
            },
            reviewers: args.reviewers.clone(),
        }),
        None => None,
    };
    ctx.outbound.load_config(m.client.clone()).await;

    let initiator = args
        .initiator
        .clone()
        .or_else(|| git_config("user.name"))
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let author = mooring_source::Identity {
        name: args
            .author_name
            .clone()
            .unwrap_or_else(|| initiator.clone()),
        email: args
            .author_email
            .clone()
            .or_else(|| git_config("user.email"))
            .unwrap_or_else(|| "rollback@mooring.invalid".into()),
    };
    let ask = git_rollback::Ask {
        to: args.to.clone(),
        reason: args.reason.clone(),
        initiator,
        author,
        mode: if args.direct {
            Mode::Direct
        } else {
            Mode::Branch
        },
        branch: args.branch.clone(),
        all: args.all,
        app_file: args.app_file.clone(),
        source_index: index,
        dry_run: args.dry_run,
        push: args.push,
        pr,
        now: mooring_core::time::now(),
    };
    let request = git_rollback::request_for(&ctx, app, ask).await?;
    let outcome = git_rollback::run(ctx.repos.clone(), &ctx.outbound, request).await?;
    if args.output != Output::Table {
        emit(&outcome, args.output)?;
        return Ok(ExitCode::SUCCESS);
    }
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "Rollback {} to {} ({}) on {} of {}",
        outcome.app,
        args.to,
        outcome.target.short(),
        outcome.base_branch,
        outcome.repo_url
    );
    println!("Reverted ({}):", outcome.reverted.len());
    for c in &outcome.reverted {
        println!("  {} {}", c.id.short(), c.summary);
    }
    if !outcome.kept.is_empty() {
        println!("Kept, other apps' changes ({}):", outcome.kept.len());
        for c in &outcome.kept {
            println!("  {} {}", c.id.short(), c.summary);
        }
    }
    if let Some(f) = &outcome.manifest {
        println!("Application manifest updated: {f}");
    }
    if outcome.dry_run {
        println!("\nDry run: nothing written or pushed.\n");
        println!(
            "Branch: {}\n\nCommit message:\n{}",
            outcome.branch, outcome.message
        );
        print!("{}", outcome.diff);
        if args.pr.is_some() {
            println!(
                "\nPull request: {}\n\n{}",
                outcome.pr_title, outcome.pr_body
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("Commit {} on {}", outcome.commit, outcome.branch);
    if outcome.pushed {
        println!("Pushed {}", outcome.branch);
    } else {
        println!("Not pushed (pass --push to push {})", outcome.branch);
    }
    if let Some(pr) = &outcome.pull_request {
        println!("Pull request #{}: {}", pr.number, pr.url);
    }
    Ok(ExitCode::SUCCESS)
}

/// Load the repository Secrets of the control-plane namespace into the context's
/// credential index, as the controller's watch does.
pub(crate) async fn load_credentials(
    m: &crate::connect::Management,
    ctx: &mooring_controller::Context,
) -> anyhow::Result<()> {
    let api: kube::Api<Secret> = kube::Api::namespaced(m.client.clone(), m.namespace());
    let lp = kube::api::ListParams::default()
        .labels("argocd.argoproj.io/secret-type in (repository,repo-creds)");
    let list = api
        .list(&lp)
        .await
        .with_context(|| format!("listing repository Secrets in {}", m.namespace()))?;
    let mut index = ctx
        .credentials
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for s in list.items {
        let name = s.metadata.name.clone().unwrap_or_default();
        match mooring_source::RepoSecret::parse(&serde_json::to_value(&s)?) {
            Ok(secret) => index.insert(secret),
            Err(e) => eprintln!("warning: repository Secret {name} ignored: {e}"),
        }
    }
    Ok(())
}

/// The forge token: Secret `NAME[/KEY]` in the control-plane namespace, else the
/// environment.
async fn forge_token(
    m: &crate::connect::Management,
    secret: Option<&str>,
) -> anyhow::Result<String> {
    let Some(reference) = secret else {
        return match std::env::var(TOKEN_ENV) {
            Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
            _ => bail!(
                "no forge token: give --token-secret NAME[/KEY] (a Secret in {}) or set {TOKEN_ENV}",
                m.namespace()
            ),
        };
    };
    let (name, key) = reference.split_once('/').unwrap_or((reference, "token"));
    let api: kube::Api<Secret> = kube::Api::namespaced(m.client.clone(), m.namespace());
    let s = api
        .get_opt(name)
        .await
        .with_context(|| format!("reading Secret {}/{name}", m.namespace()))?
        .with_context(|| format!("forge token Secret {}/{name} not found", m.namespace()))?;
    let value = s
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
        .or_else(|| {
            s.string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|v| v.trim().to_string())
        })
        .filter(|t| !t.is_empty());
    value.with_context(|| {
        format!(
            "Secret {}/{name} has no key {key:?} with the forge token",
            m.namespace()
        )
    })
}

/// `git config --get KEY` of the user running the command, if set.
pub(crate) fn git_config(key: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["config", "--get", key])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
}
