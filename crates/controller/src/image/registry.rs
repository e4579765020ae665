//! The OCI distribution API client of the image watcher.
//!
//! Which registry to ask is the tenant's choice (an annotation names the image), so the
//! client treats every registry as a stranger on the network:
//!
//! - every request goes through [`Outbound::send`]: the admin's allowlist, DNS-rebinding
//!   safe resolution, a deadline, a cap on every body (tags page 4 MiB, manifest 4 MiB,
//!   config 1 MiB, token 64 KiB) — a 100 MiB manifest is cut at the cap, not buffered;
//! - what comes back is parsed by [`mooring_engine::image::registry`] (challenges, Link,
//!   manifests, configs) and checked: a manifest's type (an HTML page is not one), its
//!   digest (the `Docker-Content-Digest` header must be the sha256 of the body), a config
//!   blob's digest, the tag and digest grammar;
//! - pagination is bounded ([`Limits`]: pages, tags; a loop is caught), and a next link
//!   to another host is refused;
//! - authentication follows the distribution spec: anonymous first; a `Basic` challenge
//!   gets the credentials; a `Bearer` challenge sends them to the token realm **only**
//!   when the realm is on the registry's own host, or the registry is the admin's (from
//!   registries.conf, [`RegistryAccess::admin_configured`]): a tenant-named registry
//!   cannot bounce a pull secret to a host of its choosing. Tokens are cached per
//!   (registry, scope, credentials) until they expire;
//! - 429, 5xx and connection errors are retried with backoff, honouring `Retry-After`
//!   (capped); requests to one registry are paced by its `limit` (requests per second, a
//!   token bucket per registry).
//!
//! Errors ([`RegistryError`]) name the registry, the repository, the URL and what to do.

use crate::outbound::{Outbound, OutboundError, OutboundRequest, OutboundResponse};
use mooring_engine::image::registry::{
    self as fmt, Challenge, FormatError, Manifest, MANIFEST_ACCEPT,
};
use mooring_engine::image::{Platform, RegistryConfig, TagInfo};
use reqwest::Url;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Largest manifest read.
pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;
/// Largest config blob read.
pub const MAX_CONFIG: usize = 1024 * 1024;
/// Largest token answer read.
pub const MAX_TOKEN: usize = 64 * 1024;
/// Largest tags page read.
pub const MAX_TAGS_PAGE: usize = 4 * 1024 * 1024;
/// Requests per second to one registry when its `limit` is 0 (Image Updater's default).
pub const DEFAULT_RATE: u32 = 20;
/// Longest wait a `Retry-After` is honoured for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Attempts of one request (the first and the retries).
pub const ATTEMPTS: u32 = 4;

/// The platform an image must provide when the annotation names none.
pub fn default_platform() -> Platform {
    Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    }
}

/// Bounds of tag listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `n` of each tags request.
    pub page_size: usize,
    pub max_pages: usize,
    pub max_tags: usize,
    /// Deadline of each request.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            page_size: 1000,
            max_pages: 100,
            max_tags: 10_000,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A registry to talk to: its configuration, the credentials resolved for it (from a
/// pull secret, a Secret or the environment: the caller's job), and whether it is the
/// admin's.
#[derive(Debug, Clone, Default)]
pub struct RegistryAccess {
    pub config: RegistryConfig,
    /// `(username, password)`.
    pub credentials: Option<(String, String)>,
    /// The entry comes from the admin's registries.conf (not synthesized for a registry
    /// an annotation names): its token realm may be on another host and still get the
    /// credentials.
    pub admin_configured: bool,
}

/// A manifest as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The digest of the bytes (verified against `Docker-Content-Digest`).
    pub digest: String,
    pub manifest: Manifest,
}

