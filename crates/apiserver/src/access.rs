//! Who may talk to the embedded cluster, and with what.
//!
//! The embedded cluster's storage holds what the management cluster holds: repository
//! passwords, SSH keys, cluster bearer tokens. Anything that can reach its port must
//! therefore prove it may, whatever the port is bound to. Every request passes three
//! checks, in this order, before its body is read:
//!
//! 1. **`Host` names this server** ([`Access::check_host`]). A web page on another origin
//!    can make a browser send requests to 127.0.0.1 by re-pointing its own DNS name at it
//!    (DNS rebinding); the browser then still sends the attacker's name in `Host`. Only
//!    the names the server is bound to are accepted: `127.0.0.1`, `localhost` and `[::1]`
//!    with the port, the bind address, and the configured hostnames. Anything else is a
//!    `403 Forbidden` (reason `Forbidden`), the answer DNS-rebinding protections give
//!    (Jupyter's `allow_remote_access` check and Vite's `server.allowedHosts` both answer
//!    403 "Blocked request"): the request is understood and refused for who sent it, and
//!    the rebinding page can read nothing from it. A request without `Host` is refused the
//!    same way (HTTP/1.1 requires it).
//! 2. **A bearer token** ([`Access::check_token`]): `Authorization: Bearer <token>`, where
//!    the token is 256 random bits generated once per data directory and kept in its
//!    [`TOKEN_FILE`] (0600), or once per start for an in-memory cluster. The cluster writes
//!    it into the kubeconfig it writes, so kubectl, kube-rs and Mooring's own components
//!    authenticate without knowing it exists. The comparison is constant-time. Anything
//!    else is a `401` with a Kubernetes `Status` of reason `Unauthorized`, as the real API
//!    server answers, except the paths the real API server opens to anonymous users
//!    through its `system:public-info-viewer` role: `/livez`, `/readyz`, `/healthz` and
//!    `/version` ([`is_public`]).
//! 3. **A body in a format Kubernetes accepts**: JSON, YAML or Kubernetes protobuf
//!    (`application/vnd.kubernetes.protobuf`, built-in kinds only: [`crate::protobuf`])
//!    for create, update and delete options, and the patch types for PATCH; see
//!    [`body_format`]. Anything else —
//!    in particular the three "simple" content types a browser sends cross-site without
//!    asking first (`text/plain`, `application/x-www-form-urlencoded`,
//!    `multipart/form-data`) — is a `415 Unsupported Media Type` and nothing is written.
//!    A body without `Content-Type` is read as JSON, as Kubernetes does: the official
//!    Python client (what the KServe and Kubeflow SDKs use) sends none. That opens no
//!    cross-site door, because every request also needs the bearer token in an
//!    `Authorization` header, which a browser never sends cross-site without a CORS
//!    preflight this server does not grant.

use crate::error::ApiError;
use axum::http::{header, HeaderMap, Method, Uri};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The file, in a cluster's data directory, that keeps its bearer token.
pub const TOKEN_FILE: &str = "token";

/// Random bytes in a token (256 bits).
const TOKEN_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("cannot read the cluster token {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the cluster token {path} is not {len} hexadecimal characters (it was changed by hand?): delete it to generate a new one, then use the new kubeconfig")]
    Malformed { path: PathBuf, len: usize },
    #[error("cannot write the cluster token {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A cluster's bearer token. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// 256 bits from the thread-local CSPRNG (ChaCha seeded by the operating system),
    /// as 64 lowercase hexadecimal characters.
    pub fn generate() -> Token {
        use rand::RngCore as _;
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Token(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The token of the data directory `dir`: read from its [`TOKEN_FILE`] (whose mode is
    /// tightened to 0600), or generated and written there (0600) on first start.
    pub fn load_or_create(dir: &Path) -> Result<Token, AccessError> {
        let path = dir.join(TOKEN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                crate::files::make_private(&path).map_err(|source| AccessError::Write {
                    path: path.clone(),
                    source,
                })?;
                let t = text.trim();
                if t.len() != 2 * TOKEN_BYTES || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(AccessError::Malformed {
                        path,
                        len: 2 * TOKEN_BYTES,
                    });
                }
                Ok(Token(t.to_ascii_lowercase()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let t = Token::generate();
                crate::files::write_private(&path, t.0.as_bytes())
                    .map_err(|source| AccessError::Write { path, source })?;
                Ok(t)
            }
            Err(source) => Err(AccessError::Read { path, source }),
        }
    }

    /// The secret itself, for kubeconfigs and scrape configurations.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq as _;
        self.0.as_bytes().ct_eq(presented).into()
    }
}

/// The paths anyone may read, as Kubernetes' `system:public-info-viewer` ClusterRole
/// grants them to unauthenticated users.
pub fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/livez" | "/readyz" | "/healthz" | "/version" | "/version/"
    )
}

