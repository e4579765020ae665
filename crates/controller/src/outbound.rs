//! The one HTTP client for URLs that users write.
//!
//! An `AnalysisTemplate`'s `web` metric or Prometheus `address`, a `RollbackPolicy`'s
//! incident webhook or Prometheus address: tenants write these URLs and the controller
//! requests them from its own network position. Every such request goes through
//! [`Outbound::send`], which applies the admin's rule ([`mooring_engine::outbound`]) to
//! every hop:
//!
//! 1. the URL must be `http(s)` with a host; a name is resolved **once**, here;
//! 2. every resolved address is checked ([`OutboundPolicy::check`]); one refused address
//!    refuses the request, with a message naming the address, why, and how the admin
//!    opens it;
//! 3. the connection goes to the checked addresses only: reqwest is given them as the
//!    name's only resolution and a resolver that refuses every other name, so no second
//!    lookup can answer differently (DNS rebinding); no proxy is used;
//! 4. redirects are followed here, at most [`MAX_REDIRECTS`], each target checked like
//!    the first URL (credentials headers are dropped when the host changes, as Go's
//!    client, which Argo Rollouts uses, does);
//! 5. one deadline covers resolution, every hop and the body, and the body is capped.
//!
//! The allowlist is the `outbound.allow` key of the `mooring-cm` ConfigMap in the
//! control-plane namespace — the admin's object, never a tenant's —, followed by a watch
//! ([`Outbound::watch_config`]), so a change applies to the next request without a
//! restart. Protected endpoints (the API servers Mooring talks to, Mooring's REST API)
//! are added by whoever starts the components ([`Outbound::protect`]).
//!
//! The controller's own configured Prometheus is not a user URL and is queried directly.

use futures::future::BoxFuture;
use mooring_engine::outbound::{
    normalize_host, OutboundPolicy, ProtectedEndpoint, Refusal, CONFIG_KEY,
};
use mooring_k8s::kube;
use reqwest::Url;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Once, RwLock};
use std::time::{Duration, Instant};

/// reqwest is built without a default TLS provider; install ring's (the provider kube
/// uses) once, so `https://` addresses (user URLs and Prometheus) work too.
pub(crate) fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Another part of the process may have installed one already: that is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An error and its sources, one line (`outer: inner: …`).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Redirects followed at most (Go's client, which Argo Rollouts uses, stops after 10).
pub const MAX_REDIRECTS: usize = 10;
/// What a protected management API server is called in refusals.
pub const MANAGEMENT_API: &str = "the management cluster's API server";
/// What Mooring's REST API is called in refusals.
pub const REST_API: &str = "Mooring's REST API";
use mooring_core::app::SETTINGS_CONFIGMAP;

/// Errors of an outbound request; each names the URL.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("invalid url `{url}`: {reason}")]
    Url { url: String, reason: String },
    #[error("{context}request to {url} refused: {refusal}; {how}")]
    Refused {
        /// `redirect from X: ` for a redirect target, else empty.
        context: String,
        url: String,
        refusal: Refusal,
        how: String,
    },
    #[error("{context}cannot resolve {host}: {reason}")]
    Resolve {
        context: String,
        host: String,
        reason: String,
    },
    #[error("request to {url} timed out after {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("request to {url} failed: {reason}")]
    Request { url: String, reason: String },
    #[error("the answer of {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url} redirected more than {MAX_REDIRECTS} times")]
    TooManyRedirects { url: String },
    #[error("{url} redirected to `{location}`, which is not a valid URL: {reason}")]
    BadRedirect {
        url: String,
        location: String,
        reason: String,
    },
}

impl OutboundError {
    /// Whether the request was refused by the address rule.
    pub fn is_refused(&self) -> bool {
        matches!(self, OutboundError::Refused { .. })
    }
}

/// Name resolution (the system's, or a double in tests).
pub trait Resolver: Send + Sync + 'static {
    fn lookup(&self, host: &str, port: u16) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>>;
}

/// The system resolver (getaddrinfo, through tokio).
#[derive(Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup(&self, host: &str, port: u16) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let host = host.to_string();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// Given to reqwest so that a name the client did not check is never resolved.
struct NoResolve;

