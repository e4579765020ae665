//! Argo CD Image Updater's Application annotations, read into an [`UpdateConfig`].
//!
//! The annotations are tenant input: every one under [`ANNOTATION_PREFIX`] must be
//! understood, or [`parse`] fails naming it. Image Updater falls back to defaults on a
//! misspelt strategy or an invalid regexp and then updates (or never updates) the image
//! by surprise; Mooring reports every problem at once instead, so the watcher can put
//! them on the Application's conditions.
//!
//! What is read (all keys after the prefix):
//!
//! - `image-list`: `[alias=]image[:constraint]`, comma separated. Aliases are unique; an
//!   alias's options use the alias as key, an image without alias uses its repository
//!   (without registry); in a key, `/` is written `_` (Kubernetes annotation names allow
//!   one `/` only), as Image Updater does.
//! - per image `KEY.update-strategy` (`semver`, `newest-build` / `latest`, `digest`,
//!   `alphabetical` / `name`), `KEY.allow-tags` (`regexp:EXPR`, `any`, or a glob),
//!   `KEY.ignore-tags` (comma separated globs, or `regexp:`), `KEY.platforms`,
//!   `KEY.pull-secret`, `KEY.force-update`, `KEY.kustomize.image-name`,
//!   `KEY.helm.image-name|image-tag|image-spec`;
//! - `write-back-method` (`argocd`, `git`, `git:repocreds`, `git:secret:NS/NAME`),
//!   `git-branch` (`BRANCH`, `BASE:TARGET`, `:TARGET`), `write-back-target`
//!   (`kustomization`, `kustomization:PATH`); the last two only with `git`.
//!
//! Refused with a reason: `ext:` credentials (they run a command), `env:` credentials
//! (they read the controller's environment: admin-only, registries.conf), Go templates
//! in `git-branch`, `helmvalues` targets and `git-repository` (not implemented).
//!
//! [`ImageRef::parse`] implements Docker's reference grammar (distribution/reference).

use std::collections::BTreeMap;
use std::fmt;

use super::{
    CredentialSource, ImageError, ImageRef, Platform, Strategy, TagFilter, UpdateConfig,
    WatchedImage, WriteBackMethod, WriteBackTarget, ANNOTATION_PREFIX,
};

/// Longest image reference Docker accepts (`NameTotalLengthMax`).
const MAX_NAME_LEN: usize = 255;
/// Longest annotation value read (Kubernetes allows 256 KiB for all annotations together;
/// one option never needs more).
const MAX_VALUE_LEN: usize = 16 * 1024;
/// Most images one Application may watch.
const MAX_IMAGES: usize = 64;

/// Per-image option names, longest first so that `helm.image-name` is not read as a key
/// ending in `.helm` with option `image-name`.
const IMAGE_OPTIONS: &[&str] = &[
    "kustomize.image-name",
    "helm.image-name",
    "helm.image-tag",
    "helm.image-spec",
    "update-strategy",
    "force-update",
    "allow-tags",
    "ignore-tags",
    "pull-secret",
    "platforms",
];

