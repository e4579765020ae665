//! Running a rendering tool (kustomize, kubectl, helm): argv only, never a shell; a clean
//! environment; its own process group so a timeout kills it and anything it started; a cap
//! on stdout (the child is killed as soon as it is exceeded) and on the stderr kept for
//! the error message.

use crate::RenderError;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bytes of stderr kept for an error message.
const STDERR_CAP: usize = 16 * 1024;

/// Find an executable named `name` on PATH.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

pub(crate) struct Tool<'a> {
    pub program: &'a Path,
    pub args: Vec<OsString>,
    pub cwd: &'a Path,
    /// The exported tree: shown as `.` in messages instead of its temporary location.
    pub root: &'a Path,
    pub timeout: Duration,
    pub max_output: u64,
}

impl Tool<'_> {
    fn display(&self) -> String {
        let mut s = self.program.file_name().map_or_else(
            || self.program.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        self.relative(&s)
    }

    /// Replace the temporary location of the tree by `.` so messages show repository paths.
    fn relative(&self, text: &str) -> String {
        let root = self.root.to_string_lossy();
        if root.len() < 2 {
            return text.to_string();
        }
        text.replace(&format!("{root}/"), "").replace(&*root, ".")
    }

    /// Run to completion and return stdout as text.
    pub fn run(&self) -> Result<String, RenderError> {
        let command = self.display();
        let deadline = Instant::now() + self.timeout;
        let mut child = self.spawn(&command)?;
        let (out_tx, out_rx) = mpsc::channel();
        let (err_tx, err_rx) = mpsc::channel();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let cap = self.max_output;
        std::thread::spawn(move || {
            let _ = out_tx.send(stdout.map(|s| read_stdout(s, cap)));
        });
        std::thread::spawn(move || {
            let _ = err_tx.send(stderr.map(read_stderr));
        });

        let remaining = |now: Instant| deadline.saturating_duration_since(now);
        let stdout = match out_rx.recv_timeout(remaining(Instant::now())) {
            Ok(Some(Ok(Some(bytes)))) => bytes,
            Ok(Some(Ok(None))) => {
                kill(&mut child);
                return Err(RenderError::OutputTooLarge {
                    what: format!("`{command}`"),
                    limit: self.max_output,
                });
            }
            Ok(Some(Err(e))) => {
                kill(&mut child);
                return Err(RenderError::Spawn { command, source: e });
            }
            Ok(None) => Vec::new(),
            Err(_) => {
                kill(&mut child);
                return Err(RenderError::Timeout {
                    command,
                    timeout: self.timeout,
                });
            }
        };
        // stdout is closed; the child is exiting (or left a grandchild behind).
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    kill(&mut child);
                    return Err(RenderError::Timeout {
                        command,
                        timeout: self.timeout,
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    kill(&mut child);
                    return Err(RenderError::Spawn { command, source: e });
                }
            }
        };
        // The child is reaped now: its process group id may be reused, so it is never
        // signalled after this point.
        let stderr = err_rx
            .recv_timeout(remaining(Instant::now()).max(Duration::from_millis(200)))
            .ok()
            .flatten()
            .unwrap_or_default();
        if !status.success() {
            let stderr = self.relative(&clean_stderr(&String::from_utf8_lossy(&stderr)));
            return Err(RenderError::ToolFailed {
                command,
                status: status.to_string(),
                stderr: if stderr.is_empty() {
                    "(no error output)".into()
                } else {
                    stderr
                },
            });
        }
        String::from_utf8(stdout).map_err(|_| RenderError::ToolFailed {
            command,
            status: status.to_string(),
            stderr: "output is not UTF-8 text".into(),
        })
    }

    fn spawn(&self, command: &str) -> Result<Child, RenderError> {
        let mut cmd = Command::new(self.program);
        cmd.args(&self.args)
            .current_dir(self.cwd)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // A clean environment: only what the tools need to find themselves and their
        // caches. Credentials, KUBECONFIG and the like are not passed on.
        for var in ["PATH", "HOME", "TMPDIR", "LANG"] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        // A script written just now may still be open for writing in a process another
        // thread is forking ("text file busy"); that clears within milliseconds.
        let mut attempts = 0;
        loop {
            match cmd.spawn() {
                Ok(child) => return Ok(child),
                Err(e) if e.raw_os_error() == Some(26) && attempts < 20 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(RenderError::Spawn {
                        command: command.into(),
                        source: e,
                    })
                }
            }
        }
    }
}

/// Trim stderr and drop klog's line prefix (`E1125 18:15:26.397982   10727 run.go:72] `),
/// which kubectl puts before its message.
fn clean_stderr(s: &str) -> String {
    s.lines()
        .map(|l| {
            let b = l.as_bytes();
            let klog = b.len() > 22
                && matches!(b[0], b'E' | b'W' | b'I' | b'F')
                && b[1..5].iter().all(u8::is_ascii_digit)
                && b[5] == b' ';
            match (klog, l.find("] ")) {
                (true, Some(i)) => &l[i + 2..],
                _ => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// Read stdout up to `cap` bytes; `None` when the cap was exceeded.
fn read_stdout(mut r: impl Read, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    (&mut r).take(cap.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Ok(None);
    }
    Ok(Some(buf))
}

/// Keep the first `STDERR_CAP` bytes of stderr and drain the rest so the child never
/// blocks on a full pipe.
fn read_stderr(mut r: impl Read) -> Vec<u8> {
    let mut keep = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match r.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = STDERR_CAP.saturating_sub(keep.len());
                keep.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
    keep
}

fn kill_group(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn kill(child: &mut Child) {
    kill_group(child);
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn klog_prefix_is_dropped() {
        let s = "E1125 18:15:26.397982   10727 run.go:72] \"command failed\" err=\"x\"\n  plain\n";
        assert_eq!(clean_stderr(s), "\"command failed\" err=\"x\"\n  plain");
    }
}
