//! One image's check: which registry serves it, with which credentials, and whether its
//! strategy picks a version other than the one running.

use super::registry::{RegistryAccess, RegistryClient};
use crate::Context;
use mooring_engine::image::credentials::{self as creds, RegistryAuth};
use mooring_engine::image::{self as rules, ImageChange, ImageRef, RegistryConfig, WatchedImage};
use serde_json::Value;

/// The registry of one image.
#[derive(Debug, Clone)]
pub(super) struct Resolved {
    pub config: RegistryConfig,
    /// Whether the admin configured it (`registries.conf`), rather than a built-in.
    pub configured: bool,
    /// The repository path the registry API wants (`library/nginx`).
    pub repository: String,
    /// The registry host as image names write it (`registry.example.com:5000`).
    pub host: String,
}

/// The registry serving `image`: the admin's entry with the longest matching prefix, else
/// the built-in for its host (`https://HOST`, Docker Hub for unqualified names).
pub(super) fn for_image(registries: &[RegistryConfig], image: &ImageRef) -> Resolved {
    let (config, configured) = match rules::registries::for_image(registries, image) {
        Some(c) => (c.clone(), true),
        None => (rules::registries::builtin(image), false),
    };
    let repository = rules::registries::api_repository(&config, image);
    Resolved {
        host: rules::registries::host(image),
        config,
        configured,
        repository,
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

/// The version `image`'s strategy picks, when it differs from the one running in `live`.
pub(super) async fn newer(
    client: &RegistryClient,
    reg: &Resolved,
    auth: Option<&RegistryAuth>,
    image: &WatchedImage,
    live: &[Value],
) -> Result<Option<ImageChange>, String> {
    // The running version: of the image itself, or of the name the manifests use when
    // the write-back renames it (`kustomize.image-name`).
    let renamed = image
        .kustomize_image_name
        .as_deref()
        .and_then(|n| ImageRef::parse(n).ok());
    let running = super::running_images(live).into_iter().find(|r| {
        rules::select::same_image(r, &image.image)
            || renamed
                .as_ref()
                .is_some_and(|n| rules::select::same_image(r, n))
    });
    let access = RegistryAccess {
        config: reg.config.clone(),
        credentials: auth.map(|a| (a.username.clone(), a.password.clone())),
        admin_configured: reg.configured,
    };
    let tags = client
        .tags(&access, &reg.repository)
        .await
        .map_err(|e| e.to_string())?;
    let candidates = rules::select::candidates(image, &tags);
    let mut infos = Vec::new();
    for tag in rules::select::to_inspect(image, &candidates) {
        let info = client
            .tag_info(
                &access,
                &reg.repository,
                tag,
                &image.platforms,
                image.strategy == rules::Strategy::NewestBuild,
            )
            .await
            .map_err(|e| e.to_string())?;
        infos.push(info);
    }
    Ok(rules::select::choose(
        image,
        running.as_ref(),
        &candidates,
        &infos,
    ))
}