impl reqwest::dns::Resolve for NoResolve {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        Box::pin(
            async move { Err(format!("{name} was not resolved by the outbound client").into()) },
        )
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Covers resolution, every redirect and reading the body.
    pub timeout: Duration,
    /// Largest body read.
    pub max_body: usize,
    /// Accept any TLS certificate (the web metric's `insecure`).
    pub insecure: bool,
}

impl OutboundRequest {
    pub fn new(method: reqwest::Method, url: &str) -> OutboundRequest {
        OutboundRequest {
            method,
            url: url.to_string(),
            headers: vec![],
            body: None,
            timeout: Duration::from_secs(10),
            max_body: 1024 * 1024,
            insecure: false,
        }
    }
}

/// The final answer (after redirects).
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    pub status: u16,
    /// Its headers in order, names lower-cased (a repeated header appears repeatedly;
    /// values that are not UTF-8 are read lossily).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl OutboundResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).next()
    }

    /// Every value of header `name` (any case), in order.
    pub fn headers_named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(move |(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Inner {
    namespace: String,
    allow: RwLock<Option<String>>,
    protected: RwLock<Vec<ProtectedEndpoint>>,
    resolver: Arc<dyn Resolver>,
}

/// The outbound client: cheap to clone, shared by every provider of a controller.
#[derive(Clone)]
pub struct Outbound {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("namespace", &self.inner.namespace)
            .field("allow", &self.allow_text())
            .finish()
    }
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound::new(mooring_core::app::CONTROL_PLANE_NAMESPACE)
    }
}

impl Outbound {
    /// A client whose allowlist comes from `mooring-cm` in `namespace` (empty until
    /// [`Outbound::watch_config`] or [`Outbound::set_allowlist`] sets it).
    pub fn new(namespace: &str) -> Outbound {
        Outbound::with_resolver(namespace, Arc::new(SystemResolver))
    }

    /// The same with another resolver (tests: a name that changes its answer).
    pub fn with_resolver(namespace: &str, resolver: Arc<dyn Resolver>) -> Outbound {
        Outbound {
            inner: Arc::new(Inner {
                namespace: namespace.to_string(),
                allow: RwLock::new(None),
                protected: RwLock::new(vec![]),
                resolver,
            }),
        }
    }