/// The access rules of one running server.
#[derive(Debug, Clone)]
pub struct Access {
    token: Token,
    /// Accepted `Host` values, lowercase `host:port` (and bare hosts on a default port).
    hosts: Vec<String>,
}

impl Access {
    /// Rules for a server at `bind:port` also known as `hostnames`.
    pub fn new(token: Token, bind: IpAddr, port: u16, hostnames: &[String]) -> Self {
        let mut names: Vec<String> = vec!["127.0.0.1".into(), "localhost".into(), "[::1]".into()];
        if !bind.is_unspecified() {
            names.push(host_literal(bind));
        }
        names.extend(hostnames.iter().map(|h| h.to_ascii_lowercase()));
        let mut hosts = Vec::new();
        for n in names {
            hosts.push(format!("{n}:{port}"));
            // HTTPS' default port goes without saying.
            if port == 443 {
                hosts.push(n);
            }
        }
        hosts.sort();
        hosts.dedup();
        Access { token, hosts }
    }

    /// The server's token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// All three checks of the module docs but the body's format, which needs the route.
    pub fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        self.check_host(uri, headers)?;
        if is_public(uri.path()) {
            return Ok(());
        }
        self.check_token(headers)
    }

    /// Refuse a request whose `Host` names none of this server's addresses.
    pub fn check_host(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = match headers.get(header::HOST) {
            Some(h) => Some(
                h.to_str()
                    .map_err(|_| {
                        ApiError::Forbidden("the Host header is not valid text: refused".into())
                    })?
                    .to_string(),
            ),
            None => uri.authority().map(|a| a.as_str().to_string()),
        };
        let Some(host) = host else {
            return Err(ApiError::Forbidden(
                "the request has no Host header: refused (HTTP/1.1 requires one)".into(),
            ));
        };
        let wanted = host.trim().to_ascii_lowercase();
        if self.hosts.contains(&wanted) {
            return Ok(());
        }
        // The accepted names are not echoed: the rebinding page would read them.
        let shown: String = host.chars().take(256).collect();
        tracing::debug!(host = %shown, accepted = ?self.hosts, "Host refused");
        Err(ApiError::Forbidden(format!(
            "Host {shown:?} does not name this server: refused as a possible DNS-rebinding request (if it is a name of yours, start the cluster with --hostname NAME)"
        )))
    }

    /// Refuse a request without this server's bearer token.
    pub fn check_token(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized(
                "Unauthorized: the request has no bearer token (use the kubeconfig the cluster wrote)".into(),
            ));
        };
        // As Kubernetes' bearer-token authenticator: the scheme case-insensitively, then
        // the token up to the next space.
        let bytes = value.as_bytes();
        let token = match bytes.iter().position(|b| *b == b' ') {
            Some(i) if bytes[..i].eq_ignore_ascii_case(b"bearer") => {
                let rest = &bytes[i + 1..];
                let end = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
                &rest[..end]
            }
            _ => {
                return Err(ApiError::Unauthorized(
                    "Unauthorized: the Authorization header is not `Bearer <token>`".into(),
                ))
            }
        };
        if self.token.matches(token) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized(
                "Unauthorized: the bearer token is not valid for this cluster".into(),
            ))
        }
    }
}

/// How a host address is written in a URL or `Host` header (`[::1]` for IPv6).
pub fn host_literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The formats a request body may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Yaml,
    /// `application/vnd.kubernetes.protobuf` ([`crate::protobuf`]).
    Protobuf,
}

/// The format of the body of a create, update or delete request, from its
/// `Content-Type`: `application/json`, `application/yaml` or
/// `application/vnd.kubernetes.protobuf` (parameters such as `charset` aside), as
/// Kubernetes accepts; anything else is a 415. (Whether the kind has a protobuf form is
/// the caller's to check: custom resources do not.)
pub fn body_format(_method: &Method, headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let accepted = "accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf";
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        // Kubernetes' default (the Python client names no content type).
        return Ok(BodyFormat::Json);
    };
    let ct = value.to_str().unwrap_or_default();
    match media_type(ct).as_str() {
        "application/json" => Ok(BodyFormat::Json),
        "application/yaml" => Ok(BodyFormat::Yaml),
        crate::protobuf::MEDIA_TYPE => Ok(BodyFormat::Protobuf),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - {accepted} (got {ct:?})"
        ))),
    }
}

