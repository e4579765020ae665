//! The admin's `registries.conf` (Image Updater's format, the `registries.conf` key of
//! the `argocd-image-updater-config` ConfigMap) and which registry serves an image.
//!
//! ```yaml
//! registries:
//! - name: Docker Hub
//!   prefix: docker.io
//!   api_url: https://registry-1.docker.io
//!   credentials: secret:foo/bar#creds
//!   defaultns: library
//!   default: true
//! ```
//!
//! Keys: `name` and `prefix` (mandatory; prefixes unique), `api_url` (http or https;
//! default `https://PREFIX-HOST`), `credentials` (`pullsecret:`, `secret:`, `env:`; the
//! admin may read the controller's environment, nobody may run a command: `ext:` is
//! refused), `credsexpire` (a Go duration), `defaultns`, `default` (one registry at most),
//! `insecure`, `limit` (requests per second), `ping`, `tagsortmode` (`none`,
//! `latest-first`, `latest-last`: accepted for compatibility; Mooring orders tags itself),
//! and Mooring's `interval` (how often to list tags, a Go duration). Booleans may be
//! written `yes`/`no` as in Image Updater's own example (go-yaml v2 reads YAML 1.1).
//! Any other key is an error naming it and the registry.
//!
//! Without a configuration Docker Hub is built in (`docker.io`, API at
//! `https://registry-1.docker.io`, default namespace `library`), and any other registry
//! host is reached at `https://HOST` ([`for_image`]).

use std::sync::LazyLock;

use serde_json::Value;

use super::{ImageError, ImageRef, RegistryConfig};

/// Largest registries.conf read.
const MAX_BYTES: usize = 256 * 1024;
/// Most registries in one file.
const MAX_REGISTRIES: usize = 256;

const KNOWN_KEYS: &[&str] = &[
    "name",
    "prefix",
    "api_url",
    "credentials",
    "credsexpire",
    "defaultns",
    "default",
    "insecure",
    "limit",
    "ping",
    "tagsortmode",
    "interval",
];

/// Docker Hub's built-in entry.
pub static DOCKER_HUB: LazyLock<RegistryConfig> = LazyLock::new(|| RegistryConfig {
    name: "Docker Hub".into(),
    prefix: "docker.io".into(),
    api_url: "https://registry-1.docker.io".into(),
    default_ns: Some("library".into()),
    default: true,
    ping: true,
    ..Default::default()
});

fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// Parse a registries.conf.
pub fn parse(text: &str) -> Result<Vec<RegistryConfig>, ImageError> {
    let err = |m: String| ImageError::Registries(m);
    if text.len() > MAX_BYTES {
        return Err(err(format!("larger than {MAX_BYTES} bytes")));
    }
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let doc = mooring_core::yaml::parse_one(text).map_err(|e| err(e.to_string()))?;
    let Some(top) = doc.as_object() else {
        return Err(err("not a mapping with registries:".into()));
    };
    for k in top.keys() {
        if k != "registries" {
            return Err(err(format!(
                "unknown top-level key {k:?} (only registries)"
            )));
        }
    }
    let list = match top.get("registries") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(err("registries: is not a list".into())),
    };
    if list.len() > MAX_REGISTRIES {
        return Err(err(format!("more than {MAX_REGISTRIES} registries")));
    }
    let mut out: Vec<RegistryConfig> = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let r = parse_entry(entry).map_err(|m| err(format!("registries[{i}]: {m}")))?;
        if out.iter().any(|o| o.prefix == r.prefix) {
            return Err(err(format!(
                "registries[{i}]: prefix {:?} is configured twice",
                r.prefix
            )));
        }
        if let Some(o) = out.iter().find(|o| o.default && r.default) {
            return Err(err(format!(
                "registries[{i}] ({}) and {} are both default: at most one may be",
                r.name, o.name
            )));
        }
        out.push(r);
    }
    Ok(out)
}

fn as_bool(key: &str, v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.as_str() {
            "yes" | "true" | "True" | "TRUE" | "on" => Ok(true),
            "no" | "false" | "False" | "FALSE" | "off" => Ok(false),
            other => Err(format!("{key}: {other:?} is not true/false/yes/no")),
        },
        other => Err(format!("{key}: {other} is not a boolean")),
    }
}

fn as_str<'a>(key: &str, v: &'a Value) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("{key}: {v} is not a string"))
}