impl ImageRef {
    /// Parse `[registry/]repository[:tag][@digest]` (Docker's reference grammar): the
    /// first path component is a registry when it has a `.` or a `:` or is `localhost`;
    /// path components are lowercase `[a-z0-9]` separated by `.`, `_`, `__` or `-`s; a
    /// tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; a digest is `ALGO:HEX` (`sha256`
    /// with 64 lowercase hex digits).
    pub fn parse(text: &str) -> Result<ImageRef, ImageError> {
        let err = |reason: &str| ImageError::Reference {
            reference: text.to_string(),
            reason: reason.to_string(),
        };
        if text.is_empty() {
            return Err(err("empty"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => {
                check_digest(d).map_err(|r| err(&r))?;
                (r, Some(d.to_string()))
            }
            None => (text, None),
        };
        let (name, tag) = split_tag(rest);
        if let Some(t) = tag {
            check_tag(t).map_err(|r| err(&r))?;
        }
        if name.len() > MAX_NAME_LEN {
            return Err(err(&format!("name longer than {MAX_NAME_LEN} characters")));
        }
        let (registry, repository) = split_registry(name);
        if !registry.is_empty() {
            check_registry(registry).map_err(|r| err(&r))?;
        }
        check_repository(repository).map_err(|r| err(&r))?;
        Ok(ImageRef {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// `registry/repository` (or `repository` for the default registry), no tag or digest.
    pub fn name(&self) -> String {
        if self.registry.is_empty() {
            self.repository.clone()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// Whether two references name the same image (tag and digest aside), with Docker's
    /// normalisation: `nginx`, `library/nginx`, `docker.io/library/nginx` and
    /// `index.docker.io/nginx` are one image.
    pub fn same_image(&self, other: &ImageRef) -> bool {
        self.normalized_name() == other.normalized_name()
    }

    /// `docker.io/library/nginx` for every spelling of a Docker Hub image; other names
    /// as written.
    pub fn normalized_name(&self) -> String {
        let hub = matches!(
            self.registry.as_str(),
            "" | "docker.io" | "index.docker.io" | "registry-1.docker.io"
        );
        if !hub {
            return self.name();
        }
        if self.repository.contains('/') {
            format!("docker.io/{}", self.repository)
        } else {
            format!("docker.io/library/{}", self.repository)
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `name:tag` → (`name`, `tag`): the tag is after the last `:` that follows the last `/`
/// (a `:` before it is a registry port).
fn split_tag(text: &str) -> (&str, Option<&str>) {
    let last_slash = text.rfind('/').map_or(0, |i| i + 1);
    match text[last_slash..].rfind(':') {
        Some(i) => (&text[..last_slash + i], Some(&text[last_slash + i + 1..])),
        None => (text, None),
    }
}

fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest)
        }
        _ => ("", name),
    }
}

fn check_digest(d: &str) -> Result<(), String> {
    if super::registry::valid_digest(d) {
        Ok(())
    } else {
        Err(format!(
            "digest {d:?} is not sha256:HEX (64) or sha512:HEX (128) in lowercase hex"
        ))
    }
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_tag(t: &str) -> Result<(), String> {
    if super::registry::valid_tag(t) {
        Ok(())
    } else {
        Err(format!(
            "tag {t:?} is not 1 to 128 of A-Z a-z 0-9 _ . - (not starting with . or -)"
        ))
    }
}

fn check_registry(r: &str) -> Result<(), String> {
    let (host, port) = match r.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (r, None),
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("registry port {p:?} is not a number"));
        }
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.is_empty() || !host.split('.').all(label_ok) {
        return Err(format!("registry host {host:?} is not a host name"));
    }
    Ok(())
}

fn check_repository(repo: &str) -> Result<(), String> {
    if repo.is_empty() {
        return Err("empty repository".to_string());
    }
    for comp in repo.split('/') {
        if comp.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("repository {repo:?} must be lowercase"));
        }
        if !super::registry::valid_repository(comp) {
            return Err(format!(
                "path component {comp:?} is not lowercase letters and digits separated by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

/// Parse a credentials reference. `pullsecret:NS/NAME`, `secret:NS/NAME#FIELD` and (when
/// `allow_env`, i.e. from the admin's registries.conf) `env:VAR`. `ext:` is always
/// refused: it runs a command.
pub fn parse_credentials(text: &str, allow_env: bool) -> Result<CredentialSource, String> {
    let ns_name = |s: &str| -> Result<(String, String), String> {
        match s.split_once('/') {
            Some((ns, name)) if dns_label(ns) && dns_subdomain(name) => {
                Ok((ns.to_string(), name.to_string()))
            }
            _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
        }
    };
    if let Some(rest) = text.strip_prefix("pullsecret:") {
        let (namespace, name) = ns_name(rest)?;
        return Ok(CredentialSource::PullSecret { namespace, name });
    }
    if let Some(rest) = text.strip_prefix("secret:") {
        let Some((nn, field)) = rest.split_once('#') else {
            return Err(format!(
                "{text:?} lacks #FIELD (secret:NAMESPACE/NAME#FIELD)"
            ));
        };
        let (namespace, name) = ns_name(nn)?;
        let field_ok = !field.is_empty()
            && field.len() <= 253
            && field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !field_ok {
            return Err(format!("{field:?} is not a Secret data key"));
        }
        return Ok(CredentialSource::Secret {
            namespace,
            name,
            field: field.to_string(),
        });
    }
    if let Some(var) = text.strip_prefix("env:") {
        if !allow_env {
            return Err(format!(
                "{text:?}: env: credentials read the controller's environment and are only accepted in the admin's registries.conf"
            ));
        }
        let ok = !var.is_empty()
            && !var.as_bytes()[0].is_ascii_digit()
            && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(format!("{var:?} is not an environment variable name"));
        }
        return Ok(CredentialSource::Env(var.to_string()));
    }
    if text.starts_with("ext:") {
        return Err(format!(
            "{text:?}: ext: credentials run a command and are not supported; use pullsecret: or secret:"
        ));
    }
    Err(format!(
        "{text:?} is not pullsecret:NAMESPACE/NAME, secret:NAMESPACE/NAME#FIELD or env:VAR"
    ))
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns_label)
}

/// Parse `os/arch[/variant]`.
pub fn parse_platform(text: &str) -> Result<Platform, String> {
    let parts: Vec<&str> = text.split('/').collect();
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| word(p)) {
        return Err(format!(
            "platform {text:?} is not OS/ARCH[/VARIANT] (linux/amd64)"
        ));
    }
    Ok(Platform {
        os: parts[0].to_string(),
        architecture: parts[1].to_string(),
        variant: parts.get(2).map(|s| s.to_string()),
    })
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The key an image's options use: the alias, else the repository; `/` written `_`.
pub fn option_key(image: &WatchedImage) -> String {
    image
        .alias
        .clone()
        .unwrap_or_else(|| image.image.repository.clone())
        .replace('/', "_")
}

/// Read an Application's image-updater annotations. `Ok(None)`: no `image-list` (and
/// no other image-updater annotation). Every problem is reported, each naming its
/// annotation.
pub fn parse(
    app_name: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<Option<UpdateConfig>, Vec<ImageError>> {
    let ours: BTreeMap<&str, &str> = annotations
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(ANNOTATION_PREFIX).map(|k| (k, v.as_str())))
        .collect();
    let mut errors = Vec::new();
    let err = |key: &str, reason: String| ImageError::Annotation {
        annotation: format!("{ANNOTATION_PREFIX}{key}"),
        reason,
    };
    let Some(list) = ours.get("image-list") else {
        if ours.is_empty() {
            return Ok(None);
        }
        let names: Vec<String> = ours
            .keys()
            .map(|k| format!("{ANNOTATION_PREFIX}{k}"))
            .collect();
        return Err(vec![ImageError::Other(format!(
            "Application {app_name}: image updater annotations {} without {ANNOTATION_PREFIX}image-list",
            names.join(", ")
        ))]);
    };
    for (k, v) in &ours {
        if v.len() > MAX_VALUE_LEN {
            errors.push(err(k, format!("value longer than {MAX_VALUE_LEN} bytes")));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut config = UpdateConfig::default();
    let mut keys: BTreeMap<String, usize> = BTreeMap::new();
    for spec in list.split(',').map(str::trim) {
        if spec.is_empty() {
            errors.push(err("image-list", format!("empty entry in {list:?}")));
            continue;
        }
        match parse_spec(spec) {
            Ok(image) => {
                let key = option_key(&image);
                if keys.insert(key.clone(), config.images.len()).is_some() {
                    errors.push(err(
                        "image-list",
                        format!("{key:?} is used twice: give each image its own alias"),
                    ));
                }
                config.images.push(image);
            }
            Err(reason) => errors.push(err("image-list", reason)),
        }
    }
    if config.images.len() > MAX_IMAGES {
        errors.push(err(
            "image-list",
            format!("{} images, at most {MAX_IMAGES}", config.images.len()),
        ));
    }

    let mut branch_or_target_set = Vec::new();
    for (key, value) in &ours {
        let key = *key;
        let value = value.trim();
        match key {
            "image-list" => {}
            "write-back-method" => match parse_method(value) {
                Ok(m) => config.method = m,
                Err(r) => errors.push(err(key, r)),
            },
            "git-branch" => match check_branch_spec(value) {
                Ok(()) => {
                    config.branch = Some(value.to_string());
                    branch_or_target_set.push(key);
                }
                Err(r) => errors.push(err(key, r)),
            },
            "write-back-target" => match parse_target(value) {
                Ok(t) => {
                    config.target = t;
                    branch_or_target_set.push(key);
                }
                Err(r) => errors.push(err(key, r)),
            },
            "git-repository" => errors.push(err(
                key,
                "not supported: Mooring commits to the Application's own source repository".into(),
            )),
            _ => {
                let Some((img_key, option)) = IMAGE_OPTIONS.iter().find_map(|o| {
                    key.strip_suffix(o)
                        .and_then(|k| k.strip_suffix('.'))
                        .map(|k| (k, *o))
                }) else {
                    errors.push(err(
                        key,
                        "not an Image Updater annotation Mooring knows".into(),
                    ));
                    continue;
                };
                let Some(&index) = keys.get(img_key) else {
                    let known: Vec<&str> = keys.keys().map(String::as_str).collect();
                    errors.push(err(
                        key,
                        format!(
                            "{img_key:?} is not an alias or image of image-list (known: {})",
                            known.join(", ")
                        ),
                    ));
                    continue;
                };
                if let Err(r) = apply_option(&mut config.images[index], option, value) {
                    errors.push(err(key, r));
                }
            }
        }
    }
    if config.method == WriteBackMethod::Argocd {
        for key in branch_or_target_set {
            errors.push(err(key, "only applies with write-back-method git".into()));
        }
    }
    for image in &config.images {
        if let Err(r) = check_constraint(image) {
            errors.push(err("image-list", r));
        }
    }
    if errors.is_empty() {
        Ok(Some(config))
    } else {
        Err(errors)
    }
}

/// `[alias=]image[:constraint]`.
fn parse_spec(spec: &str) -> Result<WatchedImage, String> {
    let (alias, rest) = match spec.split_once('=') {
        Some((a, r)) => {
            let a = a.trim();
            let ok = !a.is_empty()
                && a.len() <= 63
                && a.as_bytes()[0].is_ascii_alphanumeric()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
            if !ok {
                return Err(format!(
                    "alias {a:?} is not 1 to 63 of A-Z a-z 0-9 - _ . / starting with a letter or digit"
                ));
            }
            (Some(a.to_string()), r.trim())
        }
        None => (None, spec),
    };
    if rest.contains('@') {
        return Err(format!(
            "{rest:?}: a digest cannot be watched; use the digest strategy with a tag"
        ));
    }
    let (name, constraint) = split_tag(rest);
    let mut image = ImageRef::parse(name).map_err(|e| e.to_string())?;
    image.tag = None;
    let constraint = constraint.map(str::trim).filter(|c| !c.is_empty());
    Ok(WatchedImage {
        alias,
        image,
        constraint: constraint.map(str::to_string),
        strategy: Strategy::default(),
        allow_tags: None,
        ignore_tags: Vec::new(),
        platforms: Vec::new(),
        pull_secret: None,
        kustomize_image_name: None,
        helm_image_name: None,
        helm_image_tag: None,
        helm_image_spec: None,
        force_update: false,
    })
}

fn check_constraint(image: &WatchedImage) -> Result<(), String> {
    let Some(c) = &image.constraint else {
        if image.strategy == Strategy::Digest {
            return Err(format!(
                "{}: the digest strategy needs the tag to follow (IMAGE:TAG)",
                image.image.name()
            ));
        }
        return Ok(());
    };
    match image.strategy {
        Strategy::Semver => super::select::Constraint::parse(c)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Strategy::Digest => check_tag(c),
        // Image Updater ignores the constraint with these strategies; a constraint there
        // is a misunderstanding worth reporting.
        Strategy::NewestBuild | Strategy::Alphabetical => Err(format!(
            "{}: a version constraint {c:?} only applies to the semver and digest strategies; use allow-tags",
            image.image.name()
        )),
    }
}

fn apply_option(image: &mut WatchedImage, option: &str, value: &str) -> Result<(), String> {
    let param = |v: &str| -> Result<Option<String>, String> {
        let ok = !v.is_empty()
            && v.len() <= 253
            && v.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'[' | b']')
            });
        if ok {
            Ok(Some(v.to_string()))
        } else {
            Err(format!(
                "{v:?} is not a parameter name (letters, digits, - _ . [ ])"
            ))
        }
    };
    match option {
        "update-strategy" => {
            image.strategy = match value {
                "semver" => Strategy::Semver,
                "newest-build" | "latest" => Strategy::NewestBuild,
                "digest" => Strategy::Digest,
                "alphabetical" | "name" => Strategy::Alphabetical,
                other => {
                    return Err(format!(
                        "{other:?} is not semver, newest-build (latest), digest or alphabetical (name)"
                    ));
                }
            }
        }
        "allow-tags" => {
            image.allow_tags = if value == "any" {
                None
            } else {
                Some(parse_filter(value)?)
            }
        }
        "ignore-tags" => {
            image.ignore_tags = if let Some(_re) = value.strip_prefix("regexp:") {
                vec![parse_filter(value)?]
            } else {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(parse_filter)
                    .collect::<Result<_, _>>()?
            }
        }
        "platforms" => {
            image.platforms = value
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(parse_platform)
                .collect::<Result<_, _>>()?
        }
        "pull-secret" => image.pull_secret = Some(parse_credentials(value, false)?),
        "force-update" => {
            image.force_update = match value {
                "true" => true,
                "false" => false,
                other => return Err(format!("{other:?} is not true or false")),
            }
        }
        "kustomize.image-name" => {
            let r = ImageRef::parse(value).map_err(|e| e.to_string())?;
            if r.tag.is_some() || r.digest.is_some() {
                return Err(format!("{value:?} is an image name without tag or digest"));
            }
            image.kustomize_image_name = Some(value.to_string());
        }
        "helm.image-name" => image.helm_image_name = param(value)?,
        "helm.image-tag" => image.helm_image_tag = param(value)?,
        "helm.image-spec" => image.helm_image_spec = param(value)?,
        other => return Err(format!("option {other} is not handled")),
    }
    Ok(())
}

/// `regexp:EXPR` (compiled here, so a bad or oversized expression is reported now), or a
/// glob (Go's `filepath.Match` syntax).
pub fn parse_filter(text: &str) -> Result<TagFilter, String> {
    if let Some(re) = text.strip_prefix("regexp:") {
        super::select::compile_regex(re)?;
        return Ok(TagFilter::Regexp(re.to_string()));
    }
    super::select::compile_glob(text)?;
    Ok(TagFilter::Glob(text.to_string()))
}

fn parse_method(value: &str) -> Result<WriteBackMethod, String> {
    match value {
        "argocd" => Ok(WriteBackMethod::Argocd),
        "git" | "git:repocreds" => Ok(WriteBackMethod::Git { secret: None }),
        _ => {
            if let Some(rest) = value.strip_prefix("git:secret:") {
                return match rest.split_once('/') {
                    Some((ns, name)) if dns_label(ns) && dns_subdomain(name) => {
                        Ok(WriteBackMethod::Git {
                            secret: Some((ns.to_string(), name.to_string())),
                        })
                    }
                    _ => Err(format!("{rest:?} is not NAMESPACE/NAME")),
                };
            }
            Err(format!(
                "{value:?} is not argocd, git, git:repocreds or git:secret:NAMESPACE/NAME"
            ))
        }
    }
}

/// `BRANCH`, `BASE:TARGET` or `:TARGET`, each a plain branch name.
fn check_branch_spec(value: &str) -> Result<(), String> {
    if value.contains("{{") {
        return Err(format!(
            "{value:?}: branch templates ({{{{ ... }}}}) are not supported; name the branch"
        ));
    }
    let (base, target) = match value.split_once(':') {
        Some((b, t)) => (b, Some(t)),
        None => (value, None),
    };
    if !(base.is_empty() && target.is_some()) {
        check_branch(base)?;
    }
    if let Some(t) = target {
        check_branch(t)?;
    }
    Ok(())
}

/// A branch name `git check-ref-format --branch` accepts (the common rules).
pub fn check_branch(b: &str) -> Result<(), String> {
    let bad = b.is_empty()
        || b.len() > 255
        || b.starts_with('-')
        || b.starts_with('/')
        || b.ends_with('/')
        || b.ends_with('.')
        || b.ends_with(".lock")
        || b.contains("..")
        || b.contains("//")
        || b.contains("@{")
        || b == "@"
        || b.split('/').any(|c| c.starts_with('.'))
        || b.chars()
            .any(|c| c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'));
    if bad {
        return Err(format!("{b:?} is not a valid branch name"));
    }
    Ok(())
}

fn parse_target(value: &str) -> Result<WriteBackTarget, String> {
    if value == "kustomization" {
        return Ok(WriteBackTarget::Kustomization { path: None });
    }
    if let Some(path) = value.strip_prefix("kustomization:") {
        let bad = path.is_empty()
            || path.len() > 4096
            || path.chars().any(|c| c.is_control())
            || path.contains('\\');
        if bad {
            return Err(format!("{path:?} is not a directory path"));
        }
        return Ok(WriteBackTarget::Kustomization {
            path: Some(path.to_string()),
        });
    }
    if value == "helmvalues" || value.starts_with("helmvalues:") {
        return Err(format!(
            "{value:?}: writing to Helm values files is not supported; use the default parameter file or kustomization"
        ));
    }
    Err(format!(
        "{value:?} is not kustomization or kustomization:PATH"
    ))
}

#[cfg(test)]
mod tests;
