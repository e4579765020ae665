//! The OCI distribution protocol's message formats, parsed from values (no I/O).
//!
//! The controller's registry client (`mooring_controller::image::registry`) does the
//! requests; everything it reads from a registry — a hostile party as far as Mooring is
//! concerned: any tenant can name any registry in an annotation — is parsed here, where
//! it can be tested against hostile input without a network:
//!
//! - [`parse_challenges`]: `WWW-Authenticate` (RFC 9110 §11.6.1: several challenges in
//!   one header, quoted strings with commas and escapes inside);
//! - [`parse_next_link`]: the `Link: <…>; rel="next"` of a paginated tags list (RFC 8288);
//! - [`parse_tags_list`], [`parse_token`]: the tags list and the token server's answer;
//! - [`parse_manifest`]: an OCI image index, OCI image manifest, Docker manifest list or
//!   Docker image manifest v2 (schema 1 is refused: it carries no config blob and was
//!   removed from Docker Hub), with [`select_platform`] choosing an index's entry;
//! - [`parse_config`]: the config blob's `created`, `os`, `architecture`;
//! - [`parse_notification`]: the distribution registry's notification envelope
//!   (`application/vnd.docker.distribution.events.v1+json`), as typed push events for
//!   the watcher's webhook.
//!
//! Digests, repository names and tags read from a registry end up in URLs and in Git
//! commits, so each is checked against the distribution grammar ([`valid_digest`],
//! [`valid_repository`], [`valid_tag`]) before it leaves this module.

use super::Platform;
use mooring_core::time::Timestamp;
use serde_json::Value;
use std::collections::BTreeMap;

/// OCI image index.
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list (schema 2).
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest (schema 2).
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker image manifest schema 1 (refused).
pub const MEDIA_DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker image manifest schema 1, signed (refused).
pub const MEDIA_DOCKER_SCHEMA1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// OCI image config.
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config.
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The registry's notification envelope.
pub const MEDIA_NOTIFICATION: &str = "application/vnd.docker.distribution.events.v1+json";
/// The `Accept` of a manifest request: the four formats understood, indexes first.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
/// The annotation an artifact without an image config carries its build time in.
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

/// Longest header value parsed (a registry's headers are small; a huge one is hostile).
pub const MAX_HEADER: usize = 8 * 1024;
/// Most entries of an index, events of a notification, tags of one page.
pub const MAX_ENTRIES: usize = 10_000;

/// A message of a registry that cannot be used, naming what and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("WWW-Authenticate header {header:?}: {reason}")]
    Challenge { header: String, reason: String },
    #[error("Link header {header:?}: {reason}")]
    Link { header: String, reason: String },
    #[error("tags list: {0}")]
    Tags(String),
    #[error("token answer: {0}")]
    Token(String),
    #[error("manifest (content type {content_type:?}): {reason}")]
    Manifest {
        content_type: String,
        reason: String,
    },
    #[error("image config: {0}")]
    Config(String),
    #[error("registry notification: {0}")]
    Notification(String),
}

/// The start of a long value, for messages.
fn shown(s: &str) -> String {
    if s.len() <= 200 {
        return s.to_string();
    }
    let mut end = 200;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

// ---------------------------------------------------------------------------------------
// Grammar of names (distribution/reference).

/// `algorithm:hex`: `sha256` (64 hex digits) or `sha512` (128), lower-case.
pub fn valid_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let len = match alg {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A repository name: `/`-separated components of lower-case letters and digits joined
/// by `.`, `_`, `__` or dashes, at most 255 characters.
pub fn valid_repository(r: &str) -> bool {
    if r.is_empty() || r.len() > 255 {
        return false;
    }
    r.split('/').all(|c| {
        let b = c.as_bytes();
        let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            // A separator: `.`, `_`, `__`, or one or more `-`.
            let start = i;
            while i < b.len() && !alnum(b[i]) {
                i += 1;
            }
            let sep = &c[start..i];
            if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
                return false;
            }
        }
        true
    })
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

// ---------------------------------------------------------------------------------------
// WWW-Authenticate.

/// One authentication challenge of a `401`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: Option<String>,
    },
    /// The token flow of the distribution spec: GET `realm?service=…&scope=…`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    /// A scheme the client does not speak (`Negotiate`, …), lower-cased.
    Other(String),
}

