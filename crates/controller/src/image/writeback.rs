//! Writing an image change back: a commit (through the policy gate) or a parameter
//! override on the Application. See the module docs of [`super`].

use crate::Context;
use mooring_core::app::Revisions;
use mooring_core::app::{Application, ApplicationSource};
use mooring_engine::image::registries::Settings;
use mooring_engine::image::writeback::ParameterKind;
use mooring_engine::image::{
    self as rules, ImageChange, UpdateConfig, WriteBackMethod, WriteBackTarget,
};
use mooring_source::{BranchEdit, Credentials, Identity, SourceError, UpdateOptions};
use std::sync::Arc;

/// Attempts of a Git write-back when the branch keeps moving.
const ATTEMPTS: u32 = 5;

/// A write-back that did not happen.
#[derive(Debug)]
pub(super) struct WriteBackError {
    pub message: String,
    /// The policy gate refused it (reported as a Warning Event too).
    pub refused: bool,
}

impl WriteBackError {
    fn new(message: impl Into<String>) -> Self {
        WriteBackError {
            message: message.into(),
            refused: false,
        }
    }
}

/// Write `changes` back as `config` says. `Ok(Some(summary))` when something was written,
/// `Ok(None)` when Git already had it.
pub(super) async fn write_back(
    ctx: &Arc<Context>,
    app: &Application,
    config: &UpdateConfig,
    settings: &Settings,
    changes: &[ImageChange],
) -> Result<Option<String>, WriteBackError> {
    // The watcher's copy comes from the Application watch's store, which can lag behind
    // a write-back this watcher has just made: decide on what the API server has now, so
    // an override already written is not written (and counted) again.
    let fresh = ctx.fresh_app(app).await;
    let app = fresh.as_ref().unwrap_or(app);
    if app.has_multiple_sources() {
        return Err(WriteBackError::new(
            "the image updater writes back to single-source applications only (spec.source); this one uses spec.sources",
        ));
    }
    let source = app
        .source()
        .ok_or_else(|| WriteBackError::new("the application has no source"))?;
    match &config.method {
        WriteBackMethod::Argocd => argocd(ctx, app, source, config, changes).await,
        WriteBackMethod::Git { secret } => {
            git(ctx, app, source, config, settings, secret.as_ref(), changes).await
        }
    }
}

/// `write-back-method: argocd`: merge the override into `spec.source`.
async fn argocd(
    ctx: &Context,
    app: &Application,
    source: &ApplicationSource,
    config: &UpdateConfig,
    changes: &[ImageChange],
) -> Result<Option<String>, WriteBackError> {
    let patch = rules::writeback::argocd_override(source, changes, kind(app, source, config))
        .map_err(|e| WriteBackError::new(e.to_string()))?;
    if patch.pointer("/spec/source").is_some_and(|p| {
        let current = serde_json::to_value(source).unwrap_or_default();
        super::merge_patch_changes_nothing(&current, p)
    }) {
        return Ok(None);
    }
    ctx.patch_app(app, patch)
        .await
        .map_err(|e| WriteBackError::new(e.to_string()))?;
    Ok(Some(format!(
        "set {} as a parameter override of the application",
        describe(changes)
    )))
}

