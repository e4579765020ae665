//! One image's check: which registry serves it, with which credentials, and whether its
//! strategy picks a version other than the one running.

use super::registry::{RegistryAccess, RegistryClient};
use crate::Context;
use mooring_engine::image::credentials::{self as creds, RegistryAuth};
use mooring_engine::image::{self as rules, ImageChange, ImageRef, RegistryConfig, WatchedImage};

/// The registry of one image.
#[derive(Debug, Clone)]
pub(super) struct Resolved {
    pub config: RegistryConfig,
    /// Whether the admin configured it (`registries.conf`), rather than built on the fly.
    pub configured: bool,
    /// The repository path the registry API wants (`library/nginx`).
    pub repository: String,
    /// The registry host as image names write it (`registry.example.com:5000`).
    pub host: String,
}

/// The registry serving `image`: the admin's entry with the longest matching prefix, else
/// one built for its host (`https://HOST`, Docker Hub for unqualified names).
pub(super) fn for_image(registries: &[RegistryConfig], image: &ImageRef) -> Resolved {
    let config = rules::registries::for_image(registries, image);
    let configured = registries.contains(&config);
    Resolved {
        repository: rules::registries::repository_path(&config, image),
        host: if image.registry.is_empty() {
            "docker.io".into()
        } else {
            image.registry.clone()
        },
        config,
        configured,
    }
}

/// The credentials for `image` at `reg`: the alias's `pull-secret`, else the registry's
/// `credentials` (see [`mooring_engine::image::credentials`] for who may use what).
pub(super) async fn credentials(
    ctx: &Context,
    image: &WatchedImage,
    reg: &Resolved,
) -> Result<Option<RegistryAuth>, String> {
    let (source, from_annotation) = match (&image.pull_secret, &reg.config.credentials) {
        (Some(s), _) => (s, true),
        (None, Some(s)) => (s, false),
        (None, None) => return Ok(None),
    };
    if from_annotation
        && matches!(source, rules::CredentialSource::Secret { .. })
        && !reg.configured
    {
        return Err(creds::CredentialError::Unbound {
            source_text: creds::describe(source),
            registry: reg.host.clone(),
        }
        .to_string());
    }
    let secret = match creds::secret_of(source, ctx.namespace()).map_err(|e| e.to_string())? {
        Some((ns, name)) => {
            let key = mooring_core::ResourceKey::new("", "Secret", ns, name);
            ctx.management
                .get("v1", &key)
                .await
                .map_err(|e| format!("reading Secret {ns}/{name}: {e}"))?
        }
        None => None,
    };
    creds::from_secret(source, secret.as_ref(), &reg.host, |v| {
        std::env::var(v).ok()
    })
    .map_err(|e| e.to_string())
}

/// The version `image`'s strategy picks, when it differs from the one running in
/// `deployed` (the live objects' images).
pub(super) async fn newer(
    client: &RegistryClient,
    reg: &Resolved,
    auth: Option<&RegistryAuth>,
    image: &WatchedImage,
    deployed: &[rules::select::DeployedImage],
) -> Result<Option<ImageChange>, String> {
    // As Image Updater: an image the application does not run is left alone unless the
    // alias says `force-update: true`.
    let Some((current, current_digest)) =
        rules::select::current_tag(image, deployed).or(image.force_update.then_some((None, None)))
    else {
        tracing::debug!(image = %image.image, "not running in the application and no force-update: not checked");
        return Ok(None);
    };
    let access = RegistryAccess {
        config: reg.config.clone(),
        credentials: auth.map(|a| (a.username.clone(), a.password.clone())),
        admin_configured: reg.configured,
    };
    let tags = client
        .tags(&access, &reg.repository)
        .await
        .map_err(|e| e.to_string())?;
    let candidates = rules::select::candidates(image, &tags).map_err(|e| e.to_string())?;
    // What the registry says about the candidates the strategy compares: all of them for
    // `newest-build` (by build time, bounded), else the best few (a tag lacking a wanted
    // platform falls to the next).
    let inspect = match image.strategy {
        rules::Strategy::NewestBuild => MAX_INSPECT_NEWEST,
        _ => MAX_INSPECT,
    };
    let want_created = image.strategy == rules::Strategy::NewestBuild;
    let mut infos = Vec::new();
    for tag in candidates.iter().take(inspect) {
        let info = client
            .tag_info(
                &access,
                &reg.repository,
                tag,
                &image.platforms,
                want_created,
            )
            .await
            .map_err(|e| e.to_string())?;
        let usable = image.platforms.is_empty()
            || info.platforms.is_empty()
            || image.platforms.iter().all(|w| {
                info.platforms
                    .iter()
                    .any(|p| rules::registry::platform_matches(p, w))
            });
        infos.push(info);
        if usable && !want_created {
            break;
        }
    }
    rules::select::choose(image, current, current_digest, &infos).map_err(|e| e.to_string())
}

/// Tags inspected at most per check (`newest-build` reads every candidate's config).
const MAX_INSPECT: usize = 10;
const MAX_INSPECT_NEWEST: usize = 50;