/// A small cursor over a header value.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t') {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    /// An RFC 9110 token (also accepts `/` for `token68`-ish values of Link params).
    fn token(&mut self) -> String {
        let start = self.i;
        while self.i < self.s.len() {
            let c = self.s[self.i];
            if c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&c) {
                self.i += 1;
            } else {
                break;
            }
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    /// A quoted string (the cursor on the opening quote), unescaped.
    fn quoted(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = Vec::new();
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'"' => {
                    self.i += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                b'\\' if self.i + 1 < self.s.len() => {
                    out.push(self.s[self.i + 1]);
                    self.i += 2;
                }
                c => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        Err("a quoted string is not terminated".into())
    }
    /// A parameter value: quoted string or token.
    fn value(&mut self) -> Result<String, String> {
        if self.peek() == Some(b'"') {
            self.quoted()
        } else {
            Ok(self.token())
        }
    }
}

/// Parse a `WWW-Authenticate` value into its challenges (several may share one header:
/// `Basic realm="a", Bearer realm="b",service="c"`). A Bearer challenge without a realm,
/// an unterminated quote or a value longer than [`MAX_HEADER`] is an error.
pub fn parse_challenges(header: &str) -> Result<Vec<Challenge>, FormatError> {
    let err = |reason: &str| FormatError::Challenge {
        header: shown(header),
        reason: reason.to_string(),
    };
    if header.len() > MAX_HEADER {
        return Err(err(&format!("longer than {MAX_HEADER} bytes")));
    }
    let mut c = Cursor {
        s: header.as_bytes(),
        i: 0,
    };
    // (scheme, params)
    let mut raw: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    loop {
        c.skip_ws();
        while c.peek() == Some(b',') {
            c.i += 1;
            c.skip_ws();
        }
        if c.done() {
            break;
        }
        let start = c.i;
        let word = c.token();
        if word.is_empty() {
            return Err(err(&format!(
                "unexpected character at byte {start}: expected an authentication scheme"
            )));
        }
        c.skip_ws();
        if c.peek() == Some(b'=') {
            // A parameter of the current challenge.
            let Some((_, params)) = raw.last_mut() else {
                return Err(err("a parameter comes before any scheme"));
            };
            c.i += 1;
            c.skip_ws();
            let v = c.value().map_err(|r| err(&r))?;
            params.insert(word.to_ascii_lowercase(), v);
            c.skip_ws();
            match c.peek() {
                None | Some(b',') => {}
                Some(x) => {
                    return Err(err(&format!(
                        "unexpected {:?} after parameter {word}",
                        x as char
                    )))
                }
            }
        } else {
            raw.push((word.to_ascii_lowercase(), BTreeMap::new()));
        }
    }
    if raw.is_empty() {
        return Err(err("no challenge"));
    }
    raw.into_iter()
        .map(|(scheme, mut p)| match scheme.as_str() {
            "basic" => Ok(Challenge::Basic {
                realm: p.remove("realm"),
            }),
            "bearer" => Ok(Challenge::Bearer {
                realm: p
                    .remove("realm")
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| err("the Bearer challenge has no realm"))?,
                service: p.remove("service"),
                scope: p.remove("scope"),
            }),
            _ => Ok(Challenge::Other(scheme)),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Link.

/// The target of the `rel="next"` link of a `Link` value, as written (relative or
/// absolute: the caller resolves and checks it). `None` when there is no next link.
pub fn parse_next_link(header: &str) -> Result<Option<String>, FormatError> {
    let err = |reason: &str| FormatError::Link {
        header: shown(header),
        reason: reason.to_string(),
    };
    if header.len() > MAX_HEADER {
        return Err(err(&format!("longer than {MAX_HEADER} bytes")));
    }
    let mut c = Cursor {
        s: header.as_bytes(),
        i: 0,
    };
    loop {
        c.skip_ws();
        while c.peek() == Some(b',') {
            c.i += 1;
            c.skip_ws();
        }
        if c.done() {
            return Ok(None);
        }
        if c.peek() != Some(b'<') {
            return Err(err("a link must start with `<`"));
        }
        let start = c.i + 1;
        let Some(end) = header[start..].find('>').map(|e| e + start) else {
            return Err(err("a link target is not closed with `>`"));
        };
        let target = header[start..end].trim().to_string();
        c.i = end + 1;
        let mut next = false;
        loop {
            c.skip_ws();
            match c.peek() {
                None | Some(b',') => break,
                Some(b';') => {
                    c.i += 1;
                    c.skip_ws();
                    let name = c.token().to_ascii_lowercase();
                    if name.is_empty() {
                        return Err(err("a link parameter has no name"));
                    }
                    c.skip_ws();
                    let value = if c.peek() == Some(b'=') {
                        c.i += 1;
                        c.skip_ws();
                        c.value().map_err(|r| err(&r))?
                    } else {
                        String::new()
                    };
                    if name == "rel"
                        && value
                            .split_ascii_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                    {
                        next = true;
                    }
                }
                Some(x) => {
                    return Err(err(&format!("unexpected {:?} after a link", x as char)));
                }
            }
        }
        if next {
            if target.is_empty() {
                return Err(err("the next link is empty"));
            }
            return Ok(Some(target));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tags list and token.

/// The tags of one page of `GET /v2/NAME/tags/list` (`tags` may be `null`). Tags that do
/// not follow the tag grammar are an error (they would end up in URLs and commits).
pub fn parse_tags_list(body: &[u8]) -> Result<Vec<String>, FormatError> {
    #[derive(serde::Deserialize)]
    struct List {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    let l: List = serde_json::from_slice(body)
        .map_err(|e| FormatError::Tags(format!("not a tags list: {e}")))?;
    let tags = l.tags.unwrap_or_default();
    if tags.len() > MAX_ENTRIES {
        return Err(FormatError::Tags(format!(
            "{} tags in one page, more than {MAX_ENTRIES}",
            tags.len()
        )));
    }
    if let Some(bad) = tags.iter().find(|t| !valid_tag(t)) {
        return Err(FormatError::Tags(format!(
            "{:?} is not a valid tag",
            shown(bad)
        )));
    }
    Ok(tags)
}

/// A token server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub token: String,
    /// Seconds it stays valid (the spec's default is 60 when absent).
    pub expires_in: Option<u64>,
}

/// `{"token": …}` or `{"access_token": …}` (OAuth2 style), with `expires_in`.
pub fn parse_token(body: &[u8]) -> Result<Token, FormatError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<u64>,
    }
    let a: Answer = serde_json::from_slice(body)
        .map_err(|e| FormatError::Token(format!("not a token answer: {e}")))?;
    let token = a
        .token
        .filter(|t| !t.is_empty())
        .or(a.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| FormatError::Token("neither `token` nor `access_token` is set".into()))?;
    if token.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(FormatError::Token(
            "the token contains spaces or control characters".into(),
        ));
    }
    Ok(Token {
        token,
        expires_in: a.expires_in,
    })
}

// ---------------------------------------------------------------------------------------
// Manifests.

/// A content descriptor (an index entry, a manifest's config or layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub platform: Option<Platform>,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

/// What a manifest request answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// An OCI image index or Docker manifest list.
    Index {
        media_type: String,
        manifests: Vec<Descriptor>,
        annotations: BTreeMap<String, String>,
    },
    /// An OCI image manifest or Docker image manifest v2 (an OCI artifact too).
    Image {
        media_type: String,
        config: Descriptor,
        /// `artifactType` (OCI 1.1) when set.
        artifact_type: Option<String>,
        annotations: BTreeMap<String, String>,
    },
}

impl Manifest {
    /// Whether the config blob is an image config (else: an artifact; no `created` there).
    pub fn has_image_config(&self) -> bool {
        matches!(self, Manifest::Image { config, artifact_type: None, .. }
            if config.media_type == MEDIA_OCI_CONFIG || config.media_type == MEDIA_DOCKER_CONFIG)
    }

    /// The `org.opencontainers.image.created` annotation, when set and valid.
    pub fn created_annotation(&self) -> Option<Timestamp> {
        let a = match self {
            Manifest::Index { annotations, .. } | Manifest::Image { annotations, .. } => {
                annotations
            }
        };
        a.get(CREATED_ANNOTATION)
            .and_then(|v| mooring_core::time::parse(v).ok())
    }
}

/// The media type of a `Content-Type` value (parameters dropped, lower-cased).
pub fn media_type_of(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn json_descriptor(v: &Value, what: &str) -> Result<Descriptor, String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("{what} is not an object"))?;
    let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    let media_type = s("mediaType").ok_or_else(|| format!("{what} has no mediaType"))?;
    let digest = s("digest").ok_or_else(|| format!("{what} has no digest"))?;
    if !valid_digest(&digest) {
        return Err(format!(
            "{what} has digest {:?}, not sha256:<64 hex> or sha512:<128 hex>",
            shown(&digest)
        ));
    }
    let size = o.get("size").and_then(Value::as_u64).unwrap_or(0);
    let platform = match o.get("platform") {
        None | Some(Value::Null) => None,
        Some(p) => Some(json_platform(p).map_err(|e| format!("{what}: {e}"))?),
    };
    Ok(Descriptor {
        media_type,
        digest,
        size,
        platform,
        artifact_type: s("artifactType"),
        annotations: json_annotations(o.get("annotations")),
    })
}

fn json_platform(p: &Value) -> Result<Platform, String> {
    let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
    let os = s("os").ok_or("platform has no os")?;
    let architecture = s("architecture").ok_or("platform has no architecture")?;
    Ok(Platform {
        os,
        architecture,
        variant: s("variant").filter(|v| !v.is_empty()),
    })
}

fn json_annotations(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Parse a manifest answered with `content_type`. The type must be one of the four of
/// [`MANIFEST_ACCEPT`] (or `application/json` with a `mediaType` in the body); schema 1
/// is refused; a body whose `mediaType` contradicts the header is refused.
pub fn parse_manifest(content_type: Option<&str>, body: &[u8]) -> Result<Manifest, FormatError> {
    let header = content_type.map(media_type_of).unwrap_or_default();
    let err = |reason: String| FormatError::Manifest {
        content_type: content_type.unwrap_or("").to_string(),
        reason,
    };
    let schema1 = |t: &str| t == MEDIA_DOCKER_SCHEMA1 || t == MEDIA_DOCKER_SCHEMA1_SIGNED;
    if schema1(&header) {
        return Err(err(
            "Docker image manifest schema 1 is not supported (deprecated, no config blob): push the image again with a current client (schema 2 or OCI)".into(),
        ));
    }
    let known = [
        MEDIA_OCI_INDEX,
        MEDIA_OCI_MANIFEST,
        MEDIA_DOCKER_LIST,
        MEDIA_DOCKER_MANIFEST,
    ];
    if !header.is_empty() && !known.contains(&header.as_str()) && header != "application/json" {
        return Err(err(format!(
            "the registry answered {header:?}, not a manifest type (expected one of: {MANIFEST_ACCEPT})"
        )));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| err(format!("not valid JSON: {e}")))?;
    let o = v
        .as_object()
        .ok_or_else(|| err("not a JSON object".into()))?;
    match o.get("schemaVersion").and_then(Value::as_u64) {
        Some(2) => {}
        Some(1) => {
            return Err(err(
                "Docker image manifest schema 1 is not supported (deprecated, no config blob): push the image again with a current client (schema 2 or OCI)".into(),
            ))
        }
        other => return Err(err(format!("schemaVersion is {other:?}, not 2"))),
    }
    let body_type = o
        .get("mediaType")
        .and_then(Value::as_str)
        .map(str::to_string);
    let media_type = match (&body_type, header.as_str()) {
        (Some(b), h) if !h.is_empty() && h != "application/json" && b != h => {
            return Err(err(format!(
                "the body's mediaType {b:?} contradicts the Content-Type {h:?}"
            )))
        }
        (Some(b), _) => b.clone(),
        (None, h) if !h.is_empty() && h != "application/json" => h.to_string(),
        // OCI made mediaType optional at first: tell by the shape.
        (None, _) if o.contains_key("manifests") => MEDIA_OCI_INDEX.to_string(),
        (None, _) if o.contains_key("config") => MEDIA_OCI_MANIFEST.to_string(),
        (None, _) => return Err(err("no mediaType, and neither manifests nor config".into())),
    };
    if schema1(&media_type) {
        return Err(err(
            "Docker image manifest schema 1 is not supported (deprecated, no config blob)".into(),
        ));
    }
    let annotations = json_annotations(o.get("annotations"));
    match media_type.as_str() {
        MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => {
            let list = o
                .get("manifests")
                .and_then(Value::as_array)
                .ok_or_else(|| err("an index without a manifests list".into()))?;
            if list.len() > MAX_ENTRIES {
                return Err(err(format!(
                    "{} index entries, more than {MAX_ENTRIES}",
                    list.len()
                )));
            }
            let manifests = list
                .iter()
                .enumerate()
                .map(|(i, d)| json_descriptor(d, &format!("manifests[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            Ok(Manifest::Index {
                media_type,
                manifests,
                annotations,
            })
        }
        MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => {
            let config = json_descriptor(
                o.get("config")
                    .ok_or_else(|| err("an image manifest without config".into()))?,
                "config",
            )
            .map_err(err)?;
            Ok(Manifest::Image {
                media_type,
                config,
                artifact_type: o
                    .get("artifactType")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                annotations,
            })
        }
        other => Err(err(format!("mediaType {other:?} is not a manifest type"))),
    }
}

/// Whether `have` provides `want`: same os and architecture; `want`'s variant, when set,
/// must match (`want` without a variant takes any).
pub fn platform_matches(have: &Platform, want: &Platform) -> bool {
    have.os == want.os
        && have.architecture == want.architecture
        && (want.variant.is_none() || have.variant == want.variant)
}

/// The entry of an index for `want` (the first that matches, as Docker picks).
pub fn select_platform<'a>(entries: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    entries.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| platform_matches(p, want))
    })
}

