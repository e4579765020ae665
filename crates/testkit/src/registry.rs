//! A real OCI registry for tests: Debian's `docker-registry` (CNCF distribution 2.8) on
//! 127.0.0.1, its storage in a temporary directory, optionally behind htpasswd Basic
//! authentication and sending its notifications to a URL the test gives (the image
//! watcher's webhook).
//!
//! Images are pushed through the registry's own HTTP API, as `docker push` / `oras push`
//! do (blob upload, then the manifest), so tests need no container runtime: an image is a
//! config blob (`created`, `os`, `architecture`) and one small layer; an index lists
//! such images per platform; an artifact is an OCI manifest with an `artifactType` and a
//! model file layer. Every push returns the digests the registry computed.
//!
//! `scripts/test` installs the packages (`docker-registry`, and `apache2-utils` for the
//! bcrypt htpasswd file) and sets [`REQUIRE_ENV`]; [`Registry::available`] tells a test
//! whether it can run, so a machine without them skips with a message, never obscurely.

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;
use sha2::Digest as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set by `scripts/test`: a missing registry fails the tests instead of skipping them.
pub const REQUIRE_ENV: &str = "MOORING_REQUIRE_REGISTRY";

/// Binary names tried: Debian's, then upstream's.
const BINARIES: &[&str] = &["docker-registry", "/usr/bin/docker-registry", "registry"];

pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Which manifest formats a push writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OCI image manifest / OCI image index (what `docker buildx` and `oras` push).
    Oci,
    /// Docker image manifest v2 / Docker manifest list (what classic `docker push` does).
    Docker,
}

/// Where the registry sends its notifications.
#[derive(Debug, Clone)]
pub struct NotifyEndpoint {
    pub url: String,
    /// Sent as `Authorization: Bearer TOKEN`.
    pub bearer_token: String,
}

/// How to start the registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// htpasswd Basic authentication with this one user.
    pub basic_auth: Option<(String, String)>,
    pub notify: Option<NotifyEndpoint>,
}

/// What an index push wrote.
#[derive(Debug, Clone)]
pub struct PushedIndex {
    pub digest: String,
    /// `(platform, manifest digest)` of each entry, in order.
    pub entries: Vec<(String, String)>,
}

