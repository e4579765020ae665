//! `mooring bench soak` as a user runs it, shortened: a few simulated minutes at a high
//! speed. The figures are not asserted (a soak is a measurement); the shape of the
//! report is, and that every app converged at Git's head after the events.

use std::process::Command;

#[test]
fn bench_soak_prints_trends_and_converges() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args(["bench", "soak", "--duration", "10m", "--speed", "60"])
        .args(["--seed", "7"])
        .current_dir(dir.path())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("mooring runs");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "soak failed:\n{out}\n{err}");
    assert!(out.contains("seed 7"), "the seed is printed:\n{out}");
    assert!(out.contains("samples ("), "the sample table:\n{out}");
    assert!(
        out.contains("trend after warm-up"),
        "the trend table:\n{out}"
    );
    for series in [
        "rss",
        "cpu",
        "fds",
        "queue",
        "watches mgmt",
        "watches edge",
        "tasks",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(series) && (l.ends_with("flat") || l.ends_with("growing"))),
            "a verdict for {series}:\n{out}"
        );
    }
    assert!(
        out.contains("converged: all 32 apps Synced+Healthy at"),
        "every app converged:\n{out}"
    );
}