fn describe(changes: &[ImageChange]) -> String {
    changes
        .iter()
        .map(|c| match &c.new_digest {
            Some(d) => format!("{}:{}@{d}", c.name, c.new_tag),
            None => format!("{}:{}", c.name, c.new_tag),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the images are set as Helm parameters (a Helm source, or helm parameter
/// names given) or kustomize images, as Image Updater decides by the source type.
fn kind<'a>(
    app: &Application,
    source: &ApplicationSource,
    config: &'a UpdateConfig,
) -> ParameterKind<'a> {
    let helm_source = source.helm.is_some()
        || app.status.as_ref().and_then(|s| s.source_type.as_deref()) == Some("Helm");
    let helm_names = config.images.iter().any(|i| {
        i.helm_image_name.is_some() || i.helm_image_tag.is_some() || i.helm_image_spec.is_some()
    });
    if helm_source || helm_names {
        ParameterKind::Helm {
            images: &config.images,
        }
    } else {
        ParameterKind::Kustomize
    }
}

/// The repository file a Git write-back edits, relative to the repository root: Argo
/// CD's parameter file of the app (named after its instance name, as the renderer reads
/// it), or the kustomization file of `write-back-target: kustomization[:PATH]`.
fn target_file(
    instance: &str,
    source: &ApplicationSource,
    target: &WriteBackTarget,
    exists: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let join = |dir: &str, file: &str| {
        if dir.is_empty() {
            file.to_string()
        } else {
            format!("{dir}/{file}")
        }
    };
    let base = rules::writeback::kustomization_dir(source.path.as_deref().unwrap_or(""), None)
        .map_err(|e| e.to_string())?;
    Ok(match target {
        WriteBackTarget::ParameterFile => {
            join(&base, &mooring_render::app_parameter_file(instance))
        }
        WriteBackTarget::Kustomization { path } => {
            let dir = rules::writeback::kustomization_dir(
                source.path.as_deref().unwrap_or(""),
                path.as_deref(),
            )
            .map_err(|e| e.to_string())?;
            rules::writeback::KUSTOMIZATION_FILES
                .iter()
                .map(|f| join(&dir, f))
                .find(|f| exists(f))
                .ok_or_else(|| {
                    format!("write-back-target kustomization: there is no kustomization file in {dir:?}")
                })?
        }
    })
}

/// `write-back-method: git`: commit the edit on the branch, gated, never forced.
async fn git(
    ctx: &Arc<Context>,
    app: &Application,
    source: &ApplicationSource,
    config: &UpdateConfig,
    settings: &Settings,
    secret: Option<&(String, String)>,
    changes: &[ImageChange],
) -> Result<Option<String>, WriteBackError> {
    if let Some(b) = config.branch.as_deref().filter(|b| b.contains(':')) {
        return Err(WriteBackError::new(format!(
            "git-branch {b}: committing to a separate target branch (BASE:TARGET) is not supported; name the branch to commit to"
        )));
    }
    let branch = mooring_engine::git_rollback::write_branch(
        config.branch.as_deref(),
        source.target_revision.as_deref(),
    )
    .map_err(|t| {
        WriteBackError::new(format!(
            "the application tracks {t:?}, not a branch: set the git-branch annotation to the branch to commit to"
        ))
    })?;
    let url = ctx.fetch_url(&source.repo_url);
    let creds = match secret {
        Some((ns, name)) => secret_credentials(ctx, ns, name).await?,
        None => ctx.credentials_for(&url, Some(crate::project::project_name(app))),
    };
    let author = Identity {
        name: settings
            .git_user
            .clone()
            .unwrap_or_else(|| "mooring-image-updater".into()),
        email: settings
            .git_email
            .clone()
            .unwrap_or_else(|| "noreply@mooring.invalid".into()),
    };
    let message = rules::writeback::commit_message(
        app.name(),
        changes,
        settings.commit_message_template.as_deref(),
    )
    .map_err(|e| WriteBackError::new(e.to_string()))?;
    let instance = ctx.instance_name(app);
    let repos = ctx.repos.clone();
    let app_c = app.clone();
    let source_c = source.clone();
    let target = config.target.clone();
    let config_c = config.clone();
    let changes_c = changes.to_vec();
    let url_c = url.clone();
    let handle = tokio::runtime::Handle::current();
    let gate_ctx = GateContext { ctx: ctx.clone() };
    let mut file_edited = String::new();
    let result = tokio::task::spawn_blocking(move || {
        let edited = &mut file_edited;
        let r = repos.update_branch(
            &url_c,
            &creds,
            &UpdateOptions {
                branch: &branch,
                author: &author,
                attempts: ATTEMPTS,
            },
            |cache, head| {
                let read = |p: &str| cache.read_file(&url_c, head, p);
                let file = target_file(&instance, &source_c, &target, |p| {
                    matches!(read(p), Ok(Some(_)))
                })
                .map_err(|reason| SourceError::Refused {
                    url: mooring_source::redact_url(&url_c),
                    reason,
                })?;
                let existing = read(&file)?.map(|b| String::from_utf8_lossy(&b).into_owned());
                let new = match &target {
                    WriteBackTarget::Kustomization { .. } => rules::writeback::edit_kustomization(
                        existing.as_deref().unwrap_or_default(),
                        &changes_c,
                    ),
                    WriteBackTarget::ParameterFile => rules::writeback::parameter_file(
                        existing.as_deref(),
                        &changes_c,
                        kind(&app_c, &source_c, &config_c),
                    ),
                }
                .map_err(|e| SourceError::Refused {
                    url: mooring_source::redact_url(&url_c),
                    reason: format!("editing {file}: {e}"),
                })?;
                if existing.as_deref() == Some(new.as_str()) {
                    return Ok(None);
                }
                edited.clone_from(&file);
                Ok(Some(BranchEdit {
                    files: vec![(file, new.into_bytes())],
                    message: message.clone(),
                }))
            },
            |commit| handle.block_on(gate_ctx.check(&app_c, commit)),
        );
        (r, file_edited)
    })
    .await
    .map_err(|e| WriteBackError::new(e.to_string()))?;
    match result {
        (Ok(Some(done)), file) => Ok(Some(format!(
            "committed {} to {} ({}) as {}{}",
            describe(changes),
            mooring_source::redact_url(&source.repo_url),
            file,
            done.commit.short(),
            if done.attempts > 1 {
                format!(" after {} attempts (the branch moved)", done.attempts)
            } else {
                String::new()
            }
        ))),
        (Ok(None), _) => Ok(None),
        (Err(SourceError::Refused { reason, .. }), _) => Err(WriteBackError {
            refused: reason.starts_with(POLICY_PREFIX),
            message: format!("{} was not written back: {reason}", describe(changes)),
        }),
        (Err(e), _) => Err(WriteBackError::new(format!(
            "writing {} back to Git: {e}",
            describe(changes)
        ))),
    }
}

/// The start of a refusal by the policy gate.
const POLICY_PREFIX: &str = "the policy in force denies it";

/// What the gate of a write-back commit needs, owned, to run on the blocking thread.
struct GateContext {
    ctx: Arc<Context>,
}

impl GateContext {
    /// Render `app` at the unpushed `commit` and review it as a sync would be reviewed.
    async fn check(
        &self,
        app: &Application,
        commit: &mooring_source::CommitId,
    ) -> Result<(), String> {
        let ctx = self.ctx.as_ref();
        let cluster = ctx
            .cluster_for(&app.spec.destination)
            .map_err(|e| e.to_string())?;
        let overrides = Revisions::single(commit.to_string());
        let (_, desired) = crate::state::desired_state(ctx, app, &overrides, &cluster)
            .await
            .map_err(|e| format!("the application does not render at the new commit: {e}"))?;
        let live = cluster
            .managed(&ctx.instance_name(app))
            .map_err(|e| e.to_string())?;
        let verdict = crate::policy::review(ctx, app, &cluster, &desired, &live)
            .await
            .map_err(|e| e.to_string())?;
        if verdict.denied.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{POLICY_PREFIX}: {}",
                crate::policy::describe(&verdict.denied)
            ))
        }
    }
}

/// `git:secret:NS/NAME`: the username/password (or SSH key) of a Secret in the
/// control-plane namespace, in the repository Secret's format.
async fn secret_credentials(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Credentials, WriteBackError> {
    if ns != ctx.namespace() {
        return Err(WriteBackError::new(format!(
            "write-back-method git:secret:{ns}/{name}: Secrets are read only from the control-plane namespace {}",
            ctx.namespace()
        )));
    }
    let key = mooring_core::ResourceKey::new("", "Secret", ns, name);
    let secret = ctx
        .management
        .get("v1", &key)
        .await
        .map_err(|e| WriteBackError::new(format!("reading Secret {ns}/{name}: {e}")))?
        .ok_or_else(|| WriteBackError::new(format!("Secret {ns}/{name} does not exist")))?;
    let field = |k: &str| rules::credentials::secret_field(&secret, k);
    match (field("username"), field("password"), field("sshPrivateKey")) {
        (_, _, Some(key)) => Ok(Credentials::ssh_key(key)),
        (Some(u), Some(p), None) => Ok(Credentials::basic(u, p)),
        _ => Err(WriteBackError::new(format!(
            "Secret {ns}/{name} has neither username and password nor sshPrivateKey"
        ))),
    }
}
