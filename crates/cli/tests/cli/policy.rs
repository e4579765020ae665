//! `mooring policy test|test-rego|verify` through the real binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/policy");

/// Runs `mooring policy ARGS` in the fixtures directory.
fn policy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mooring"))
        .arg("policy")
        .args(args)
        .current_dir(FIXTURES)
        .output()
        .expect("mooring runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

const CONFTEST: [&str; 4] = ["-p", "conftest/policy", "-d", "conftest/data"];

fn conftest(extra: &[&str]) -> Output {
    let mut args = vec!["test"];
    args.extend(CONFTEST);
    args.extend(extra);
    policy(&args)
}

#[test]
fn test_reports_failures_warnings_and_exceptions_like_conftest() {
    let o = conftest(&["conftest/inputs/training.yaml"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 1, "{out}{}", stderr(&o));
    assert!(
        out.contains(
            "FAIL - conftest/inputs/training.yaml - main - trainer: container train has no memory limit"
        ),
        "{out}"
    );
    assert!(out.contains("WARN - conftest/inputs/training.yaml - main - trainer: image docker.io/library/trainer:latest uses the latest tag"), "{out}");
    assert!(
        out.contains("EXCP - conftest/inputs/training.yaml - main - data.main.exception[_][_] == \"untrusted_registry\""),
        "{out}"
    );
    assert!(
        out.contains("6 tests, 2 passed, 1 warning, 2 failures, 1 exception"),
        "{out}"
    );
}

#[test]
fn test_passes_clean_inputs_with_exit_0() {
    let o = conftest(&["conftest/inputs/good.yaml"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("3 tests, 3 passed, 0 warnings, 0 failures, 0 exceptions"));
}

#[test]
fn test_fail_on_warn() {
    let dir = tempfile::tempdir().expect("tmp");
    let warn_only = dir.path().join("latest.yaml");
    std::fs::write(
        &warn_only,
        "kind: Deployment\nmetadata: {name: w}\nspec: {template: {spec: {containers: [{name: c, image: \"registry.ml.example.com/x:latest\", resources: {limits: {memory: 1Gi}}}]}}}\n",
    )
    .expect("write");
    let path = warn_only.to_str().expect("utf-8 path");
    let o = conftest(&[path]);
    assert_eq!(code(&o), 0, "a warning alone passes: {}", stdout(&o));
    assert!(
        stdout(&o).contains("1 warning, 0 failures"),
        "{}",
        stdout(&o)
    );
    let o = conftest(&["--fail-on-warn", path]);
    assert_eq!(code(&o), 1);
}

#[test]
fn test_every_output_format() {
    for format in ["table", "json", "tap", "junit", "github", "sarif"] {
        let o = conftest(&["-o", format, "conftest/inputs/training.yaml"]);
        let out = stdout(&o);
        assert_eq!(code(&o), 1, "{format}: {out}{}", stderr(&o));
        match format {
            "json" => {
                let v: serde_json::Value = serde_json::from_str(&out).expect("json");
                assert_eq!(v[0]["filename"], "conftest/inputs/training.yaml");
                assert_eq!(v[0]["namespace"], "main");
                assert_eq!(v[0]["successes"], 2);
                assert_eq!(v[0]["failures"].as_array().expect("failures").len(), 2);
                assert_eq!(v[0]["warnings"].as_array().expect("warnings").len(), 1);
                assert_eq!(v[0]["exceptions"].as_array().expect("exceptions").len(), 1);
                assert_eq!(v[0]["failures"][0]["metadata"]["query"], "data.main.deny");
            }
            "tap" => {
                assert!(out.contains("1..6\n"), "{out}");
                assert!(out.contains("not ok 1 - conftest/inputs/training.yaml - main - trainer: container train has no memory limit"), "{out}");
            }
            "junit" => {
                assert!(out.starts_with("<?xml"), "{out}");
                assert!(out.contains("<failure"), "{out}");
                assert!(out.contains("failures=\"2\""), "{out}");
            }
            "github" => {
                assert!(
                    out.contains("::error file=conftest/inputs/training.yaml,line=1,title=main.deny::trainer: container train has no memory limit"),
                    "{out}"
                );
                assert!(out.contains("::warning file=conftest/inputs/training.yaml"));
            }
            "sarif" => {
                let v: serde_json::Value = serde_json::from_str(&out).expect("sarif json");
                assert_eq!(v["version"], "2.1.0");
                assert_eq!(v["runs"][0]["tool"]["driver"]["name"], "mooring");
                let results = v["runs"][0]["results"].as_array().expect("results");
                assert_eq!(results.len(), 4);
                assert_eq!(results[0]["level"], "error");
                assert_eq!(
                    results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                    "conftest/inputs/training.yaml"
                );
            }
            _ => assert!(out.contains("FAIL - "), "{out}"),
        }
    }
}

#[test]
fn test_terraform_dockerfile_and_namespaces() {
    let o = conftest(&["-n", "terraform", "conftest/inputs/main.tf"]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o)
        .contains("FAIL - conftest/inputs/main.tf - terraform - bucket datasets is public"));

    let o = conftest(&["-n", "docker", "-o", "github", "conftest/inputs/Dockerfile"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 1, "{out}");
    assert!(out.contains("::error file=conftest/inputs/Dockerfile,line=1,title=docker.deny::containers must not run as root"), "{out}");
    assert!(
        out.contains("::error file=conftest/inputs/Dockerfile,line=1,"),
        "{out}"
    );

    // A directory is walked; --all-namespaces runs every package.
    let o = conftest(&["--all-namespaces", "-o", "json", "conftest/inputs"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let subjects = v.as_array().expect("array");
    assert_eq!(subjects.len(), 4 * 3, "4 files x 3 namespaces");
}

#[test]
fn test_combine_and_stdin() {
    let o = conftest(&[
        "--combine",
        "-o",
        "json",
        "conftest/inputs/good.yaml",
        "conftest/inputs/training.yaml",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v.as_array().expect("array").len(), 1);
    assert_eq!(v[0]["filename"], "Combined");

    let mut child = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args(["policy", "test", "-p", "conftest/policy", "-"])
        .current_dir(FIXTURES)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mooring runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"kind: Deployment\nmetadata: {name: x}\nspec: {template: {spec: {containers: [{name: c, image: a:latest}]}}}\n")
        .expect("write");
    let o = child.wait_with_output().expect("waits");
    let out = stdout(&o);
    assert_eq!(code(&o), 1, "{out}{}", stderr(&o));
    assert!(
        out.contains("FAIL - - main - x: container c has no memory limit"),
        "{out}"
    );
}

#[test]
fn test_hostile_and_malformed_inputs_exit_2_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "a: [1, 2\nb: {").expect("write");
    let binary = dir.path().join("blob.json");
    std::fs::write(&binary, [0u8, 159, 146, 150, 0, 1, 2, 255]).expect("write");
    let huge = dir.path().join("huge.yaml");
    std::fs::write(&huge, format!("a: {}\n", "x".repeat(9 << 20))).expect("write");
    let alias_bomb = dir.path().join("bomb.yaml");
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let mut prev = 'a';
    for c in 'b'..='p' {
        bomb.push_str(&format!("{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        prev = c;
    }
    std::fs::write(&alias_bomb, bomb).expect("write");
    for (file, expect) in [
        (&broken, "parsing as yaml"),
        (&binary, "not UTF-8"),
        (&huge, "limit"),
        (&alias_bomb, "parsing as yaml"),
    ] {
        let o = conftest(&[file.to_str().expect("utf-8 path")]);
        assert_eq!(code(&o), 2, "{}: {}", file.display(), stdout(&o));
        let err = stderr(&o);
        assert!(err.contains(expect), "{}: {err}", file.display());
        assert!(
            err.contains(&file.display().to_string()),
            "names the file: {err}"
        );
    }
    let o = conftest(&["--parser", "cue", "conftest/inputs/good.yaml"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("unknown parser"));
    let o = conftest(&["no/such/file.yaml"]);
    assert_eq!(code(&o), 2);
    let o = policy(&["test", "-p", "no-such-dir", "conftest/inputs/good.yaml"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no-such-dir"));
}

#[test]
fn test_policy_that_does_not_compile_exits_2_with_file_and_line() {
    let o = policy(&["test", "-p", "bad/policy", "conftest/inputs/good.yaml"]);
    assert_eq!(code(&o), 2, "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("bad/policy/bad.rego:"), "{err}");
    let line: u32 = err
        .split("bad/policy/bad.rego:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!((5..=6).contains(&line), "line of the error: {err}");
}

#[test]
fn test_runaway_policy_hits_the_time_limit() {
    let start = std::time::Instant::now();
    let o = policy(&[
        "test",
        "-p",
        "slow/policy",
        "--eval-timeout",
        "0.5",
        "conftest/inputs/good.yaml",
    ]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(err.contains("time limit of 500ms"), "{err}");
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn test_rego_passes_and_fails_like_opa_test() {
    let o = policy(&["test-rego", "rego/pass", "-v"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}{}", stderr(&o));
    assert!(
        out.contains("data.ml.limits.test_cap_can_be_raised: PASS"),
        "{out}"
    );
    assert!(out.contains("\n3 passed, 0 failed\n"), "{out}");

    let o = policy(&["test-rego", "rego/fail"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 1, "{out}");
    assert!(
        out.contains("data.ml.limits.test_wrong_expectation: FAIL"),
        "{out}"
    );
    assert!(
        out.contains("rego/fail/limits_test.rego:9: test result is undefined"),
        "{out}"
    );
    assert!(
        out.contains("violations: 0"),
        "print output of the failed test: {out}"
    );
    assert!(out.contains("\n1 passed, 1 failed\n"), "{out}");
    assert!(
        !out.contains("test_sixteen_gpus_violate"),
        "passing tests listed only with -v"
    );

    let o = policy(&["test-rego", "rego/fail", "--run", "sixteen"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("1 passed, 0 failed"));
}

#[test]
fn test_rego_coverage_and_json() {
    let o = policy(&["test-rego", "rego/pass", "--coverage"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}");
    assert!(out.contains("coverage: "), "{out}");
    assert!(out.contains("rego/pass/limits.rego: "), "{out}");

    let o = policy(&["test-rego", "rego/fail", "--coverage", "-o", "json"]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["passed"], 1);
    assert_eq!(v["failed"], 1);
    assert!(v["coverage"]["coverage"].as_f64().is_some(), "{v}");
    assert!(
        v["coverage"]["files"]["rego/fail/limits.rego"].is_object(),
        "{v}"
    );

    let o = policy(&["test-rego", "bad"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("bad/policy/bad.rego:"));
    let o = policy(&["test-rego", "rego/pass", "--run", "("]);
    assert_eq!(code(&o), 2);
    let o = policy(&["test-rego", "conftest/policy"]);
    assert_eq!(code(&o), 2, "a directory without tests is an error");
    assert!(stderr(&o).contains("no tests found"));
}

#[test]
fn verify_runs_rego_tests_and_gator_suites() {
    let o = policy(&["verify", "rego/pass"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("3 passed, 0 failed"));
    let o = policy(&["verify", "rego/fail"]);
    assert_eq!(code(&o), 1, "one failing test under rego/fail");
    assert!(stdout(&o).contains("1 passed, 1 failed"));
    // The seed's policy pack: every gator suite and every Rego unit test passes.
    let pack = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/ml-platform/policies"
    );
    let o = policy(&["verify", pack]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("0 failures"), "{out}");
    assert!(out.contains("passed, 0 failed"), "{out}");
    // A suite whose expectations the template does not meet fails with exit 1.
    let failing = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policy/tests/fixtures/policy/gatekeeper/gator/failing-suite.yaml"
    );
    let o = policy(&["verify", failing]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("FAIL"), "{}", stdout(&o));
    let o = policy(&["verify", "conftest/inputs"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no gator suites"));
}

#[test]
fn verify_reads_gator_files_as_gator_does_and_goes_on_past_a_broken_suite() {
    // Go-cased suite fields, a template with a trailing (broken) document, object files
    // with a trailing `---` (empty: fine; non-empty: a second object), a repeated key (an
    // error in go-yaml v3), and two suite files gator cannot read: each fails on its own.
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policy/tests/fixtures/policy/gatekeeper/gator-go-decoding"
    );
    let o = policy(&["verify", dir]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(code(&o), 1, "{out}{err}");
    for needle in [
        "broken-suite.yaml",
        "invalid YAML",
        "duplicate-key-suite.yaml",
        "mapping key \"tests\" at line 4 is already defined",
        "trailing-document.yaml defines 2 objects",
        "duplicate-key.yaml",
        "mapping key \"team\" at line 9 is already defined",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
    assert!(
        out.contains("5 tests, 1 passed, 0 warnings, 4 failures, 0 exceptions"),
        "{out}"
    );
}

#[test]
fn test_walks_directories_without_following_symlink_loops() {
    let dir = tempfile::tempdir().expect("tmp");
    let inputs = dir.path().join("inputs");
    std::fs::create_dir(&inputs).expect("mkdir");
    std::fs::copy(
        format!("{FIXTURES}/conftest/inputs/good.yaml"),
        inputs.join("good.yaml"),
    )
    .expect("copy");
    std::fs::write(inputs.join("README.md"), "not an input").expect("write");
    std::os::unix::fs::symlink(&inputs, inputs.join("loop")).expect("symlink");
    std::fs::create_dir(inputs.join(".git")).expect("mkdir");
    std::fs::write(inputs.join(".git/config.json"), "{").expect("write");
    let o = conftest(&[inputs.to_str().expect("utf-8 path")]);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}{}", stderr(&o));
    assert!(
        out.contains("3 tests, 3 passed"),
        "only good.yaml is tested: {out}"
    );
}

#[test]
fn test_bad_data_documents_exit_2() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("broken.json"), "{\"registries\": ").expect("write");
    let o = policy(&[
        "test",
        "-p",
        "conftest/policy",
        "-d",
        dir.path().to_str().expect("utf-8 path"),
        "conftest/inputs/good.yaml",
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("broken.json: loading data"),
        "{}",
        stderr(&o)
    );
}
