//! `mooring bench chaos` in the suite (issue 20): a short run must pass its invariants,
//! and the same run against a deliberately broken controller must fail them.
//!
//! The broken controller is the debug build's `MOORING_INJECT_BUG=status-before-apply`
//! (it records a step as submitted before applying it); the crash point armed right after
//! that write makes the window certain to be hit. Release builds carry no such switch.

use std::process::{Command, Output};

fn chaos(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args(["bench", "chaos"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("mooring runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Ten kills (controller at random moments, mid-hook, mid-wave, the API server) with Git,
/// partition and receiver outages and the controllers' crash points armed: every app
/// converges, nothing is lost or done twice.
#[test]
fn ten_kills_lose_nothing_and_repeat_nothing() {
    let o = chaos(
        &["--kills", "10", "--seed", "20", "--round-timeout", "90"],
        &[],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let closing = out
        .lines()
        .find(|l| l.starts_with("chaos: ") && l.contains(" faults, "))
        .unwrap_or_else(|| panic!("no closing line:\n{out}"));
    assert!(closing.ends_with(" 0 lost, 0 duplicated"), "{closing}");
    // Ten rounds, each with one kill; the table names the recovery of each class seen.
    assert_eq!(out.matches("\nround ").count(), 10, "{out}");
    assert!(out.contains("recovery after"), "{out}");
    let faults: usize = closing
        .trim_start_matches("chaos: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("fault count");
    assert!(faults >= 10, "{closing}");
    assert!(out.contains("acknowledged API writes checked"), "{out}");
}

/// The deliberate bug (status written before the apply) is caught: exit 1, the closing
/// line, and a violation naming the app or operation concerned.
#[test]
fn a_status_written_before_the_apply_is_caught() {
    let o = chaos(
        &[
            "--kills",
            "3",
            "--seed",
            "3",
            "--round-timeout",
            "30",
            "--crash-points",
            "sync.persisted=0.5",
        ],
        &[("MOORING_INJECT_BUG", "status-before-apply")],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("violation: "), "{out}");
    assert!(
        out.contains("not converged")
            || out.contains("did not converge")
            || out.contains("without running its PreSync hook"),
        "{out}"
    );
    // The run keeps its data for inspection on failure; this one is expected.
    if let Some(dir) = out
        .lines()
        .find_map(|l| l.strip_prefix("logs and data kept in "))
    {
        let _ = std::fs::remove_dir_all(dir.trim());
    }
}