/// The essence of a media type: `type/subtype`, lowercase, without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    fn access() -> Access {
        Access::new(
            Token("ab".repeat(32)),
            "127.0.0.1".parse().expect("ip"),
            6443,
            &["Mooring.Example".into()],
        )
    }

    #[test]
    fn tokens_are_256_random_bits() {
        let (a, b) = (Token::generate(), Token::generate());
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(a.matches(a.expose().as_bytes()));
        assert!(!a.matches(b.expose().as_bytes()));
        assert!(!a.matches(&a.expose().as_bytes()[..63]));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn bearer_token_is_required_and_compared() {
        let a = access();
        let uri: Uri = "/api/v1/namespaces".parse().expect("uri");
        let host = (&header::HOST, "127.0.0.1:6443");
        let good = format!("Bearer {}", "ab".repeat(32));
        assert!(a.check(&uri, &headers(&[host])).is_err());
        assert!(a
            .check(&uri, &headers(&[host, (&header::AUTHORIZATION, &good)]))
            .is_ok());
        let lower = format!("bearer {}", "ab".repeat(32));
        assert!(a
            .check(&uri, &headers(&[host, (&header::AUTHORIZATION, &lower)]))
            .is_ok());
        for bad in [
            "Bearer mooring-embedded",
            "Bearer ",
            "Basic YWRtaW46YWRtaW4=",
            "abababab",
        ] {
            let e = a
                .check(&uri, &headers(&[host, (&header::AUTHORIZATION, bad)]))
                .expect_err(bad);
            assert_eq!(e.code(), 401, "{bad}");
            assert_eq!(e.reason(), "Unauthorized", "{bad}");
        }
        let public: Uri = "/readyz".parse().expect("uri");
        assert!(a.check(&public, &headers(&[host])).is_ok());
        let not_public: Uri = "/readyz/etcd".parse().expect("uri");
        assert!(a.check(&not_public, &headers(&[host])).is_err());
    }

    #[test]
    fn host_must_name_this_server() {
        let a = access();
        let uri: Uri = "/version".parse().expect("uri");
        for ok in [
            "127.0.0.1:6443",
            "localhost:6443",
            "LOCALHOST:6443",
            "[::1]:6443",
            "mooring.example:6443",
        ] {
            assert!(
                a.check(&uri, &headers(&[(&header::HOST, ok)])).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "evil.example",
            "evil.example:6443",
            "127.0.0.1",
            "127.0.0.1:80",
            "localhost.evil.example:6443",
        ] {
            let e = a
                .check(&uri, &headers(&[(&header::HOST, bad)]))
                .expect_err(bad);
            assert_eq!(e.code(), 403, "{bad}");
            assert!(e.to_string().contains("DNS-rebinding"), "{e}");
        }
        assert_eq!(
            a.check(&uri, &HeaderMap::new())
                .expect_err("no host")
                .code(),
            403
        );
    }

    #[test]
    fn only_kubernetes_body_formats() {
        let m = Method::POST;
        let ct = |v: &str| headers(&[(&header::CONTENT_TYPE, v)]);
        assert_eq!(
            body_format(&m, &ct("application/json")).expect("json"),
            BodyFormat::Json
        );
        assert_eq!(
            body_format(&m, &ct("application/json; charset=utf-8")).expect("json"),
            BodyFormat::Json
        );
        assert_eq!(
            body_format(&m, &ct("application/yaml")).expect("yaml"),
            BodyFormat::Yaml
        );
        assert_eq!(
            body_format(&m, &ct("application/vnd.kubernetes.protobuf")).expect("protobuf"),
            BodyFormat::Protobuf
        );
        for bad in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/x-protobuf",
            "text/yaml",
            "application/jsonx",
        ] {
            assert_eq!(body_format(&m, &ct(bad)).expect_err(bad).code(), 415);
        }
        assert_eq!(
            body_format(&m, &HeaderMap::new()).expect("none is JSON"),
            BodyFormat::Json
        );
    }
}