/// An error talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {registry}, repository {repository}: {reason}")]
    Input {
        registry: String,
        repository: String,
        reason: String,
    },
    #[error("registry {registry}, repository {repository}: {url}: {source}; {hint}")]
    Request {
        registry: String,
        repository: String,
        url: String,
        #[source]
        source: Box<OutboundError>,
        hint: String,
    },
    #[error("registry {registry}, repository {repository}: {url} answered {status}: {body}")]
    Status {
        registry: String,
        repository: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error(
        "registry {registry}, repository {repository}: {url}: authentication failed: {reason}"
    )]
    Auth {
        registry: String,
        repository: String,
        url: String,
        reason: String,
    },
    #[error("registry {registry}, repository {repository}: {url}: {source}")]
    Format {
        registry: String,
        repository: String,
        url: String,
        #[source]
        source: Box<FormatError>,
    },
    #[error("registry {registry}, repository {repository}: {url}: {reason}")]
    Protocol {
        registry: String,
        repository: String,
        url: String,
        reason: String,
    },
}

impl RegistryError {
    /// The HTTP status, for an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A token bucket of one registry.
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket of `rate` requests per second.
    fn new(rate: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: rate,
            last: now,
        }
    }

    /// Take one request at `now`: how long to wait before sending it (the request is
    /// reserved, so concurrent callers queue behind each other). A burst of `rate`
    /// requests goes at once.
    fn take(&mut self, rate: f64, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

/// A cached Bearer token.
struct CachedToken {
    token: String,
    until: Instant,
}

/// (api_url, scope, credentials).
type TokenKey = (String, String, Option<(String, String)>);

#[derive(Default)]
struct State {
    buckets: HashMap<String, Bucket>,
    /// (api_url, scope, credentials) → token: a token obtained with one tenant's
    /// credentials is never used for a request made with other (or no) credentials.
    tokens: HashMap<TokenKey, CachedToken>,
    /// Registries that asked for Basic: the credentials go with every request.
    basic: HashSet<String>,
}

/// The client; cheap to clone, one per controller (the token cache and the rate limits
/// are shared).
#[derive(Clone)]
pub struct RegistryClient {
    outbound: Outbound,
    limits: Limits,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("limits", &self.limits)
            .finish()
    }
}

/// `Basic base64(user:password)`.
fn basic(credentials: &(String, String)) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", credentials.0, credentials.1))
    )
}

/// `algorithm:hex` of `body` for the algorithm of `like` (sha256 unless it is sha512).
fn digest_of(body: &[u8], like: &str) -> String {
    let (name, alg) = if like.starts_with("sha512:") {
        ("sha512", &ring::digest::SHA512)
    } else {
        ("sha256", &ring::digest::SHA256)
    };
    let d = ring::digest::digest(alg, body);
    let mut s = String::with_capacity(7 + 128);
    s.push_str(name);
    s.push(':');
    for b in d.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The wait a `Retry-After` asks for (seconds or an HTTP date), capped.
fn retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    let wait = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
            let now = jiff::Timestamp::now();
            let d = at.duration_since(now);
            Duration::try_from(d).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The start of a body, for messages.
fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(300)]);
    let s = s.trim();
    if s.is_empty() {
        "(empty body)".into()
    } else {
        s.to_string()
    }
}

/// Host and port of a URL, for same-host comparisons.
fn authority(u: &Url) -> (Option<String>, Option<u16>) {
    (
        u.host_str().map(str::to_ascii_lowercase),
        u.port_or_known_default(),
    )
}

impl RegistryClient {
    pub fn new(outbound: Outbound) -> RegistryClient {
        RegistryClient::with_limits(outbound, Limits::default())
    }

