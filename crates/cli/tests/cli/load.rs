//! `mooring bench load` at a small size: the REST API, the webhook and the embedded API
//! server under 20 concurrent clients for 2 s while the controller keeps 20 apps
//! reconciled. A bounded load must cause no error at all (any non-2xx answer or
//! connection error is one); no timing is asserted (a loaded CI machine).

use std::process::Command;

#[test]
fn bench_load_prints_the_table_without_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args(["bench", "load", "--apps", "20", "--writers", "20"])
        .args(["--seconds", "2", "--rounds", "3"])
        .output()
        .expect("mooring runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for class in [
        "REST read",
        "REST write",
        "webhook",
        "kube read",
        "kube write",
        "watch",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(class))
            .unwrap_or_else(|| panic!("no {class:?} row in:\n{stdout}"));
        let requests: usize = row[class.len()..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no request count in {row:?}"));
        assert!(requests > 0, "{row}");
        assert!(row.ends_with(" 0 (0.00%)"), "{row}");
    }
    let total = stdout
        .lines()
        .find(|l| l.starts_with("total"))
        .unwrap_or_else(|| panic!("no total row in:\n{stdout}"));
    assert!(total.ends_with(" 0 (0.00%)"), "{total}");
    assert!(
        stdout.contains("commit → webhook → Synced+Healthy p50: idle"),
        "{stdout}"
    );
}