/// The platforms an index provides (attestation entries, `unknown/unknown`, left out).
pub fn index_platforms(entries: &[Descriptor]) -> Vec<Platform> {
    let mut out: Vec<Platform> = Vec::new();
    for p in entries.iter().filter_map(|d| d.platform.as_ref()) {
        if p.os != "unknown" && !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Config.

/// What an image config says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    pub created: Option<Timestamp>,
    pub platform: Option<Platform>,
}

/// Parse an image config blob: `created` (RFC 3339; an invalid one is an error naming
/// it), `os`, `architecture`, `variant`.
pub fn parse_config(body: &[u8]) -> Result<ImageConfig, FormatError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| FormatError::Config(format!("not valid JSON: {e}")))?;
    let o = v
        .as_object()
        .ok_or_else(|| FormatError::Config("not a JSON object".into()))?;
    let created = match o.get("created") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(mooring_core::time::parse(s).map_err(|e| {
            FormatError::Config(format!(
                "created {:?} is not an RFC 3339 time: {e}",
                shown(s)
            ))
        })?),
        Some(other) => {
            return Err(FormatError::Config(format!(
                "created is {other}, not a string"
            )))
        }
    };
    Ok(ImageConfig {
        created,
        platform: json_platform(&v).ok(),
    })
}