fn duration_secs(key: &str, v: &Value) -> Result<u64, String> {
    let s = as_str(key, v)?;
    let d = mooring_core::time::parse_go_duration(s)
        .ok_or_else(|| format!("{key}: {s:?} is not a duration (30s, 5m, 12h)"))?;
    if d.as_secs() == 0 {
        return Err(format!("{key}: {s:?} is shorter than one second"));
    }
    Ok(d.as_secs())
}

fn parse_entry(entry: &Value) -> Result<RegistryConfig, String> {
    let Some(map) = entry.as_object() else {
        return Err("not a mapping".into());
    };
    if let Some(k) = map.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown key {k:?} (known: {})",
            KNOWN_KEYS.join(", ")
        ));
    }
    let mut r = RegistryConfig {
        ping: true,
        ..Default::default()
    };
    r.name = match map.get("name") {
        Some(v) => as_str("name", v)?.to_string(),
        None => return Err("name is mandatory".into()),
    };
    let prefix = match map.get("prefix") {
        Some(v) => as_str("prefix", v)?.to_string(),
        None => return Err(format!("{}: prefix is mandatory", r.name)),
    };
    check_prefix(&prefix).map_err(|m| format!("{}: {m}", r.name))?;
    r.prefix = prefix;
    r.api_url = match map.get("api_url") {
        Some(v) => {
            let u = as_str("api_url", v)?;
            check_url(u).map_err(|m| format!("{}: {m}", r.name))?;
            u.trim_end_matches('/').to_string()
        }
        None => default_api_url(&r.prefix),
    };
    for (k, v) in map {
        let name = &r.name;
        let ctx = |m: String| format!("{name}: {m}");
        match k.as_str() {
            "credentials" => {
                let s = as_str(k, v).map_err(ctx)?;
                let c = super::annotations::parse_credentials(s, true)
                    .map_err(|m| ctx(format!("credentials: {m}")))?;
                r.credentials = Some(c);
            }
            "credsexpire" => r.creds_expire_seconds = Some(duration_secs(k, v).map_err(ctx)?),
            "interval" => r.interval_seconds = Some(duration_secs(k, v).map_err(ctx)?),
            "defaultns" => {
                let s = as_str(k, v).map_err(ctx)?;
                let comp_ok = !s.is_empty()
                    && ImageRef::parse(&format!("{s}/x")).is_ok_and(|i| i.registry.is_empty());
                if !comp_ok {
                    return Err(ctx(format!("defaultns {s:?} is not a repository path")));
                }
                r.default_ns = Some(s.to_string());
            }
            "default" => r.default = as_bool(k, v).map_err(ctx)?,
            "insecure" => r.insecure = as_bool(k, v).map_err(ctx)?,
            "ping" => r.ping = as_bool(k, v).map_err(ctx)?,
            "limit" => {
                let n = match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                r.limit = n
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| ctx(format!("limit: {v} is not a non-negative integer")))?;
            }
            "tagsortmode" => {
                let s = as_str(k, v).map_err(ctx)?;
                if !matches!(s, "none" | "latest-first" | "latest-last") {
                    return Err(ctx(format!(
                        "tagsortmode {s:?} is not none, latest-first or latest-last"
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(r)
}

/// A prefix is a registry host (`host[:port]`), optionally followed by a path
/// (`registry.example.com/team`).
fn check_prefix(prefix: &str) -> Result<(), String> {
    let host = prefix.split('/').next().unwrap_or("");
    let probe = format!("{prefix}/x");
    match ImageRef::parse(&probe) {
        Ok(r) if !r.registry.is_empty() && r.registry == host => Ok(()),
        _ => Err(format!(
            "prefix {prefix:?} is not a registry host name (with a '.' or a port, or localhost)"
        )),
    }
}

fn check_url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("api_url {u:?} is not an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or("");
    let ok = !host.is_empty()
        && !host.contains('@')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !ok || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("api_url {u:?} has no valid host"));
    }
    Ok(())
}

fn default_api_url(prefix: &str) -> String {
    let host = prefix.split('/').next().unwrap_or(prefix);
    if is_docker_hub(host) {
        DOCKER_HUB.api_url.clone()
    } else {
        format!("https://{host}")
    }
}

/// The registry that serves `image`: among the configured ones the longest prefix that
/// matches the image's name on a path boundary; for an image without registry part the
/// `default` one, else Docker Hub. Docker Hub's host spellings (`docker.io`,
/// `index.docker.io`, `registry-1.docker.io`) are one registry. An unconfigured host is
/// reached at `https://HOST` without credentials.
pub fn for_image(configs: &[RegistryConfig], image: &ImageRef) -> RegistryConfig {
    if image.registry.is_empty() {
        if let Some(d) = configs.iter().find(|c| c.default) {
            return d.clone();
        }
        if let Some(d) = configs.iter().find(|c| c.prefix == "docker.io") {
            return d.clone();
        }
        return DOCKER_HUB.clone();
    }
    let hub = is_docker_hub(&image.registry);
    let name = if hub {
        format!("docker.io/{}", image.repository)
    } else {
        image.name()
    };
    let best = configs
        .iter()
        .filter(|c| {
            let prefix = if is_docker_hub(c.prefix.split('/').next().unwrap_or("")) {
                c.prefix
                    .replacen(c.prefix.split('/').next().unwrap_or(""), "docker.io", 1)
            } else {
                c.prefix.clone()
            };
            name == prefix || name.starts_with(&format!("{prefix}/"))
        })
        .max_by_key(|c| c.prefix.len());
    if let Some(b) = best {
        return b.clone();
    }
    if hub {
        return DOCKER_HUB.clone();
    }
    RegistryConfig {
        name: image.registry.clone(),
        prefix: image.registry.clone(),
        api_url: default_api_url(&image.registry),
        ping: true,
        ..Default::default()
    }
}

/// The repository path the registry API wants for `image` (`/v2/PATH/tags/list`): the
/// registry's `defaultns` is prepended to a one-component name (`nginx` →
/// `library/nginx` on Docker Hub).
pub fn repository_path(config: &RegistryConfig, image: &ImageRef) -> String {
    match &config.default_ns {
        Some(ns) if !image.repository.contains('/') => format!("{ns}/{}", image.repository),
        _ => image.repository.clone(),
    }
}

#[cfg(test)]
mod tests;

/// Image Updater's ConfigMap (`argocd-image-updater-config`), as Mooring reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// `registries.conf`.
    pub registries: Vec<RegistryConfig>,
    /// `git.commit-message-template` (see `writeback::commit_message`).
    pub commit_message_template: Option<String>,
    /// `git.user` / `git.email`: the write-back commits' author.
    pub git_user: Option<String>,
    pub git_email: Option<String>,
}

/// Keys of the ConfigMap that change nothing Mooring does (its logging and Events are its
/// own): accepted so an existing Image Updater ConfigMap reads unchanged.
pub const SETTINGS_WITHOUT_EFFECT: &[&str] = &["log.level", "kube.events"];

/// Read the ConfigMap's `data`. A key Mooring does not act on (commit signing, sign-off,
/// another Argo CD API) is an error naming it, so nothing the admin asked for is skipped.
pub fn settings(data: &std::collections::BTreeMap<String, String>) -> Result<Settings, ImageError> {
    let mut out = Settings::default();
    let mut unsupported = Vec::new();
    for (k, v) in data {
        let v = v.trim();
        match k.as_str() {
            "registries.conf" => out.registries = parse(v)?,
            "git.commit-message-template" => {
                out.commit_message_template = (!v.is_empty()).then(|| v.to_string())
            }
            "git.user" => out.git_user = (!v.is_empty()).then(|| v.to_string()),
            "git.email" => out.git_email = (!v.is_empty()).then(|| v.to_string()),
            k if SETTINGS_WITHOUT_EFFECT.contains(&k) => {}
            k => unsupported.push(k.to_string()),
        }
    }
    if !unsupported.is_empty() {
        return Err(ImageError::Registries(format!(
            "{} not supported by Mooring's image watcher (it reads registries.conf, git.commit-message-template, git.user and git.email); remove {}",
            unsupported.join(", "),
            if unsupported.len() == 1 { "it" } else { "them" }
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod settings_tests {
    use super::*;

    #[test]
    fn the_config_map_keys_are_read_and_unsupported_ones_named() {
        let data: std::collections::BTreeMap<String, String> = [
            (
                "registries.conf",
                "registries:\n- name: ghcr\n  prefix: ghcr.io\n  api_url: https://ghcr.io\n",
            ),
            ("git.user", "image-bot"),
            ("git.email", "bot@example.com"),
            ("git.commit-message-template", "build: {{ .AppName }}"),
            ("log.level", "debug"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = settings(&data).expect("settings");
        assert_eq!(s.registries.len(), 1);
        assert_eq!(s.git_user.as_deref(), Some("image-bot"));
        assert_eq!(
            s.commit_message_template.as_deref(),
            Some("build: {{ .AppName }}")
        );
        let mut signed = data.clone();
        signed.insert("git.commit-signing-key".into(), "/key".into());
        let err = settings(&signed).expect_err("signing is not done");
        assert!(err.to_string().contains("git.commit-signing-key"), "{err}");
    }
}