    pub fn with_limits(outbound: Outbound, limits: Limits) -> RegistryClient {
        RegistryClient {
            outbound,
            limits,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every tag of `repository`, following `Link` pages within [`Limits`].
    pub async fn tags(
        &self,
        access: &RegistryAccess,
        repository: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let ctx = Ctx::new(access, repository)?;
        let first = ctx.url(&format!(
            "/v2/{repository}/tags/list?n={}",
            self.limits.page_size
        ))?;
        let mut url = first;
        let mut seen: HashSet<String> = HashSet::new();
        let mut tags: Vec<String> = Vec::new();
        for page in 0.. {
            if page >= self.limits.max_pages {
                return Err(ctx.protocol(
                    &url,
                    format!(
                        "more than {} pages of tags (endless pagination?); listing stopped at {} tags",
                        self.limits.max_pages,
                        tags.len()
                    ),
                ));
            }
            if !seen.insert(url.to_string()) {
                return Err(ctx.protocol(
                    &url,
                    "the tags list links back to a page already read (pagination loop)".into(),
                ));
            }
            let resp = self
                .get(&ctx, &url, Some("application/json"), MAX_TAGS_PAGE)
                .await?;
            let page_tags = fmt::parse_tags_list(&resp.body).map_err(|e| ctx.format(&url, e))?;
            tags.extend(page_tags);
            if tags.len() > self.limits.max_tags {
                return Err(ctx.protocol(
                    &url,
                    format!(
                        "more than {} tags; narrow the image with allow-tags or ask the registry's owner to prune",
                        self.limits.max_tags
                    ),
                ));
            }
            let mut next = None;
            for l in resp.headers_named("link") {
                if let Some(n) = fmt::parse_next_link(l).map_err(|e| ctx.format(&url, e))? {
                    next = Some(n);
                    break;
                }
            }
            let Some(next) = next else { break };
            let next_url = url
                .join(&next)
                .map_err(|e| ctx.protocol(&url, format!("next link {next:?} is not a URL: {e}")))?;
            if authority(&next_url) != authority(&ctx.base)
                || next_url.scheme() != ctx.base.scheme()
            {
                return Err(ctx.protocol(
                    &url,
                    format!(
                        "the next page link {next_url} leaves the registry's host; not followed"
                    ),
                ));
            }
            url = next_url;
        }
        Ok(tags)
    }

    /// The manifest `reference` (a tag or a digest) of `repository`, its digest verified.
    pub async fn manifest(
        &self,
        access: &RegistryAccess,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let ctx = Ctx::new(access, repository)?;
        let by_digest = fmt::valid_digest(reference);
        if !by_digest && !fmt::valid_tag(reference) {
            return Err(ctx.input(format!("{reference:?} is neither a tag nor a digest")));
        }
        let url = ctx.url(&format!("/v2/{repository}/manifests/{reference}"))?;
        let resp = self
            .get(&ctx, &url, Some(MANIFEST_ACCEPT), MAX_MANIFEST)
            .await?;
        let manifest = fmt::parse_manifest(resp.header("content-type"), &resp.body)
            .map_err(|e| ctx.format(&url, e))?;
        let header = resp.header("docker-content-digest").map(str::trim);
        let like = header
            .or(by_digest.then_some(reference))
            .unwrap_or("sha256:");
        let digest = digest_of(&resp.body, like);
        if let Some(h) = header {
            if h != digest {
                return Err(ctx.protocol(
                    &url,
                    format!("Docker-Content-Digest {h:?} is not the digest of the body ({digest})"),
                ));
            }
        }
        if by_digest && reference != digest {
            return Err(ctx.protocol(
                &url,
                format!("asked for {reference}, got a manifest whose digest is {digest}"),
            ));
        }
        Ok(FetchedManifest { digest, manifest })
    }

    /// The digest of the image of `platform` under `reference`: the index entry matching
    /// it, or the manifest itself when it is not an index. `None` when an index has no
    /// entry for it.
    pub async fn platform_digest(
        &self,
        access: &RegistryAccess,
        repository: &str,
        reference: &str,
        platform: &Platform,
    ) -> Result<Option<String>, RegistryError> {
        let m = self.manifest(access, repository, reference).await?;
        Ok(match &m.manifest {
            Manifest::Index { manifests, .. } => {
                fmt::select_platform(manifests, platform).map(|d| d.digest.clone())
            }
            Manifest::Image { .. } => Some(m.digest),
        })
    }

    /// What `tag` of `repository` is: its digest, its platforms, and (`want_created`)
    /// its build time — from the config blob of the image for the first of `platforms`
    /// the tag provides ([`default_platform`] when empty), or for an OCI artifact (no
    /// image config) from the `org.opencontainers.image.created` annotation.
    ///
    /// An image manifest's platform is read from its config blob, so it is only known
    /// (non-empty `platforms`) when the config is read: with `want_created` or when
    /// `platforms` is given.
    pub async fn tag_info(
        &self,
        access: &RegistryAccess,
        repository: &str,
        tag: &str,
        platforms: &[Platform],
        want_created: bool,
    ) -> Result<TagInfo, RegistryError> {
        let ctx = Ctx::new(access, repository)?;
        let top = self.manifest(access, repository, tag).await?;
        let wanted: Vec<Platform> = if platforms.is_empty() {
            vec![default_platform()]
        } else {
            platforms.to_vec()
        };
        let mut info = TagInfo {
            tag: tag.to_string(),
            digest: top.digest.clone(),
            created: None,
            platforms: vec![],
        };
        let need_config = want_created || !platforms.is_empty();
        match &top.manifest {
            Manifest::Index { manifests, .. } => {
                info.platforms = fmt::index_platforms(manifests);
                if want_created {
                    let entry = wanted
                        .iter()
                        .find_map(|p| fmt::select_platform(manifests, p));
                    if let Some(entry) = entry {
                        let image = self.manifest(access, repository, &entry.digest).await?;
                        info.created = self.created_of(&ctx, &image).await?;
                    }
                }
                if info.created.is_none() {
                    info.created = top.manifest.created_annotation();
                }
            }
            Manifest::Image { .. } => {
                if need_config {
                    if top.manifest.has_image_config() {
                        let (created, platform) = self.config_of(&ctx, &top.manifest).await?;
                        info.created = created;
                        info.platforms.extend(platform);
                    }
                    if info.created.is_none() {
                        info.created = top.manifest.created_annotation();
                    }
                }
            }
        }
        if !want_created {
            info.created = None;
        }
        Ok(info)
    }

    /// `created` of an image (config blob, else the annotation).
    async fn created_of(
        &self,
        ctx: &Ctx<'_>,
        image: &FetchedManifest,
    ) -> Result<Option<mooring_core::time::Timestamp>, RegistryError> {
        if image.manifest.has_image_config() {
            if let (Some(c), _) = self.config_of(ctx, &image.manifest).await? {
                return Ok(Some(c));
            }
        }
        Ok(image.manifest.created_annotation())
    }

    /// The config blob of an image manifest: `created` and the platform.
    async fn config_of(
        &self,
        ctx: &Ctx<'_>,
        manifest: &Manifest,
    ) -> Result<(Option<mooring_core::time::Timestamp>, Option<Platform>), RegistryError> {
        let Manifest::Image { config, .. } = manifest else {
            return Ok((None, None));
        };
        let url = ctx.url(&format!("/v2/{}/blobs/{}", ctx.repository, config.digest))?;
        let resp = self.get(ctx, &url, None, MAX_CONFIG).await?;
        let got = digest_of(&resp.body, &config.digest);
        if got != config.digest {
            return Err(ctx.protocol(
                &url,
                format!(
                    "the config blob's digest is {got}, not {} as the manifest says",
                    config.digest
                ),
            ));
        }
        let c = fmt::parse_config(&resp.body).map_err(|e| ctx.format(&url, e))?;
        Ok((c.created, c.platform))
    }

    /// Wait for the registry's rate limit.
    async fn pace(&self, ctx: &Ctx<'_>) {
        let rate = f64::from(if ctx.access.config.limit == 0 {
            DEFAULT_RATE
        } else {
            ctx.access.config.limit
        });
        let wait = {
            let mut st = self.state();
            let now = Instant::now();
            st.buckets
                .entry(ctx.key.clone())
                .or_insert_with(|| Bucket::new(rate, now))
                .take(rate, now)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// One request with the rate limit and retries (429, 5xx, connection errors).
    async fn send(
        &self,
        ctx: &Ctx<'_>,
        url: &Url,
        headers: Vec<(String, String)>,
        max_body: usize,
        what: &str,
    ) -> Result<OutboundResponse, RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.pace(ctx).await;
            let mut req = OutboundRequest::new(reqwest::Method::GET, url.as_str());
            req.headers = headers.clone();
            req.timeout = self.limits.timeout;
            req.max_body = max_body;
            req.insecure = ctx.access.config.insecure;
            let backoff = Duration::from_millis(250 * 2u64.pow(attempt.min(6)));
            match self.outbound.send(req).await {
                Ok(resp) if resp.status == 429 || resp.status >= 500 => {
                    if attempt >= ATTEMPTS {
                        return Err(ctx.status(url, &resp));
                    }
                    let wait = resp
                        .header("retry-after")
                        .and_then(retry_after)
                        .unwrap_or(backoff.min(MAX_RETRY_AFTER));
                    tracing::debug!(
                        "registry {}: {url} answered {}; retrying in {wait:?}",
                        ctx.name,
                        resp.status
                    );
                    tokio::time::sleep(wait).await;
                }
                Ok(resp) => return Ok(resp),
                Err(e @ (OutboundError::Request { .. } | OutboundError::Timeout { .. }))
                    if attempt < ATTEMPTS =>
                {
                    tracing::debug!("registry {}: {url}: {e}; retrying", ctx.name);
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => {
                    let hint = if e.is_refused() {
                        format!(
                            "{what} is refused by the outbound allowlist; the admin opens it in the mooring-cm ConfigMap (outbound.allow)"
                        )
                    } else {
                        format!("check {what} (registries.conf api_url) and that it is reachable")
                    };
                    return Err(RegistryError::Request {
                        registry: ctx.name.clone(),
                        repository: ctx.repository.clone(),
                        url: url.to_string(),
                        source: Box::new(e),
                        hint,
                    });
                }
            }
        }
    }

    /// GET `url` of the registry, authenticating as its challenge asks.
    async fn get(
        &self,
        ctx: &Ctx<'_>,
        url: &Url,
        accept: Option<&str>,
        max_body: usize,
    ) -> Result<OutboundResponse, RegistryError> {
        let mut base = Vec::new();
        if let Some(a) = accept {
            base.push(("Accept".to_string(), a.to_string()));
        }
        let scope = format!("repository:{}:pull", ctx.repository);
        let key: TokenKey = (
            ctx.key.clone(),
            scope.clone(),
            ctx.access.credentials.clone(),
        );
        let cached = {
            let mut st = self.state();
            match st.tokens.get(&key) {
                Some(t) if t.until > Instant::now() => Some(format!("Bearer {}", t.token)),
                Some(_) => {
                    st.tokens.remove(&key);
                    None
                }
                None if st.basic.contains(&ctx.key) => ctx.access.credentials.as_ref().map(basic),
                None => None,
            }
        };
        let with = |auth: Option<String>| {
            let mut h = base.clone();
            h.extend(auth.map(|a| ("Authorization".to_string(), a)));
            h
        };
        let resp = self
            .send(ctx, url, with(cached.clone()), max_body, "the registry")
            .await?;
        if resp.status != 401 {
            return ctx.ok(url, resp);
        }
        let challenges: Vec<Challenge> = {
            let mut all = Vec::new();
            for h in resp.headers_named("www-authenticate") {
                all.extend(fmt::parse_challenges(h).map_err(|e| ctx.format(url, e))?);
            }
            all
        };
        let bearer = challenges.iter().find_map(|c| match c {
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => Some((realm.clone(), service.clone(), scope.clone())),
            _ => None,
        });
        let (auth, note) = if let Some((realm, service, challenge_scope)) = bearer {
            let (token, note) = self
                .token(
                    ctx,
                    url,
                    &realm,
                    service.as_deref(),
                    challenge_scope.as_deref().unwrap_or(&scope),
                )
                .await?;
            self.state().tokens.insert(
                key.clone(),
                CachedToken {
                    token: token.token.clone(),
                    until: Instant::now()
                        + Duration::from_secs(token.expires_in.unwrap_or(60).max(60) * 9 / 10),
                },
            );
            (format!("Bearer {}", token.token), note)
        } else if challenges
            .iter()
            .any(|c| matches!(c, Challenge::Basic { .. }))
        {
            let Some(creds) = &ctx.access.credentials else {
                return Err(ctx.auth(
                    url,
                    "the registry asks for Basic credentials and none are configured (pull-secret annotation or registries.conf credentials)".into(),
                ));
            };
            self.state().basic.insert(ctx.key.clone());
            (basic(creds), String::new())
        } else {
            return Err(ctx.auth(
                url,
                format!(
                    "401 without a Basic or Bearer challenge ({})",
                    resp.header("www-authenticate")
                        .unwrap_or("no WWW-Authenticate")
                ),
            ));
        };
        if cached.as_deref() == Some(auth.as_str()) {
            return Err(ctx.auth(url, "the registry refused the credentials: check the username and password of the pull secret or registries.conf entry".into()));
        }
        let resp = self
            .send(ctx, url, with(Some(auth)), max_body, "the registry")
            .await?;
        if resp.status == 401 || resp.status == 403 {
            let which = if ctx.access.credentials.is_some() {
                "the credentials were refused: check the username and password of the pull secret or registries.conf entry"
            } else {
                "anonymous access was refused: configure credentials (pull-secret annotation or registries.conf)"
            };
            self.state().tokens.remove(&key);
            return Err(ctx.auth(url, format!("{} {which}{note}", resp.status)));
        }
        ctx.ok(url, resp)
    }

    /// A token from the Bearer realm; with it a note for messages when the credentials
    /// were withheld.
    async fn token(
        &self,
        ctx: &Ctx<'_>,
        url: &Url,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(fmt::Token, String), RegistryError> {
        let mut realm_url = Url::parse(realm)
            .map_err(|e| ctx.auth(url, format!("the token realm {realm:?} is not a URL: {e}")))?;
        {
            let mut q = realm_url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
        }
        let same_host = authority(&realm_url) == authority(&ctx.base);
        let (auth, note) = match &ctx.access.credentials {
            Some(c) if same_host || ctx.access.admin_configured => (Some(basic(c)), String::new()),
            Some(_) => (
                None,
                format!(
                    " (the token realm {} is on another host than the registry, so the credentials were not sent there: only registries configured in registries.conf may send them to another host)",
                    realm_url.host_str().unwrap_or(realm)
                ),
            ),
            None => (None, String::new()),
        };
        let headers = auth
            .map(|a| vec![("Authorization".to_string(), a)])
            .unwrap_or_default();
        let what = format!("the token realm {realm}");
        let resp = self
            .send(ctx, &realm_url, headers, MAX_TOKEN, &what)
            .await?;
        if resp.status != 200 {
            return Err(ctx.auth(
                &realm_url,
                format!(
                    "the token realm answered {}: {}{note}",
                    resp.status,
                    snippet(&resp.body)
                ),
            ));
        }
        let token = fmt::parse_token(&resp.body).map_err(|e| ctx.format(&realm_url, e))?;
        Ok((token, note))
    }
}

/// One registry and repository being talked to.
struct Ctx<'a> {
    access: &'a RegistryAccess,
    /// The registry's name in messages.
    name: String,
    repository: String,
    /// `api_url` without a trailing slash.
    base: Url,
    /// Key of the caches: the api_url.
    key: String,
}

impl<'a> Ctx<'a> {
    fn new(access: &'a RegistryAccess, repository: &str) -> Result<Ctx<'a>, RegistryError> {
        let c = &access.config;
        let name = if c.name.is_empty() {
            c.api_url.clone()
        } else {
            format!("{} ({})", c.name, c.api_url)
        };
        let input = |reason: String| RegistryError::Input {
            registry: name.clone(),
            repository: repository.to_string(),
            reason,
        };
        if !fmt::valid_repository(repository) {
            return Err(input(format!(
                "{repository:?} is not a valid repository name (lower-case path components)"
            )));
        }
        let api = c.api_url.trim().trim_end_matches('/');
        let base =
            Url::parse(api).map_err(|e| input(format!("api_url {api:?} is not a URL: {e}")))?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(input(format!("api_url {api:?} is not http(s)")));
        }
        Ok(Ctx {
            access,
            repository: repository.to_string(),
            key: api.to_string(),
            base,
            name,
        })
    }

    fn url(&self, path: &str) -> Result<Url, RegistryError> {
        Url::parse(&format!("{}{path}", self.key)).map_err(|e| RegistryError::Input {
            registry: self.name.clone(),
            repository: self.repository.clone(),
            reason: format!("{}{path} is not a URL: {e}", self.key),
        })
    }

    fn input(&self, reason: String) -> RegistryError {
        RegistryError::Input {
            registry: self.name.clone(),
            repository: self.repository.clone(),
            reason,
        }
    }

    fn protocol(&self, url: &Url, reason: String) -> RegistryError {
        RegistryError::Protocol {
            registry: self.name.clone(),
            repository: self.repository.clone(),
            url: url.to_string(),
            reason,
        }
    }

    fn format(&self, url: &Url, source: FormatError) -> RegistryError {
        RegistryError::Format {
            registry: self.name.clone(),
            repository: self.repository.clone(),
            url: url.to_string(),
            source: Box::new(source),
        }
    }

    fn auth(&self, url: &Url, reason: String) -> RegistryError {
        RegistryError::Auth {
            registry: self.name.clone(),
            repository: self.repository.clone(),
            url: url.to_string(),
            reason,
        }
    }

    fn status(&self, url: &Url, resp: &OutboundResponse) -> RegistryError {
        RegistryError::Status {
            registry: self.name.clone(),
            repository: self.repository.clone(),
            url: url.to_string(),
            status: resp.status,
            body: snippet(&resp.body),
        }
    }

    /// A 2xx answer, or the error naming its status.
    fn ok(&self, url: &Url, resp: OutboundResponse) -> Result<OutboundResponse, RegistryError> {
        if (200..300).contains(&resp.status) {
            Ok(resp)
        } else {
            Err(self.status(url, &resp))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates_are_capped() {
        assert_eq!(retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(retry_after("86400"), Some(MAX_RETRY_AFTER));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn the_rate_limit_lets_a_burst_through_then_paces() {
        let t0 = Instant::now();
        let mut b = Bucket::new(2.0, t0);
        assert_eq!(b.take(2.0, t0), Duration::ZERO);
        assert_eq!(b.take(2.0, t0), Duration::ZERO);
        // The third waits half a second, the fourth (queued behind it) a whole one.
        assert_eq!(b.take(2.0, t0), Duration::from_millis(500));
        assert_eq!(b.take(2.0, t0), Duration::from_secs(1));
        // After a long pause the bucket is full again, never fuller.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.take(2.0, later), Duration::ZERO);
        assert_eq!(b.take(2.0, later), Duration::ZERO);
        assert!(b.take(2.0, later) > Duration::ZERO);
    }

    #[test]
    fn digests_follow_the_algorithm_asked() {
        assert_eq!(
            digest_of(b"{}", "sha256:"),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert!(digest_of(b"{}", "sha512:x").starts_with("sha512:"));
    }

    #[test]
    fn a_repository_that_would_walk_the_url_space_is_refused() {
        let access = RegistryAccess {
            config: RegistryConfig {
                api_url: "https://registry.example.com".into(),
                ..RegistryConfig::default()
            },
            ..RegistryAccess::default()
        };
        for r in ["../admin", "a/../../b", "a?x=1", "A"] {
            let e = Ctx::new(&access, r).err().expect("refused");
            assert!(e.to_string().contains("not a valid repository"), "{e}");
        }
    }
}
