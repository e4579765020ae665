//! A real SMTP server for tests: Debian's `python3-aiosmtpd` (`python3 -m aiosmtpd`) on
//! 127.0.0.1, writing every message it accepts to a Maildir (its `Mailbox` handler, which
//! also records the envelope as `X-MailFrom`/`X-RcptTo` headers), optionally requiring
//! STARTTLS with a self-signed certificate made by `rcgen`.
//!
//! `scripts/test` installs the package; [`SmtpSink::available`] tells a test whether it
//! is there, so a machine without it skips with a message rather than failing obscurely.

use anyhow::{bail, Context as _, Result};
use std::io::Read as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Interpreters tried, in order: Debian's package installs into the system Python, which
/// may not be the first `python3` on `PATH` (pyenv).
const PYTHONS: &[&str] = &["/usr/bin/python3", "python3"];

/// A running aiosmtpd; killed on drop.
pub struct SmtpSink {
    child: Child,
    port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

/// One received message.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// `(name, value)` in order, folded lines unfolded.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl ReceivedMail {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body decoded from its `Content-Transfer-Encoding` (quoted-printable, base64,
    /// or as is), line ends as `\n`.
    pub fn text(&self) -> Result<String> {
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or("7bit")
            .to_ascii_lowercase();
        let bytes = match encoding.as_str() {
            "quoted-printable" => quoted_printable(&self.body)?,
            "base64" => {
                use base64::Engine as _;
                let compact: String = self.body.split_whitespace().collect();
                base64::engine::general_purpose::STANDARD.decode(compact)?
            }
            _ => self.body.clone().into_bytes(),
        };
        Ok(String::from_utf8(bytes)?.replace("\r\n", "\n"))
    }

    fn parse(raw: &str) -> ReceivedMail {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = headers.last_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        ReceivedMail {
            headers,
            body: body.to_string(),
        }
    }
}

/// RFC 2045 quoted-printable (`=\n` joins lines, `=XX` is a byte).
fn quoted_printable(body: &str) -> Result<Vec<u8>> {
    let body = body.replace("\r\n", "\n");
    let b = body.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'=' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\n') {
            i += 2;
        } else {
            let hex = body.get(i + 1..i + 3).context("truncated =XX")?;
            out.push(u8::from_str_radix(hex, 16).with_context(|| format!("bad =XX: {hex:?}"))?);
            i += 3;
        }
    }
    Ok(out)
}

impl SmtpSink {
    /// The Python that has aiosmtpd, if any.
    pub fn available() -> Option<&'static str> {
        PYTHONS.iter().copied().find(|py| {
            Command::new(py)
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// Start aiosmtpd on a free port of 127.0.0.1; with `starttls`, it offers STARTTLS
    /// with a self-signed certificate for `localhost`/`127.0.0.1` and refuses mail
    /// before it.
    pub fn start(starttls: bool) -> Result<SmtpSink> {
        let python = Self::available().context(
            "aiosmtpd is not installed (Debian package python3-aiosmtpd; scripts/test installs it)",
        )?;
        let dir = tempfile::tempdir()?;
        let maildir = dir.path().join("maildir");
        let port = crate::free_port()?;
        let mut cmd = Command::new(python);
        cmd.args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"));
        if starttls {
            let (cert, key) = self_signed(dir.path())?;
            cmd.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
        }
        cmd.args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().context("starting aiosmtpd")?;
        let mut sink = SmtpSink {
            child,
            port,
            maildir,
            _dir: dir,
        };
        sink.wait_ready()?;
        Ok(sink)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("aiosmtpd exited before listening: {status}");
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut banner = [0u8; 3];
                if s.read_exact(&mut banner).is_ok() && &banner == b"220" {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "aiosmtpd did not answer on 127.0.0.1:{} within 30s",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message received so far (order of arrival is not guaranteed).
    pub fn received(&self) -> Result<Vec<ReceivedMail>> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.maildir.join(sub);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let raw = std::fs::read(entry?.path())?;
                out.push(ReceivedMail::parse(&String::from_utf8_lossy(&raw)));
            }
        }
        Ok(out)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for `localhost` and `127.0.0.1` (PEM files in `dir`).
fn self_signed(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .context("generating a test certificate")?;
    let cert = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    std::fs::write(&cert, key.cert.pem())?;
    std::fs::write(&key_file, key.signing_key.serialize_pem())?;
    Ok((cert, key_file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_headers_are_unfolded() {
        let m =
            ReceivedMail::parse("Subject: a long\r\n subject\r\nX-RcptTo: a@b.c\r\n\r\nbody\r\n");
        assert_eq!(m.header("subject"), Some("a long subject"));
        assert_eq!(m.header("X-RCPTTO"), Some("a@b.c"));
        assert_eq!(m.body, "body\n");
        let qp = ReceivedMail::parse(
            "Content-Transfer-Encoding: quoted-printable\n\nhttps://x/applica=\ntions?operation=3Dtrue\n",
        );
        assert_eq!(
            qp.text().expect("qp"),
            "https://x/applications?operation=true\n"
        );
    }
}
