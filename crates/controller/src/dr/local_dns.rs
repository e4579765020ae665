//! A local BIND (Debian's `named`) for `mooring up`, `mooring bench dr` and the tests:
//! one zone on 127.0.0.1 that accepts RFC 2136 updates signed with its TSIG keys, as the
//! DR plan's `rfc2136` provider expects of a real name server. Like `up`'s Prometheus
//! ([`crate::prometheus::LocalPrometheus`]) it is a real server binary started for the
//! user, not a simulation; `scripts/test` installs `bind9` and `bind9-dnsutils` (for
//! `dig`, with which the zone is read back as an operator would).

use base64::Engine as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the server could not be started or read.
#[derive(Debug, thiserror::Error)]
pub enum LocalDnsError {
    #[error("BIND is not installed (Debian package bind9; scripts/test installs it)")]
    NotInstalled,
    #[error("{0}")]
    Failed(String),
}

type Result<T> = std::result::Result<T, LocalDnsError>;

fn failed(what: impl std::fmt::Display) -> LocalDnsError {
    LocalDnsError::Failed(what.to_string())
}

/// Binary names tried for BIND's server.
const NAMED: &[&str] = &["/usr/sbin/named", "named"];

/// The environment variable that turns a missing `named` into a failure.
pub const REQUIRE_ENV: &str = "MOORING_REQUIRE_DNS_SERVER";

/// One TSIG key the server knows (granted updates anywhere in the zone).
#[derive(Debug, Clone)]
pub struct TsigKey {
    pub name: String,
    /// `hmac-sha256`, `hmac-sha512`, `hmac-sha1`.
    pub algorithm: String,
    /// Base64, as `tsig-keygen` prints it and a Secret holds it.
    pub secret: String,
}

/// A running `named`; killed on drop.
pub struct LocalBind {
    child: Child,
    /// Kills `named` if this process dies without dropping the server.
    watchdog: Option<Child>,
    port: u16,
    zone: String,
    keys: Vec<TsigKey>,
    dir: tempfile::TempDir,
}