// ---------------------------------------------------------------------------------------
// Notifications.

/// A manifest pushed, as the registry's notification reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    pub id: String,
    pub repository: String,
    /// Set when pushed by tag.
    pub tag: Option<String>,
    pub digest: String,
    pub media_type: String,
    /// `request.host`: the registry host the client pushed to (`host[:port]`).
    pub host: Option<String>,
}

/// A notification envelope: the manifest pushes, and how many events were not (pulls,
/// deletes, blob events) — counted, not silently dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notification {
    pub pushes: Vec<PushEvent>,
    pub other_events: usize,
}

/// Parse the registry's notification envelope (`{"events": [...]}`). A push event of a
/// manifest must carry a valid repository, digest and (when present) tag.
pub fn parse_notification(body: &[u8]) -> Result<Notification, FormatError> {
    let bad = |m: String| FormatError::Notification(m);
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let events = v
        .get("events")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no `events` list".into()))?;
    if events.len() > MAX_ENTRIES {
        return Err(bad(format!(
            "{} events, more than {MAX_ENTRIES}",
            events.len()
        )));
    }
    let manifest_types = [
        MEDIA_OCI_INDEX,
        MEDIA_OCI_MANIFEST,
        MEDIA_DOCKER_LIST,
        MEDIA_DOCKER_MANIFEST,
    ];
    let mut out = Notification::default();
    for (i, e) in events.iter().enumerate() {
        let s = |p: &str| e.pointer(p).and_then(Value::as_str).map(str::to_string);
        let media_type = s("/target/mediaType").unwrap_or_default();
        if s("/action").as_deref() != Some("push")
            || !manifest_types.contains(&media_type_of(&media_type).as_str())
        {
            out.other_events += 1;
            continue;
        }
        let repository = s("/target/repository")
            .ok_or_else(|| bad(format!("events[{i}]: no target.repository")))?;
        if !valid_repository(&repository) {
            return Err(bad(format!(
                "events[{i}]: {:?} is not a valid repository name",
                shown(&repository)
            )));
        }
        let digest =
            s("/target/digest").ok_or_else(|| bad(format!("events[{i}]: no target.digest")))?;
        if !valid_digest(&digest) {
            return Err(bad(format!(
                "events[{i}]: {:?} is not a valid digest",
                shown(&digest)
            )));
        }
        let tag = s("/target/tag").filter(|t| !t.is_empty());
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(bad(format!(
                    "events[{i}]: {:?} is not a valid tag",
                    shown(t)
                )));
            }
        }
        out.pushes.push(PushEvent {
            id: s("/id").unwrap_or_default(),
            repository,
            tag,
            digest,
            media_type: media_type_of(&media_type),
            host: s("/request/host").filter(|h| !h.is_empty()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";

    fn plat(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(str::to_string),
        }
    }

    #[test]
    fn challenges_with_quoted_commas_and_several_schemes() {
        let h = r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/a:pull,push""#;
        assert_eq!(
            parse_challenges(h).expect("parse"),
            vec![Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("repository:team/a:pull,push".into()),
            }]
        );
        let h = r#"Basic realm="Registry Realm", Bearer realm="https://a/t" , Negotiate"#;
        assert_eq!(
            parse_challenges(h).expect("parse"),
            vec![
                Challenge::Basic {
                    realm: Some("Registry Realm".into())
                },
                Challenge::Bearer {
                    realm: "https://a/t".into(),
                    service: None,
                    scope: None
                },
                Challenge::Other("negotiate".into()),
            ]
        );
        // Escapes inside quotes, token values, case-insensitive names.
        assert_eq!(
            parse_challenges(r#"BASIC REALM="a \"b\", c""#).expect("parse"),
            vec![Challenge::Basic {
                realm: Some(r#"a "b", c"#.into())
            }]
        );
    }

    #[test]
    fn hostile_challenges_are_errors() {
        for h in [
            "",
            "   ",
            r#"Bearer realm="https://a/t"#,
            r#"Bearer service="x""#,
            r#"realm="x""#,
            "Bearer realm=\"x\" garbage=",
            "@@@",
        ] {
            assert!(parse_challenges(h).is_err(), "{h:?} parsed");
        }
        let long = format!("Basic realm=\"{}\"", "a".repeat(MAX_HEADER));
        let e = parse_challenges(&long).expect_err("too long");
        assert!(e.to_string().contains("longer than"), "{e}");
    }

    #[test]
    fn next_links() {
        assert_eq!(
            parse_next_link(r#"</v2/team/a/tags/list?last=b&n=2>; rel="next""#).expect("link"),
            Some("/v2/team/a/tags/list?last=b&n=2".into())
        );
        assert_eq!(
            parse_next_link(r#"<https://r.example.com/p?a=1,2>; rel="prev", <https://r.example.com/n>; title="x, y"; rel="last next""#)
                .expect("link"),
            Some("https://r.example.com/n".into())
        );
        assert_eq!(parse_next_link("</a>; rel=prev").expect("link"), None);
        assert_eq!(parse_next_link("").expect("empty"), None);
        for h in [
            "/a; rel=next",
            "</a; rel=next",
            "<>; rel=next",
            "</a> x",
            "</a>; rel=\"next",
        ] {
            assert!(parse_next_link(h).is_err(), "{h:?} parsed");
        }
    }

    #[test]
    fn tags_lists_and_tokens() {
        assert_eq!(
            parse_tags_list(br#"{"name":"a","tags":["1.0","v1.2.3-rc.1"]}"#).expect("tags"),
            vec!["1.0", "v1.2.3-rc.1"]
        );
        assert!(parse_tags_list(br#"{"name":"a","tags":null}"#)
            .expect("null")
            .is_empty());
        let e = parse_tags_list(br#"{"tags":["ok","../../etc"]}"#).expect_err("bad tag");
        assert!(e.to_string().contains("../../etc"), "{e}");
        assert!(parse_tags_list(b"<html>").is_err());
        assert_eq!(
            parse_token(br#"{"access_token":"abc","expires_in":300}"#).expect("token"),
            Token {
                token: "abc".into(),
                expires_in: Some(300)
            }
        );
        assert_eq!(
            parse_token(br#"{"token":"t","access_token":"u"}"#)
                .expect("token")
                .token,
            "t"
        );
        assert!(parse_token(br#"{"token":""}"#).is_err());
        assert!(parse_token(br#"{"token":"a\r\nX-Evil: 1"}"#).is_err());
    }

    #[test]
    fn names_follow_the_distribution_grammar() {
        assert!(valid_repository("library/nginx"));
        assert!(valid_repository("team-a/model_server.v2/x__y"));
        for r in ["", "A", "a//b", "/a", "a/", "a..b", "a/../b", "-a", "a_-b"] {
            assert!(!valid_repository(r), "{r:?}");
        }
        assert!(valid_tag("v1.2.3_x-Y"));
        for t in ["", ".a", "-a", "a/b", "a:b", &"a".repeat(129)] {
            assert!(!valid_tag(t), "{t:?}");
        }
        assert!(valid_digest(D));
        for d in ["sha256:abc", "md5:aa", &D.to_uppercase(), "sha256:../../x"] {
            assert!(!valid_digest(d), "{d:?}");
        }
    }

    fn index_body() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_OCI_INDEX}","manifests":[
            {{"mediaType":"{MEDIA_OCI_MANIFEST}","digest":"{D}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"mediaType":"{MEDIA_OCI_MANIFEST}","digest":"sha256:{a}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
            {{"mediaType":"{MEDIA_OCI_MANIFEST}","digest":"sha256:{b}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}}}}]}}"#,
            a = "a".repeat(64),
            b = "b".repeat(64)
        )
    }

    #[test]
    fn an_index_and_its_platforms() {
        let m = parse_manifest(Some(MEDIA_OCI_INDEX), index_body().as_bytes()).expect("index");
        let Manifest::Index { manifests, .. } = &m else {
            panic!("not an index: {m:?}")
        };
        assert_eq!(
            index_platforms(manifests),
            vec![
                plat("linux", "amd64", None),
                plat("linux", "arm64", Some("v8"))
            ]
        );
        let arm = select_platform(manifests, &plat("linux", "arm64", None)).expect("arm64");
        assert_eq!(arm.digest, format!("sha256:{}", "a".repeat(64)));
        assert!(select_platform(manifests, &plat("linux", "arm64", Some("v7"))).is_none());
        assert!(select_platform(manifests, &plat("windows", "amd64", None)).is_none());
        assert!(!m.has_image_config());
    }

    #[test]
    fn image_manifests_and_artifacts() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_DOCKER_MANIFEST}","config":{{"mediaType":"{MEDIA_DOCKER_CONFIG}","digest":"{D}","size":2}},"layers":[]}}"#
        );
        let m = parse_manifest(Some(MEDIA_DOCKER_MANIFEST), body.as_bytes()).expect("image");
        assert!(m.has_image_config());
        // An OCI artifact: artifactType, an empty config, the created annotation.
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_OCI_MANIFEST}","artifactType":"application/vnd.mooring.model.v1","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{D}","size":2}},"layers":[],"annotations":{{"{CREATED_ANNOTATION}":"2026-12-01T10:00:00Z"}}}}"#
        );
        // application/json with a mediaType in the body is accepted.
        let m = parse_manifest(Some("application/json; charset=utf-8"), body.as_bytes())
            .expect("artifact");
        assert!(!m.has_image_config());
        assert_eq!(
            m.created_annotation(),
            Some(mooring_core::time::parse("2026-12-01T10:00:00Z").expect("t"))
        );
    }

    #[test]
    fn hostile_manifests_are_refused_with_the_reason() {
        let e =
            parse_manifest(Some("text/html; charset=utf-8"), b"<html></html>").expect_err("html");
        assert!(e.to_string().contains("text/html"), "{e}");
        let e = parse_manifest(
            Some(MEDIA_DOCKER_SCHEMA1_SIGNED),
            br#"{"schemaVersion":1,"fsLayers":[]}"#,
        )
        .expect_err("schema1");
        assert!(e.to_string().contains("schema 1"), "{e}");
        let e = parse_manifest(Some("application/json"), br#"{"schemaVersion":1}"#)
            .expect_err("schema1 body");
        assert!(e.to_string().contains("schema 1"), "{e}");
        // The body contradicts the header.
        let e = parse_manifest(Some(MEDIA_OCI_MANIFEST), index_body().as_bytes())
            .expect_err("contradiction");
        assert!(e.to_string().contains("contradicts"), "{e}");
        // A digest that would walk the URL space.
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_OCI_MANIFEST}","config":{{"mediaType":"{MEDIA_OCI_CONFIG}","digest":"sha256:../../../v2/other/blobs/x","size":2}}}}"#
        );
        let e = parse_manifest(Some(MEDIA_OCI_MANIFEST), body.as_bytes()).expect_err("digest");
        assert!(e.to_string().contains("not sha256"), "{e}");
        for b in [&b"[]"[..], b"{}", b"not json", br#"{"schemaVersion":2}"#] {
            assert!(parse_manifest(Some(MEDIA_OCI_MANIFEST), b).is_err());
        }
    }

    #[test]
    fn configs() {
        let c = parse_config(
            br#"{"created":"2026-12-01T10:00:00.123456789Z","architecture":"arm64","os":"linux","variant":"v8"}"#,
        )
        .expect("config");
        assert!(c.created.is_some());
        assert_eq!(c.platform, Some(plat("linux", "arm64", Some("v8"))));
        assert_eq!(parse_config(b"{}").expect("empty").created, None);
        let e = parse_config(br#"{"created":"yesterday"}"#).expect_err("bad time");
        assert!(e.to_string().contains("yesterday"), "{e}");
        assert!(parse_config(br#"{"created":5}"#).is_err());
        assert!(parse_config(b"<html>").is_err());
    }

    #[test]
    fn notifications() {
        // As docker-registry 2.8 sends them: a manifest push, a blob push, a pull.
        let body = format!(
            r#"{{"events":[
            {{"id":"e1","timestamp":"2026-12-06T08:00:00Z","action":"push","target":{{"mediaType":"{MEDIA_DOCKER_MANIFEST}","size":528,"digest":"{D}","length":528,"repository":"team-a/model-server","url":"http://127.0.0.1:5000/v2/team-a/model-server/manifests/{D}","tag":"1.4.0"}},"request":{{"id":"r","addr":"127.0.0.1:4000","host":"registry.example.com:5000","method":"PUT","useragent":"x"}},"actor":{{}},"source":{{"addr":"h:5000","instanceID":"i"}}}},
            {{"id":"e2","action":"push","target":{{"mediaType":"application/octet-stream","digest":"{D}","repository":"team-a/model-server"}}}},
            {{"id":"e3","action":"pull","target":{{"mediaType":"{MEDIA_OCI_MANIFEST}","digest":"{D}","repository":"team-a/model-server"}}}}]}}"#
        );
        let n = parse_notification(body.as_bytes()).expect("envelope");
        assert_eq!(n.other_events, 2);
        assert_eq!(
            n.pushes,
            vec![PushEvent {
                id: "e1".into(),
                repository: "team-a/model-server".into(),
                tag: Some("1.4.0".into()),
                digest: D.into(),
                media_type: MEDIA_DOCKER_MANIFEST.into(),
                host: Some("registry.example.com:5000".into()),
            }]
        );
        let hostile = format!(
            r#"{{"events":[{{"action":"push","target":{{"mediaType":"{MEDIA_OCI_MANIFEST}","digest":"{D}","repository":"../../secrets"}}}}]}}"#
        );
        let e = parse_notification(hostile.as_bytes()).expect_err("repository");
        assert!(e.to_string().contains("../../secrets"), "{e}");
        let hostile = format!(
            r#"{{"events":[{{"action":"push","target":{{"mediaType":"{MEDIA_OCI_MANIFEST}","digest":"{D}","repository":"a","tag":"x;rm -rf"}}}}]}}"#
        );
        assert!(parse_notification(hostile.as_bytes()).is_err());
        assert!(parse_notification(b"{}").is_err());
        assert!(parse_notification(b"[1]").is_err());
    }
}