/// A running registry; killed on drop.
pub struct Registry {
    child: Child,
    port: u16,
    auth: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

/// One HTTP answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `sha256:HEX` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let d = sha2::Sha256::digest(data);
    let mut s = String::from("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// `os/arch[/variant]` as the JSON fields of a platform.
fn platform_json(platform: &str) -> Result<serde_json::Value> {
    let parts: Vec<&str> = platform.split('/').collect();
    match parts.as_slice() {
        [os, arch] => Ok(serde_json::json!({"os": os, "architecture": arch})),
        [os, arch, variant] => {
            Ok(serde_json::json!({"os": os, "architecture": arch, "variant": variant}))
        }
        _ => bail!("platform {platform:?} is not os/arch[/variant]"),
    }
}

impl Registry {
    /// The registry binary, if installed.
    pub fn binary() -> Option<PathBuf> {
        BINARIES.iter().map(PathBuf::from).find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// Whether `test` can run: true when the binary and `htpasswd` are installed; else
    /// panics when [`REQUIRE_ENV`] is set, or says it skips.
    pub fn available(test: &str) -> bool {
        let htpasswd = Command::new("htpasswd")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if Self::binary().is_some() && htpasswd {
            return true;
        }
        if std::env::var_os(REQUIRE_ENV).is_some() {
            panic!(
                "{test}: docker-registry and htpasswd are required ({REQUIRE_ENV} is set): install the Debian packages docker-registry and apache2-utils (scripts/test does)"
            );
        }
        eprintln!(
            "SKIPPED {test}: docker-registry or htpasswd is not installed (Debian packages docker-registry and apache2-utils; scripts/test installs them)"
        );
        false
    }

    /// Start one on a free port of 127.0.0.1 and wait until it answers.
    pub fn start(options: RegistryOptions) -> Result<Registry> {
        let binary = Self::binary().context(
            "docker-registry is not installed (Debian package docker-registry; scripts/test installs it)",
        )?;
        let dir = tempfile::tempdir()?;
        let port = crate::free_port()?;
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: mooring-test-secret\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = &options.basic_auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .context(
                    "running htpasswd (Debian package apache2-utils; scripts/test installs it)",
                )?;
            if !out.status.success() {
                bail!(
                    "htpasswd -Bbn {user} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, &out.stdout)?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: mooring-test-registry\n    path: {}\n",
                path.display()
            ));
        }
        if let Some(n) = &options.notify {
            config.push_str(&format!(
                "notifications:\n  endpoints:\n    - name: mooring\n      url: {}\n      headers:\n        Authorization: [\"Bearer {}\"]\n      timeout: 2s\n      threshold: 5\n      backoff: 1s\n",
                serde_json::to_string(&n.url)?,
                n.bearer_token
            ));
        }
        let path = dir.path().join("config.yml");
        std::fs::write(&path, config)?;
        let child = Command::new(&binary)
            .arg("serve")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut r = Registry {
            child,
            port,
            auth: options.basic_auth,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = r.child.try_wait()? {
                bail!("docker-registry exited before it was ready: {status}");
            }
            if r.request("GET", "/v2/", &[], None)
                .is_ok_and(|a| a.status == 200 || a.status == 401)
            {
                return Ok(r);
            }
            if Instant::now() > deadline {
                bail!("docker-registry on 127.0.0.1:{port} was not ready within 60s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `127.0.0.1:PORT`: the registry part of an image reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`: the `api_url` of a registries.conf entry.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// One request (HTTP/1.0, so the answer is neither chunked nor kept alive), with the
    /// Basic credentials when configured.
    fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Answer> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut head = format!("{method} {target} HTTP/1.0\r\nHost: {}\r\n", self.host());
        if let Some((u, p)) = &self.auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            head.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.unwrap_or_default();
        if method != "GET" && method != "HEAD" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("no end of headers")?;
        let text = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = text.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .context("no status")?
            .parse()?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Ok(Answer {
            status,
            headers,
            body: raw[end + 4..].to_vec(),
        })
    }

    /// Upload a blob (POST then monolithic PUT); its digest.
    pub fn push_blob(&self, name: &str, data: &[u8]) -> Result<String> {
        let digest = sha256_digest(data);
        let a = self.request("POST", &format!("/v2/{name}/blobs/uploads/"), &[], None)?;
        if a.status != 202 {
            bail!(
                "starting a blob upload to {name}: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
        }
        let location = a.header("location").context("upload without Location")?;
        // Absolute (distribution answers so) or relative: keep the path and query.
        let target = match location.split_once("://") {
            Some((_, rest)) => rest
                .find('/')
                .map(|i| rest[i..].to_string())
                .context("Location without a path")?,
            None => location.to_string(),
        };
        let sep = if target.contains('?') { '&' } else { '?' };
        let a = self.request(
            "PUT",
            &format!("{target}{sep}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            Some(data),
        )?;
        if a.status != 201 {
            bail!(
                "uploading blob {digest} to {name}: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
        }
        Ok(digest)
    }

    /// PUT a manifest of `media_type` under `reference` (a tag or digest); its digest.
    pub fn put_manifest(
        &self,
        name: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<String> {
        let a = self.request(
            "PUT",
            &format!("/v2/{name}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            Some(body),
        )?;
        if a.status != 201 {
            bail!(
                "pushing manifest {name}:{reference}: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
        }
        let digest = sha256_digest(body);
        if let Some(d) = a.header("docker-content-digest") {
            if d != digest {
                bail!("the registry computed digest {d} for {name}:{reference}, not {digest}");
            }
        }
        Ok(digest)
    }

    /// Push one image: a config blob (`created`, `os`, `architecture`[, `variant`]) and
    /// one small layer, tagged `tag` (an empty tag pushes it by digest only). Its digest.
    pub fn push_image(
        &self,
        name: &str,
        tag: &str,
        platform: &str,
        created: &str,
        format: Format,
    ) -> Result<String> {
        let (body, media_type) = self.image_manifest(name, platform, created, format)?;
        let digest = sha256_digest(&body);
        let reference = if tag.is_empty() { &digest } else { tag };
        self.put_manifest(name, reference, media_type, &body)
    }

    /// The manifest of a fresh image (its blobs pushed).
    fn image_manifest(
        &self,
        name: &str,
        platform: &str,
        created: &str,
        format: Format,
    ) -> Result<(Vec<u8>, &'static str)> {
        let mut config = platform_json(platform)?;
        config["created"] = created.into();
        config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": []});
        config["config"] = serde_json::json!({});
        let config = serde_json::to_vec(&config)?;
        let config_digest = self.push_blob(name, &config)?;
        // A layer unique to this image (so two pushes never share a digest).
        let layer = format!("layer of {name} {platform} {created}").into_bytes();
        let layer_digest = self.push_blob(name, &layer)?;
        let (mt, cmt, lmt) = match format {
            Format::Oci => (MEDIA_OCI_MANIFEST, MEDIA_OCI_CONFIG, MEDIA_OCI_LAYER),
            Format::Docker => (
                MEDIA_DOCKER_MANIFEST,
                MEDIA_DOCKER_CONFIG,
                MEDIA_DOCKER_LAYER,
            ),
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "config": {"mediaType": cmt, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": lmt, "digest": layer_digest, "size": layer.len()}],
        });
        Ok((serde_json::to_vec(&manifest)?, mt))
    }

    /// Push an index (OCI image index or Docker manifest list) of one fresh image per
    /// `(platform, created)`, tagged `tag`.
    pub fn push_index(
        &self,
        name: &str,
        tag: &str,
        images: &[(&str, &str)],
        format: Format,
    ) -> Result<PushedIndex> {
        let mut entries = Vec::new();
        let mut list = Vec::new();
        for (platform, created) in images {
            let (body, mt) = self.image_manifest(name, platform, created, format)?;
            let digest = sha256_digest(&body);
            self.put_manifest(name, &digest, mt, &body)?;
            list.push(serde_json::json!({
                "mediaType": mt,
                "digest": digest,
                "size": body.len(),
                "platform": platform_json(platform)?,
            }));
            entries.push((platform.to_string(), digest));
        }
        let mt = match format {
            Format::Oci => MEDIA_OCI_INDEX,
            Format::Docker => MEDIA_DOCKER_LIST,
        };
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "manifests": list,
        }))?;
        let digest = self.put_manifest(name, tag, mt, &index)?;
        Ok(PushedIndex { digest, entries })
    }

    /// Push an OCI artifact (as `oras push --artifact-type`): an empty config, one layer
    /// holding `file` (a model file), `created` as the `org.opencontainers.image.created`
    /// annotation. Its digest.
    pub fn push_artifact(
        &self,
        name: &str,
        tag: &str,
        artifact_type: &str,
        file: &[u8],
        created: &str,
    ) -> Result<String> {
        let empty = b"{}";
        let config_digest = self.push_blob(name, empty)?;
        let layer_digest = self.push_blob(name, file)?;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": MEDIA_OCI_EMPTY, "digest": config_digest, "size": empty.len()},
            "layers": [{
                "mediaType": "application/octet-stream",
                "digest": layer_digest,
                "size": file.len(),
                "annotations": {"org.opencontainers.image.title": "model.safetensors"},
            }],
            "annotations": {"org.opencontainers.image.created": created},
        }))?;
        self.put_manifest(name, tag, MEDIA_OCI_MANIFEST, &manifest)
    }

    /// Point tag `to` at what `from` (a tag or digest) points at (moving it when it
    /// exists, as `docker tag` + push or `crane tag` do). The digest.
    pub fn retag(&self, name: &str, from: &str, to: &str) -> Result<String> {
        let accept = [
            MEDIA_OCI_INDEX,
            MEDIA_DOCKER_LIST,
            MEDIA_OCI_MANIFEST,
            MEDIA_DOCKER_MANIFEST,
        ]
        .join(", ");
        let a = self.request(
            "GET",
            &format!("/v2/{name}/manifests/{from}"),
            &[("Accept", &accept)],
            None,
        )?;
        if a.status != 200 {
            bail!(
                "reading manifest {name}:{from}: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
        }
        let mt = a
            .header("content-type")
            .context("manifest without Content-Type")?
            .to_string();
        self.put_manifest(name, to, &mt, &a.body)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