impl LocalBind {
    /// The `named` binary, if installed.
    pub fn binary() -> Option<PathBuf> {
        NAMED.iter().map(PathBuf::from).find(|b| {
            Command::new(b)
                .arg("-v")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// Whether the BIND tests can run: `true` with `named` installed; without it, a
    /// panic when [`REQUIRE_ENV`] is set (CI), else `false` after saying what is skipped.
    pub fn available(test: &str) -> bool {
        if Self::binary().is_some() && which("dig") {
            return true;
        }
        if std::env::var_os(REQUIRE_ENV).is_some() {
            panic!(
                "{test}: BIND's `named` and `dig` are required ({REQUIRE_ENV} is set): install the Debian packages bind9 and bind9-dnsutils (scripts/test does)"
            );
        }
        eprintln!(
            "SKIPPED {test}: BIND's `named` or `dig` is not installed (Debian packages bind9 and bind9-dnsutils; scripts/test installs them)"
        );
        false
    }

    /// Serve `zone` (e.g. `ml.example.com`) on a free port of 127.0.0.1 with `records`
    /// (`(name relative to the zone, type, value)`), and three TSIG keys allowed to
    /// update it: `mooring` (hmac-sha256), `mooring-sha512`, `mooring-sha1`.
    pub fn start(
        zone: &str,
        port: Option<u16>,
        records: &[(&str, &str, &str)],
    ) -> Result<LocalBind> {
        let binary = Self::binary().ok_or(LocalDnsError::NotInstalled)?;
        let dir = tempfile::tempdir().map_err(failed)?;
        let keys = vec![
            key("mooring", "hmac-sha256", 32)?,
            key("mooring-sha512", "hmac-sha512", 64)?,
            key("mooring-sha1", "hmac-sha1", 20)?,
        ];
        let mut zone_file = format!(
            "$TTL 300\n@ IN SOA ns1.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n@ IN NS ns1.{zone}.\nns1 IN A 127.0.0.1\n"
        );
        for (name, ty, value) in records {
            zone_file.push_str(&format!("{name} IN {ty} {value}\n"));
        }
        std::fs::write(dir.path().join("zone.db"), zone_file).map_err(failed)?;
        let port = match port {
            Some(p) => p,
            None => std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(failed)?
                .port(),
        };
        let d = dir.path().display();
        let mut conf = format!(
            "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n  managed-keys-directory \"{d}\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  recursion no;\n  notify no;\n  dnssec-validation no;\n  allow-query {{ any; }};\n}};\ncontrols {{ }};\n"
        );
        for k in &keys {
            conf.push_str(&format!(
                "key \"{}\" {{ algorithm {}; secret \"{}\"; }};\n",
                k.name, k.algorithm, k.secret
            ));
        }
        let grants: String = keys
            .iter()
            .map(|k| format!("grant {} zonesub ANY; ", k.name))
            .collect();
        conf.push_str(&format!(
            "zone \"{zone}\" {{ type primary; file \"{d}/zone.db\"; update-policy {{ {grants}}}; }};\n"
        ));
        let conf_path = dir.path().join("named.conf");
        std::fs::write(&conf_path, conf).map_err(failed)?;
        let log = std::fs::File::create(dir.path().join("named.log")).map_err(failed)?;
        let child = Command::new(&binary)
            .arg("-g")
            .arg("-4")
            .args(["-n", "1"])
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| failed(format!("starting {}: {e}", binary.display())))?;
        // A `named` left behind by a process killed without dropping this (a test killed on
        // timeout, `kill -9` of `mooring up`) would keep the port with keys nobody has.
        let watchdog = crate::prometheus::watchdog(child.id());
        let mut bind = LocalBind {
            child,
            watchdog,
            port,
            zone: zone.trim_end_matches('.').to_string(),
            keys,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = bind.child.try_wait().map_err(failed)? {
                return Err(failed(format!(
                    "named exited before it was ready: {status}\n{}",
                    bind.log_tail()
                )));
            }
            if bind.serial().is_ok() {
                return Ok(bind);
            }
            if Instant::now() > deadline {
                return Err(failed(format!(
                    "named on 127.0.0.1:{port} was not ready within 60s\n{}",
                    bind.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `127.0.0.1:PORT`, as a plan's `rfc2136.server`.
    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The key of that algorithm.
    pub fn key(&self, algorithm: &str) -> &TsigKey {
        self.keys
            .iter()
            .find(|k| k.algorithm == algorithm)
            .expect("named was started with a key of each algorithm")
    }

    /// `dig @127.0.0.1 -p PORT NAME TYPE +short`: the answers, one a line.
    pub fn dig(&self, name: &str, record_type: &str) -> Result<Vec<String>> {
        let out = Command::new("dig")
            .arg("@127.0.0.1")
            .args(["-p", &self.port.to_string()])
            .args([name, record_type])
            .args(["+short", "+time=2", "+tries=1"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| failed(format!("running dig (Debian package bind9-dnsutils): {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() || text.starts_with(";;") {
            return Err(failed(format!(
                "dig {name} {record_type} failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(text.lines().map(str::to_string).collect())
    }

    /// The zone's SOA serial: BIND increments it once per accepted update message, so
    /// tests count updates with it.
    pub fn serial(&self) -> Result<u32> {
        let soa = self.dig(&format!("{}.", self.zone), "SOA")?;
        let line = soa.first().ok_or_else(|| failed("no SOA answer"))?;
        line.split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| failed(format!("no SOA serial in `{line}`")))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The temporary directory holding the configuration, zone and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for LocalBind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(w) = &mut self.watchdog {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

fn which(binary: &str) -> bool {
    Command::new(binary)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A random key of `len` bytes.
fn key(name: &str, algorithm: &str, len: usize) -> Result<TsigKey> {
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(failed)?;
    Ok(TsigKey {
        name: name.to_string(),
        algorithm: algorithm.to_string(),
        secret: base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}
