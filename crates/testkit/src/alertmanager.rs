//! A real Alertmanager for tests: Debian's `prometheus-alertmanager` on 127.0.0.1, alone
//! (clustering off), its storage in a temporary directory, routing every alert to a
//! receiver that sends nothing; tests post alerts and read them back from its v2 API.
//!
//! `scripts/test` installs the package; [`Alertmanager::binary`] tells a test whether it
//! is there, so a machine without it skips with a message rather than failing obscurely.

use anyhow::{bail, Context as _, Result};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Binary names tried: Debian's, then upstream's.
const BINARIES: &[&str] = &[
    "prometheus-alertmanager",
    "/usr/bin/prometheus-alertmanager",
    "alertmanager",
];

const CONFIG: &str = "route:\n  receiver: 'null'\nreceivers:\n- name: 'null'\n";

/// A running Alertmanager; killed on drop.
pub struct Alertmanager {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// The Alertmanager binary, if installed.
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

    /// Start one on a free port of 127.0.0.1 and wait until it is ready.
    pub fn start() -> Result<Alertmanager> {
        let binary = Self::binary().context(
            "Alertmanager is not installed (Debian package prometheus-alertmanager; scripts/test installs it)",
        )?;
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, CONFIG)?;
        let port = crate::free_port()?;
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut am = Alertmanager {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = am.child.try_wait()? {
                bail!("alertmanager exited before it was ready: {status}");
            }
            if crate::http_get(port, "/-/ready").is_ok_and(|(code, _)| code == 200) {
                return Ok(am);
            }
            if Instant::now() > deadline {
                bail!("alertmanager on 127.0.0.1:{port} was not ready within 60s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `host:port`, as a `targets` entry of Argo CD's alertmanager service.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The alerts it holds (`GET /api/v2/alerts`).
    pub fn alerts(&self) -> Result<serde_json::Value> {
        let (code, body) = crate::http_get(self.port, "/api/v2/alerts")?;
        if code != 200 {
            bail!("GET /api/v2/alerts answered {code}: {body}");
        }
        serde_json::from_str(&body).context("alerts JSON")
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