    /// Set the `outbound.allow` value (`None`: no key). A value that does not parse is
    /// logged and not used; refusals say why.
    pub fn set_allowlist(&self, value: Option<&str>) {
        let mut cur = self
            .inner
            .allow
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cur.as_deref() == value {
            return;
        }
        *cur = value.map(str::to_string);
        drop(cur);
        let policy = self.policy();
        match &policy.config_error {
            Some(e) => tracing::warn!(
                "ConfigMap {}/{SETTINGS_CONFIGMAP}: {e}; the outbound allowlist is not used",
                self.inner.namespace
            ),
            None => tracing::info!(
                "outbound allowlist ({}/{SETTINGS_CONFIGMAP} {CONFIG_KEY}): {}",
                self.inner.namespace,
                if policy.allow.entries.is_empty() {
                    "empty".to_string()
                } else {
                    policy
                        .allow
                        .entries
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        }
    }

    /// The `outbound.allow` value in force.
    pub fn allow_text(&self) -> Option<String> {
        self.inner
            .allow
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The rule in force now.
    pub fn policy(&self) -> OutboundPolicy {
        let allow = self.allow_text();
        let protected = self
            .inner
            .protected
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        OutboundPolicy::from_config(allow.as_deref(), protected)
    }

    /// Protect the API server of the cluster this process runs in, when it runs in one
    /// (`KUBERNETES_SERVICE_HOST`/`_PORT`, and `kubernetes.default.svc`), as
    /// [`MANAGEMENT_API`].
    pub fn protect_in_cluster_api(&self) {
        let (Ok(host), Ok(port)) = (
            std::env::var("KUBERNETES_SERVICE_HOST"),
            std::env::var("KUBERNETES_SERVICE_PORT"),
        ) else {
            return;
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        for url in [
            format!("https://{host}:{port}"),
            "https://kubernetes.default.svc:443".to_string(),
        ] {
            self.protect(&url, MANAGEMENT_API);
        }
    }

    /// Never send a user's request to `url`'s host and port (an API server, Mooring's
    /// REST API) unless the allowlist names it exactly. `what` says what it is.
    ///
    /// A host name is matched as written at once and by its addresses once resolved (in
    /// the background: a slow resolver must not stall the caller). Needs a tokio runtime.
    pub fn protect(&self, url: &str, what: &str) {
        let Ok(u) = Url::parse(url.trim()) else {
            tracing::warn!("protected endpoint `{url}` is not a URL; not protected");
            return;
        };
        let (Some(host), Some(port)) = (u.host(), u.port_or_known_default()) else {
            tracing::warn!("protected endpoint `{url}` has no host or port; not protected");
            return;
        };
        let (name, ips, domain) = match host {
            url::Host::Ipv4(a) => (a.to_string(), vec![IpAddr::V4(a)], None),
            url::Host::Ipv6(a) => (a.to_string(), vec![IpAddr::V6(a)], None),
            url::Host::Domain(d) => (normalize_host(d), vec![], Some(d.to_string())),
        };
        {
            let mut p = self
                .inner
                .protected
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if p.iter().any(|e| e.host == name && e.port == port) {
                return;
            }
            p.push(ProtectedEndpoint {
                host: name.clone(),
                ips,
                port,
                what: what.to_string(),
            });
        }
        if let Some(domain) = domain {
            let me = self.clone();
            tokio::spawn(async move {
                let lookup = me.inner.resolver.lookup(&domain, port);
                let ips = match tokio::time::timeout(Duration::from_secs(30), lookup).await {
                    Ok(Ok(ips)) => ips,
                    Ok(Err(e)) => {
                        tracing::debug!("resolving protected endpoint {domain}: {e}");
                        return;
                    }
                    Err(_) => return,
                };
                let mut p = me
                    .inner
                    .protected
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(e) = p.iter_mut().find(|e| e.host == name && e.port == port) {
                    e.ips = ips;
                }
            });
        }
    }

    /// Check `url` against the rule now; the addresses a connection may use.
    pub async fn admit(&self, url: &Url, context: &str) -> Result<Vec<SocketAddr>, OutboundError> {
        let bad = |reason: &str| OutboundError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(bad(&format!(
                "scheme `{}` is not http or https",
                url.scheme()
            )));
        }
        self.admit_host(url, context).await
    }

    /// Check a mail server (the notifications' email service) against the rule, as
    /// [`Outbound::admit`] checks a URL; the addresses a connection may use. Refusals name
    /// it `smtp://HOST:PORT`.
    pub async fn admit_smtp(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, OutboundError> {
        self.admit_service("smtp", host, port).await
    }

    /// Check a DNS server (a disaster-recovery plan's RFC 2136 server) against the rule,
    /// as [`Outbound::admit_smtp`]; refusals name it `dns://HOST:PORT`.
    pub async fn admit_dns(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, OutboundError> {
        self.admit_service("dns", host, port).await
    }

    /// Check a plain TCP endpoint (a disaster-recovery plan's TCP check) as
    /// [`Outbound::admit_smtp`] checks a mail server; refusals name it `tcp://HOST:PORT`.
    pub async fn admit_tcp(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, OutboundError> {
        self.admit_service("tcp", host, port).await
    }

    /// A non-HTTP server `HOST:PORT`, shown as `SCHEME://HOST:PORT`, checked as a URL.
    async fn admit_service(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, OutboundError> {
        let host = match host.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => format!("[{v6}]"),
            Err(_) => host.to_string(),
        };
        let shown = format!("{scheme}://{host}:{port}");
        let url = Url::parse(&shown).map_err(|e| OutboundError::Url {
            url: shown.clone(),
            reason: e.to_string(),
        })?;
        self.admit_host(&url, "").await
    }

    /// [`Outbound::admit`] after the scheme: resolve `url`'s host once, check every address.
    async fn admit_host(&self, url: &Url, context: &str) -> Result<Vec<SocketAddr>, OutboundError> {
        let bad = |reason: &str| OutboundError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let host = url.host().ok_or_else(|| bad("no host"))?;
        let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
        let (name, ips) = match host {
            url::Host::Ipv4(a) => (a.to_string(), vec![IpAddr::V4(a)]),
            url::Host::Ipv6(a) => (a.to_string(), vec![IpAddr::V6(a)]),
            // A non-special scheme (`smtp://`) leaves an IPv4 address as a domain.
            url::Host::Domain(d) if d.parse::<std::net::Ipv4Addr>().is_ok() => {
                let ip: IpAddr = d
                    .parse::<std::net::Ipv4Addr>()
                    .map_err(|e| bad(&e.to_string()))?
                    .into();
                (ip.to_string(), vec![ip])
            }
            url::Host::Domain(d) => {
                let ips = self.inner.resolver.lookup(d, port).await.map_err(|e| {
                    OutboundError::Resolve {
                        context: context.to_string(),
                        host: d.to_string(),
                        reason: e.to_string(),
                    }
                })?;
                if ips.is_empty() {
                    return Err(OutboundError::Resolve {
                        context: context.to_string(),
                        host: d.to_string(),
                        reason: "no address".into(),
                    });
                }
                (d.to_string(), ips)
            }
        };
        let policy = self.policy();
        let mut addrs = Vec::with_capacity(ips.len());
        for ip in ips {
            policy
                .check(&name, ip, port)
                .map_err(|refusal| OutboundError::Refused {
                    context: context.to_string(),
                    url: url.to_string(),
                    refusal,
                    how: policy.how_to_allow(&self.inner.namespace),
                })?;
            addrs.push(SocketAddr::new(ip, port));
        }
        Ok(addrs)
    }

    /// Send `req`, following redirects that pass the rule.
    pub async fn send(&self, req: OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        install_crypto_provider();
        let started = Instant::now();
        let deadline = started + req.timeout;
        let original = req.url.trim().to_string();
        let mut url = Url::parse(&original).map_err(|e| OutboundError::Url {
            url: original.clone(),
            reason: e.to_string(),
        })?;
        let mut method = req.method.clone();
        let mut body = req.body.clone();
        let mut headers = req.headers.clone();
        let timed_out = |url: &Url| OutboundError::Timeout {
            url: url.to_string(),
            after: req.timeout,
        };
        for hop in 0..=MAX_REDIRECTS {
            let context = if hop == 0 {
                String::new()
            } else {
                format!("redirect from {original}: ")
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(timed_out(&url));
            }
            let addrs = tokio::time::timeout(remaining, self.admit(&url, &context))
                .await
                .map_err(|_| timed_out(&url))??;
            let mut builder = reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .dns_resolver(Arc::new(NoResolve))
                .timeout(remaining)
                .danger_accept_invalid_certs(req.insecure);
            if let Some(url::Host::Domain(d)) = url.host() {
                builder = builder.resolve_to_addrs(d, &addrs);
            }
            let client = builder.build().map_err(|e| OutboundError::Request {
                url: url.to_string(),
                reason: error_chain(&e),
            })?;
            let mut rb = client.request(method.clone(), url.clone());
            for (k, v) in &headers {
                rb = rb.header(k.as_str(), v.as_str());
            }
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            let mut resp = rb.send().await.map_err(|e| {
                if e.is_timeout() {
                    timed_out(&url)
                } else {
                    OutboundError::Request {
                        url: url.to_string(),
                        reason: error_chain(&e),
                    }
                }
            })?;
            let status = resp.status();
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|l| String::from_utf8_lossy(l.as_bytes()).to_string());
            if let (true, Some(location)) = (
                matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308),
                location,
            ) {
                let next = url
                    .join(location.trim())
                    .map_err(|e| OutboundError::BadRedirect {
                        url: url.to_string(),
                        location: location.clone(),
                        reason: e.to_string(),
                    })?;
                // 303 always, and 301/302 after a POST, become a GET without body.
                if status.as_u16() == 303
                    || (matches!(status.as_u16(), 301 | 302) && method == reqwest::Method::POST)
                {
                    method = reqwest::Method::GET;
                    body = None;
                    headers.retain(|(k, _)| {
                        !k.eq_ignore_ascii_case("content-type")
                            && !k.eq_ignore_ascii_case("content-length")
                    });
                }
                if next.host_str() != url.host_str()
                    || next.port_or_known_default() != url.port_or_known_default()
                {
                    headers.retain(|(k, _)| {
                        ![
                            "authorization",
                            "cookie",
                            "proxy-authorization",
                            "www-authenticate",
                        ]
                        .iter()
                        .any(|s| k.eq_ignore_ascii_case(s))
                    });
                }
                url = next;
                continue;
            }
            let response_headers = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let mut out = Vec::new();
            loop {
                let remaining = deadline.saturating_duration_since(Instant::now());
                let chunk = tokio::time::timeout(remaining, resp.chunk())
                    .await
                    .map_err(|_| timed_out(&url))?
                    .map_err(|e| {
                        if e.is_timeout() {
                            timed_out(&url)
                        } else {
                            OutboundError::Request {
                                url: url.to_string(),
                                reason: format!("reading the body: {}", error_chain(&e)),
                            }
                        }
                    })?;
                let Some(chunk) = chunk else { break };
                if out.len() + chunk.len() > req.max_body {
                    return Err(OutboundError::TooLarge {
                        url: url.to_string(),
                        limit: req.max_body,
                    });
                }
                out.extend_from_slice(&chunk);
            }
            return Ok(OutboundResponse {
                status: status.as_u16(),
                headers: response_headers,
                body: out,
            });
        }
        Err(OutboundError::TooManyRedirects { url: original })
    }

    /// Read `outbound.allow` from the `mooring-cm` ConfigMap of the control-plane
    /// namespace now (a controller starts with the admin's allowlist in force, not after
    /// its watch's first answer). An unreadable ConfigMap leaves the allowlist empty.
    pub async fn load_config(&self, client: kube::Client) {
        use mooring_k8s::k8s_openapi::api::core::v1::ConfigMap;
        let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &self.inner.namespace);
        match api.get_opt(SETTINGS_CONFIGMAP).await {
            Ok(cm) => self.set_allowlist(
                cm.as_ref()
                    .and_then(|cm| cm.data.as_ref())
                    .and_then(|d| d.get(CONFIG_KEY))
                    .map(String::as_str),
            ),
            Err(e) => tracing::warn!(
                "reading ConfigMap {}/{SETTINGS_CONFIGMAP}: {e}; the outbound allowlist is empty until it can be read",
                self.inner.namespace
            ),
        }
    }

    /// Follow `outbound.allow` in the `mooring-cm` ConfigMap of the control-plane
    /// namespace (the management cluster's): every change applies to the next request.
    pub fn watch_config(&self, client: kube::Client) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            use kube::runtime::watcher::{Config, Event};
            use kube::runtime::WatchStreamExt;
            use mooring_k8s::k8s_openapi::api::core::v1::ConfigMap;
            let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &me.inner.namespace);
            let cfg = Config::default().fields(&format!("metadata.name={SETTINGS_CONFIGMAP}"));
            let mut stream = kube::runtime::watcher(api, cfg).default_backoff().boxed();
            let value = |cm: &ConfigMap| cm.data.as_ref().and_then(|d| d.get(CONFIG_KEY)).cloned();
            let mut seen: Option<Option<String>> = None;
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(Event::Init) => seen = Some(None),
                    Ok(Event::InitApply(cm)) => {
                        if cm.metadata.name.as_deref() == Some(SETTINGS_CONFIGMAP) {
                            seen = Some(value(&cm));
                        }
                    }
                    Ok(Event::InitDone) => {
                        me.set_allowlist(seen.take().flatten().as_deref());
                    }
                    Ok(Event::Apply(cm)) => {
                        if cm.metadata.name.as_deref() == Some(SETTINGS_CONFIGMAP) {
                            me.set_allowlist(value(&cm).as_deref());
                        }
                    }
                    Ok(Event::Delete(cm)) => {
                        if cm.metadata.name.as_deref() == Some(SETTINGS_CONFIGMAP) {
                            me.set_allowlist(None);
                        }
                    }
                    Err(e) => {
                        tracing::debug!("watching ConfigMap {SETTINGS_CONFIGMAP}: {e}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A name that resolves to a refused address and a public one.
    struct Mixed;

    impl Resolver for Mixed {
        fn lookup(&self, _: &str, _: u16) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
            Box::pin(async {
                Ok(vec![
                    "93.184.216.34".parse().expect("ip"),
                    "169.254.169.254".parse().expect("ip"),
                ])
            })
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_refused_address_is_refused() {
        let o = Outbound::with_resolver("argocd", Arc::new(Mixed));
        let e = o
            .send(OutboundRequest::new(
                reqwest::Method::GET,
                "http://metrics.example.com/latest/meta-data/",
            ))
            .await
            .expect_err("refused");
        assert!(e.is_refused(), "{e}");
        assert_eq!(
            e.to_string(),
            "request to http://metrics.example.com/latest/meta-data/ refused: 169.254.169.254 is a link-local address (this range holds cloud metadata services); an admin can allow it in the `outbound.allow` key of ConfigMap mooring-cm in namespace argocd"
        );
    }

    #[tokio::test]
    async fn the_connection_uses_the_checked_address_only() {
        // A local server stands for the attacker's target.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // A DNS rebinding attacker's name: public at the check, loopback afterwards. It
        // is resolved once, and the client connects to that checked answer (a
        // documentation address that is never routed), never to loopback.
        struct PublicThenLoopback(AtomicUsize);
        impl Resolver for PublicThenLoopback {
            fn lookup(&self, _: &str, _: u16) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
                let n = self.0.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    Ok(vec![if n == 0 {
                        // TEST-NET-1: documentation range, never routed.
                        "192.0.2.1".parse().expect("ip")
                    } else {
                        "127.0.0.1".parse().expect("ip")
                    }])
                })
            }
        }
        let resolver = Arc::new(PublicThenLoopback(AtomicUsize::new(0)));
        let o = Outbound::with_resolver("argocd", resolver.clone());
        let mut req = OutboundRequest::new(
            reqwest::Method::GET,
            &format!("http://rebind.example:{port}/"),
        );
        req.timeout = Duration::from_millis(500);
        let e = o.send(req).await.expect_err("not the local server");
        assert!(!e.is_refused(), "{e}");
        // Nothing was accepted by the local server: the client never connected to it.
        listener.set_nonblocking(true).expect("nonblocking");
        assert!(listener.accept().is_err(), "the client reached loopback");
        assert_eq!(resolver.0.load(Ordering::SeqCst), 1, "resolved once");
        // The next request resolves again and is refused at once.
        let e = o
            .send(OutboundRequest::new(
                reqwest::Method::GET,
                &format!("http://rebind.example:{port}/"),
            ))
            .await
            .expect_err("refused");
        assert!(e.is_refused(), "{e}");
    }

    /// A one-route server on 127.0.0.1: answers every request with `reply(port)` and
    /// records each request head.
    async fn server(
        reply: impl Fn(u16) -> String + Send + Sync + 'static,
    ) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let s = seen.clone();
        let reply = Arc::new(reply);
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = l.accept().await {
                let mut buf = vec![0u8; 16384];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                s.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&buf[..n]).to_lowercase());
                let _ = sock.write_all(reply(port).as_bytes()).await;
            }
        });
        (port, seen)
    }

    #[tokio::test]
    async fn redirects_are_checked_capped_and_drop_credentials() {
        // B answers; A redirects to B (another port: the same host, another origin).
        let (b, b_seen) = server(|_| {
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".into()
        })
        .await;
        let (a, a_seen) = server(move |_| {
            format!("HTTP/1.1 307 X\r\nlocation: http://127.0.0.1:{b}/b\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        })
        .await;
        let o = Outbound::default();
        let mut req =
            OutboundRequest::new(reqwest::Method::POST, &format!("http://127.0.0.1:{a}/a"));
        req.headers = vec![("Authorization".into(), "Bearer s3cret".into())];
        req.body = Some(b"{}".to_vec());
        // Only A is allowed: the redirect to B is refused, B sees nothing.
        o.set_allowlist(Some(&format!("127.0.0.1:{a}")));
        let e = o.send(req.clone()).await.expect_err("redirect refused");
        assert!(e.is_refused(), "{e}");
        assert!(
            e.to_string().starts_with(&format!(
                "redirect from http://127.0.0.1:{a}/a: request to http://127.0.0.1:{b}/b refused"
            )),
            "{e}"
        );
        assert!(b_seen.lock().expect("lock").is_empty());
        // Both allowed: followed (307 keeps the method), without the credentials.
        o.set_allowlist(Some(&format!("127.0.0.1:{a}, 127.0.0.1:{b}")));
        let r = o.send(req).await.expect("followed");
        assert_eq!(r.status, 200);
        let at_b = b_seen.lock().expect("lock")[0].clone();
        assert!(at_b.starts_with("post /b"), "{at_b}");
        assert!(!at_b.contains("s3cret"), "{at_b}");
        assert!(a_seen.lock().expect("lock")[1].contains("s3cret"));

        // A loop is cut after MAX_REDIRECTS.
        let (l, l_seen) = server(|port| {
            format!("HTTP/1.1 302 X\r\nlocation: http://127.0.0.1:{port}/again\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        })
        .await;
        o.set_allowlist(Some(&format!("127.0.0.1:{l}")));
        let e = o
            .send(OutboundRequest::new(
                reqwest::Method::GET,
                &format!("http://127.0.0.1:{l}/"),
            ))
            .await
            .expect_err("loop");
        assert!(matches!(e, OutboundError::TooManyRedirects { .. }), "{e}");
        assert_eq!(l_seen.lock().expect("lock").len(), MAX_REDIRECTS + 1);

        // Bodies are capped.
        let (big, _) = server(|_| {
            let body = "x".repeat(4096);
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        })
        .await;
        o.set_allowlist(Some("127.0.0.1"));
        let mut req =
            OutboundRequest::new(reqwest::Method::GET, &format!("http://127.0.0.1:{big}/"));
        req.max_body = 1024;
        let e = o.send(req).await.expect_err("too large");
        assert!(
            matches!(e, OutboundError::TooLarge { limit: 1024, .. }),
            "{e}"
        );
    }

    #[tokio::test]
    async fn protected_endpoints_are_matched_by_name_and_by_address() {
        struct Fixed;
        impl Resolver for Fixed {
            fn lookup(&self, _: &str, _: u16) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
                Box::pin(async { Ok(vec!["10.0.0.9".parse().expect("ip")]) })
            }
        }
        let o = Outbound::with_resolver("argocd", Arc::new(Fixed));
        o.protect("https://API.internal:6443/", MANAGEMENT_API);
        let get = |url: &str| OutboundRequest::new(reqwest::Method::GET, url);
        let e = o
            .send(get("https://api.internal:6443/api"))
            .await
            .expect_err("by name");
        assert!(e.to_string().contains(MANAGEMENT_API), "{e}");
        // Its address, once resolved in the background, on its port only.
        let mut last = String::new();
        let by_ip = Url::parse("https://10.0.0.9:6443/api").expect("url");
        for _ in 0..100 {
            // `admit` only checks (no connection is attempted while the name resolves).
            match o.admit(&by_ip, "").await {
                Err(e) if e.is_refused() => {
                    last = e.to_string();
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        assert_eq!(
            last,
            "request to https://10.0.0.9:6443/api refused: 10.0.0.9:6443 is the management cluster's API server; an admin can allow it in the `outbound.allow` key of ConfigMap mooring-cm in namespace argocd"
        );
        // Naming it exactly in the allowlist opens it.
        o.set_allowlist(Some("api.internal:6443"));
        let admitted = o
            .admit(&Url::parse("https://api.internal:6443/").expect("url"), "")
            .await
            .expect("allowed");
        assert_eq!(
            admitted,
            vec!["10.0.0.9:6443".parse::<SocketAddr>().expect("addr")]
        );
    }

    #[tokio::test]
    async fn urls_that_are_not_http_or_spell_loopback_oddly_are_refused() {
        let o = Outbound::default();
        for (url, wanted) in [
            ("file:///etc/passwd", "is not http or https"),
            ("gopher://127.0.0.1/", "is not http or https"),
            ("http://0x7f000001:1/", "127.0.0.1 is a loopback address"),
            ("http://2130706433:1/", "127.0.0.1 is a loopback address"),
            ("http://[::ffff:127.0.0.1]:1/", "is a loopback address"),
            ("http://0.0.0.0:1/", "0.0.0.0 is the unspecified address"),
            ("http://[::]:1/", ":: is the unspecified address"),
            ("http://224.0.0.1/", "is a multicast address"),
            ("http://[fe80::1]/", "is a link-local address"),
        ] {
            let e = o
                .send(OutboundRequest::new(reqwest::Method::GET, url))
                .await
                .expect_err(url);
            assert!(e.to_string().contains(wanted), "{url}: {e}");
        }
    }
}
