//! Health assessment: golden fixtures for the built-in rules, an Argo CD-layout tree of
//! custom Lua checks run through the `health_test.yaml` harness, and hostile scripts.

use mooring_engine::health::{
    assess, run_health_tests, run_lua, HealthError, HealthStatus, HealthStatusCode,
    LuaHealthChecks, LuaLimits,
};
use mooring_source::files::StdFiles;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/health")
}

fn parse_status(v: &Value) -> Option<HealthStatus> {
    if v.is_null() {
        return None;
    }
    let status = v["status"].as_str().expect("expected.status is a string");
    Some(HealthStatus::new(
        HealthStatusCode::parse(status).expect("expected.status is a health status"),
        v["message"].as_str().unwrap_or(""),
    ))
}

#[test]
fn health_builtin_golden_fixtures() {
    let dir = fixtures().join("builtin");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut count = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("fixture readable");
        let doc = mooring_core::yaml::parse_one(&text).expect("fixture is YAML");
        for case in doc["cases"].as_array().expect("cases list") {
            count += 1;
            let name = case["name"].as_str().expect("case name");
            let expected = parse_status(&case["expected"]);
            let actual = assess(&case["object"], None);
            if actual != expected {
                failures.push(format!(
                    "{}: {name}\n  expected {expected:?}\n  actual   {actual:?}",
                    file.file_name().expect("name").to_string_lossy()
                ));
            }
        }
    }
    assert!(count >= 60, "only {count} golden cases found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn health_test_harness_reports_per_case_like_argo_cd() {
    let report =
        run_health_tests(&StdFiles, &fixtures().join("customizations")).expect("tree runs");
    let text = report.to_string();
    assert_eq!(report.cases.len(), 10, "{text}");
    let failed: Vec<_> = report.cases.iter().filter(|c| !c.passed).collect();
    assert_eq!(failed.len(), 1, "{text}");
    let bad = failed[0];
    assert_eq!(bad.input, "testdata/deliberately_wrong_expectation.yaml");
    assert_eq!(bad.script_dir, Path::new("ml.example.com/ModelDeployment"));
    assert_eq!(
        bad.actual.as_ref().expect("script ran"),
        &HealthStatus::new(
            HealthStatusCode::Degraded,
            "model ranker-v4 failed to load: CUDA out of memory"
        )
    );
    // The wildcard folder served three different groups and kinds.
    assert_eq!(
        report
            .cases
            .iter()
            .filter(|c| c.script_dir == Path::new("_.crossplane.io/_") && c.passed)
            .count(),
        3,
        "{text}"
    );
    assert!(text.contains("9 passed, 1 failed"), "{text}");
    assert!(
        text.contains(
            "FAIL ml.example.com/ModelDeployment/testdata/deliberately_wrong_expectation.yaml"
        ),
        "{text}"
    );
    assert!(!report.all_passed());
}

#[test]
fn health_test_files_are_decoded_as_argo_cd_decodes_them() {
    let report = run_health_tests(&StdFiles, &fixtures().join("go-decoding")).expect("tree runs");
    let text = report.to_string();
    let verdict = |dir: &str, input: &str| -> Vec<bool> {
        report
            .cases
            .iter()
            .filter(|c| c.script_dir == Path::new(dir) && c.input == input)
            .map(|c| c.passed)
            .collect()
    };
    // Lower-case `inputpath`, Go-cased `HealthStatus`/`Status`, a trailing `---` document
    // and repeated keys: every Widget case runs and passes as in Argo CD.
    assert_eq!(
        verdict("example.com/Widget", "testdata/ready.yaml"),
        [true, true],
        "{text}"
    );
    assert_eq!(
        verdict("example.com/Widget", "testdata/trailing-document.yaml"),
        [true],
        "{text}"
    );
    assert_eq!(
        verdict("example.com/Widget", "testdata/duplicate-key.yaml"),
        [true],
        "{text}"
    );
    // The unreadable test file fails its folder, alone.
    let broken: Vec<_> = report
        .cases
        .iter()
        .filter(|c| c.script_dir == Path::new("example.com/Broken"))
        .collect();
    assert_eq!(broken.len(), 1, "{text}");
    assert_eq!(broken[0].input, "health_test.yaml");
    assert!(!broken[0].passed && broken[0].expected.is_none());
    let why = broken[0].actual.as_ref().expect_err("not run");
    assert!(
        why.contains("example.com/Broken/health_test.yaml") && why.contains("invalid YAML"),
        "{why}"
    );
    assert!(text.contains("4 passed, 1 failed"), "{text}");
    // Each repeated key is a warning naming the file and the key.
    let warnings = report.warnings.join("\n");
    assert!(
        report.warnings.iter().any(|w| w
            .contains("example.com/Widget/testdata/duplicate-key.yaml")
            && w.contains("\"ready\" at line 7")
            && w.contains("last value")),
        "{warnings}"
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("example.com/Widget/health_test.yaml")
                && w.contains("\"status\" at line 18")),
        "{warnings}"
    );
    assert_eq!(report.warnings.len(), 2, "{warnings}");
}

#[test]
fn health_harness_fails_bad_entries_one_by_one() {
    let dir = scratch_dir("bad-entries");
    let kind_dir = dir.join("example.com/Thing");
    std::fs::create_dir_all(kind_dir.join("testdata")).expect("mkdir");
    std::fs::write(kind_dir.join("health.lua"), "return {status = 'Healthy'}").expect("write");
    std::fs::write(
        kind_dir.join("testdata/a.yaml"),
        "apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: a}\n",
    )
    .expect("write");
    std::fs::write(kind_dir.join("testdata/list.yaml"), "- a\n- b\n").expect("write");
    std::fs::write(
        kind_dir.join("health_test.yaml"),
        "tests:\n- healthStatus: {status: Healthy}\n- healthStatus: {status: Fine}\n  inputPath: testdata/a.yaml\n- healthStatus: {status: Healthy}\n  inputPath: testdata/list.yaml\n- healthStatus: {status: Healthy}\n  inputPath: testdata/a.yaml\n  note: extra\n",
    )
    .expect("write");
    // A folder without its health_test.yaml fails on its own.
    std::fs::create_dir_all(dir.join("example.com/Other")).expect("mkdir");
    std::fs::write(
        dir.join("example.com/Other/health.lua"),
        "return {status = 'Healthy'}",
    )
    .expect("write");
    let report = run_health_tests(&StdFiles, &dir).expect("runs");
    let outcome: Vec<(bool, String)> = report
        .cases
        .iter()
        .map(|c| (c.passed, c.actual.clone().err().unwrap_or_default()))
        .collect();
    assert_eq!(outcome.len(), 5, "{report}");
    assert!(
        outcome[0].1.contains("health_test.yaml: missing"),
        "{outcome:?}"
    );
    assert!(outcome[1].1.contains("inputPath is missing"), "{outcome:?}");
    assert!(
        outcome[2].1.contains("\"Fine\" is not a health status"),
        "{outcome:?}"
    );
    assert!(
        outcome[3].1.contains("a list, not an object"),
        "{outcome:?}"
    );
    assert!(outcome[4].0, "{outcome:?}");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("tests[3].note is not a field Argo CD reads")),
        "{:?}",
        report.warnings
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn health_harness_requires_exact_message_like_argo_cd() {
    // Argo CD compares the whole HealthStatus: an omitted message expects "".
    let dir = scratch_dir("exact-message");
    let kind_dir = dir.join("example.com/Thing");
    std::fs::create_dir_all(kind_dir.join("testdata")).expect("mkdir");
    std::fs::write(
        kind_dir.join("health.lua"),
        "return {status = 'Healthy', message = 'all good'}",
    )
    .expect("write");
    std::fs::write(
        kind_dir.join("health_test.yaml"),
        "tests:\n- healthStatus: {status: Healthy}\n  inputPath: testdata/a.yaml\n- healthStatus: {status: Healthy, message: all good}\n  inputPath: testdata/a.yaml\n- healthStatus: {status: Healthy}\n  inputPath: ../../../../etc/passwd\n",
    )
    .expect("write");
    std::fs::write(
        kind_dir.join("testdata/a.yaml"),
        "apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: a}\n",
    )
    .expect("write");
    let report = run_health_tests(&StdFiles, &dir).expect("runs");
    let verdicts: Vec<bool> = report.cases.iter().map(|c| c.passed).collect();
    assert_eq!(verdicts, [false, true, false], "{report}");
    let escape = report.cases[2].actual.as_ref().expect_err("refused");
    assert!(escape.contains("leaves the script folder"), "{escape}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn health_custom_lua_overrides_builtin_and_wildcards_apply() {
    let checks =
        LuaHealthChecks::load_dir(&StdFiles, &fixtures().join("customizations")).expect("loads");
    assert_eq!(checks.len(), 3);
    let bucket = json!({
        "apiVersion": "s3.aws.crossplane.io/v1beta1", "kind": "Bucket", "metadata": {"name": "b"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    });
    assert_eq!(
        assess(&bucket, Some(&checks)),
        Some(HealthStatus::new(
            HealthStatusCode::Healthy,
            "Resource is available for use"
        ))
    );

    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "generation": 1},
        "spec": {"replicas": 1}, "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
    });
    assert_eq!(
        assess(&deployment, Some(&checks)).map(|h| h.status),
        Some(HealthStatusCode::Healthy)
    );
    let mut overridden = checks.clone();
    overridden.extend(LuaHealthChecks::from_scripts([(
        "apps",
        "Deployment",
        "return {status = 'Suspended', message = 'custom says ' .. obj.metadata.name}",
    )]));
    assert_eq!(
        assess(&deployment, Some(&overridden)),
        Some(HealthStatus::new(
            HealthStatusCode::Suspended,
            "custom says web"
        ))
    );
    // A custom check also gives health to a kind that has none built in.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"ready": "no"}});
    assert_eq!(assess(&cm, Some(&checks)), None);
    let core = LuaHealthChecks::from_scripts([(
        "",
        "ConfigMap",
        "if obj.data.ready == 'yes' then return {status='Healthy'} end return {status='Progressing', message='not ready'}",
    )]);
    assert_eq!(
        assess(&cm, Some(&core)),
        Some(HealthStatus::new(
            HealthStatusCode::Progressing,
            "not ready"
        ))
    );
}

#[test]
fn health_lua_environment_matches_argo_cd_scripts() {
    let obj = json!({"items": [1, 2, 3], "nested": {"name": "x"}, "gone": null});
    let limits = LuaLimits::default();
    let run = |s: &str| run_lua(s, &obj, &limits);
    assert_eq!(
        run("return {status = 'Healthy', message = tostring(table.getn(obj.items)) .. obj.nested.name .. tostring(obj.gone)}")
            .expect("runs"),
        HealthStatus::new(HealthStatusCode::Healthy, "3xnil")
    );
    assert_eq!(
        run("for i = 1, 3 do if i == 2 then goto done end end ::done:: return {status='Healthy', message=obj.items[1] .. ''}")
            .expect("goto works")
            .message,
        "1"
    );
    assert_eq!(
        run("local os = require('os'); local s = string.format('%d', os.time()); return {status = 'Healthy', message = string.sub(s, 1, 0)}")
            .expect("require('os') gives the safe os"),
        HealthStatus::new(HealthStatusCode::Healthy, "")
    );
    // Argo CD health checks rely on pcall for defensive parsing; it still works.
    assert_eq!(
        run("local ok = pcall(function() error('boom') end) return {status = ok and 'Degraded' or 'Healthy'}")
            .expect("pcall works")
            .status,
        HealthStatusCode::Healthy
    );
}

fn expect_lua_error(script: &str, contains: &str) -> HealthError {
    let err = run_lua(script, &json!({}), &LuaLimits::default()).expect_err(script);
    assert!(err.to_string().contains(contains), "{script}: {err}");
    err
}

#[test]
fn health_lua_rejects_bad_results() {
    let e = expect_lua_error("return {status = 'Fine'}", "invalid health status \"Fine\"");
    assert!(matches!(e, HealthError::InvalidStatus { .. }));
    let e = expect_lua_error("return 'Healthy'", "returned string");
    assert!(matches!(e, HealthError::BadReturn { .. }));
    expect_lua_error("local x = 1", "returned nil");
    expect_lua_error(
        "return {message = 'no status'}",
        "invalid health status \"\"",
    );
}

#[test]
fn health_lua_hostile_infinite_loop_stops_within_the_time_limit() {
    let limits = LuaLimits {
        timeout: Duration::from_millis(300),
        ..LuaLimits::default()
    };
    for script in [
        "while true do end",
        "local i = 0 while true do i = i + 1 end",
        // The time-limit error cannot be swallowed by pcall/xpcall.
        "while true do pcall(function() while true do end end) end",
        "while true do xpcall(function() while true do end end, function(e) return e end) end",
        "local function f() return f() end return f()",
    ] {
        let start = Instant::now();
        let err = run_lua(script, &json!({}), &limits).expect_err(script);
        let took = start.elapsed();
        assert!(
            matches!(err, HealthError::Timeout { .. }),
            "{script}: {err}"
        );
        assert!(took < Duration::from_secs(2), "{script} took {took:?}");
    }
    // With the default 1 s limit, `while true do end` ends in about a second.
    let start = Instant::now();
    let err = run_lua("while true do end", &json!({}), &LuaLimits::default()).expect_err("loops");
    assert!(err.to_string().contains("exceeded its time limit"), "{err}");
    assert!(
        start.elapsed() < Duration::from_millis(1_900),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn health_lua_hostile_runaway_memory_is_stopped() {
    // The brief's script: LuaJIT interns strings, so every `string.rep` returns the same
    // 1 MB string and only the table grows; it is stopped by whichever limit comes first.
    let start = Instant::now();
    let err = run_lua(
        r#"local t = {} while true do t[#t+1] = string.rep("x", 1e6) end"#,
        &json!({}),
        &LuaLimits::default(),
    )
    .expect_err("stopped");
    assert!(
        matches!(
            err,
            HealthError::Memory { .. } | HealthError::Timeout { .. }
        ),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    // Distinct strings really grow: the memory limit stops it long before the deadline.
    let start = Instant::now();
    let err = run_lua(
        r#"local t = {} local i = 0 while true do i = i + 1 t[#t+1] = string.rep("x", 1e6) .. i end"#,
        &json!({}),
        &LuaLimits::default(),
    )
    .expect_err("memory runs out");
    assert!(matches!(err, HealthError::Memory { .. }), "{err}");
    assert!(err.to_string().contains("memory limit"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(1));
    // pcall cannot hide it either: allocations keep failing until the deadline.
    let err = run_lua(
        r#"local t = {} local i = 0 while true do pcall(function() i = i + 1 t[#t+1] = string.rep("y", 1e6) .. i end) end"#,
        &json!({}),
        &LuaLimits { timeout: Duration::from_millis(300), ..LuaLimits::default() },
    )
    .expect_err("stopped");
    assert!(
        matches!(
            err,
            HealthError::Memory { .. } | HealthError::Timeout { .. }
        ),
        "{err}"
    );
    // One huge `string.rep` is refused before it runs.
    let err = run_lua(
        r#"local s = string.rep("x", 2^30) return {status='Healthy'}"#,
        &json!({}),
        &LuaLimits::default(),
    )
    .expect_err("too big");
    assert!(
        err.to_string()
            .contains("string.rep: a result of 1073741824 bytes is over the"),
        "{err}"
    );
}

#[test]
fn health_lua_hostile_pathological_patterns_are_refused() {
    for (script, function) in [
        (
            r#"return {status = string.find(string.rep("a", 100000), ".-.-.-.-b") and "Healthy" or "Degraded"}"#,
            "find",
        ),
        (
            r#"return {status = string.match(string.rep("a", 100000), "(.*)(.*)(.*)b") or "Healthy"}"#,
            "match",
        ),
        (
            r#"for w in string.gmatch(string.rep("a", 100000), "a*a*a*b") do end return {status = "Healthy"}"#,
            "gmatch",
        ),
        (
            r#"return {status = (string.gsub(string.rep("a", 100000), ".-.-x", "")) and "Healthy"}"#,
            "gsub",
        ),
        (
            r#"local s = string.rep("a", 100000) return {status = s:find(".-.-.-.-b") and "Healthy" or "Degraded"}"#,
            "find",
        ),
        (r#"return {status = string.rep("ab", 1e12, ",")}"#, "rep"),
    ] {
        let start = Instant::now();
        let err = run_lua(script, &json!({}), &LuaLimits::default()).expect_err(script);
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("string.{function}:")),
            "{script}: {msg}"
        );
        assert!(
            msg.contains("<inline>:1"),
            "the message points at the script: {msg}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{script}: {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn health_lua_hostile_slow_library_calls_end_at_the_limit() {
    // Each call is allowed (its worst case is under the work limit) but slow, and a loop
    // of them runs few VM instructions: the deadline is still met, by the check before each
    // bounded call and, were a call stuck, by abandoning the evaluation thread.
    let script = r#"local s = string.rep("a", 15000)
        for i = 1, 1000 do string.find(s, ".-b") end
        return {status = "Healthy"}"#;
    let start = Instant::now();
    let err = run_lua(script, &json!({}), &LuaLimits::default()).expect_err("stopped");
    assert!(matches!(err, HealthError::Timeout { .. }), "{err}");
    assert!(
        err.to_string().contains("exceeded its time limit of 1s"),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn health_lua_bounded_string_functions_keep_lua_semantics() {
    let run = |s: &str| {
        run_lua(
            s,
            &json!({"msg": "3/4 replicas ready"}),
            &LuaLimits::default(),
        )
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .message
    };
    assert_eq!(
        run(
            r#"local a, b = string.match(obj.msg, "^(%d+)/(%d+)") return {status="Healthy", message=a .. "|" .. b}"#
        ),
        "3|4"
    );
    assert_eq!(
        run(
            r#"local i, j = obj.msg:find("replicas", 1, true) return {status="Healthy", message=i .. "," .. j}"#
        ),
        "5,12"
    );
    assert_eq!(
        run(
            r#"local t = {} for w in string.gmatch(obj.msg, "%a+") do t[#t+1] = w end return {status="Healthy", message=table.concat(t, ",")}"#
        ),
        "replicas,ready"
    );
    assert_eq!(
        run(
            r##"local s, n = string.gsub(obj.msg, "%d", "#") return {status="Healthy", message=s .. n}"##
        ),
        "#/# replicas ready2"
    );
    assert_eq!(
        run(r#"return {status="Healthy", message=string.rep("ab", 3, "-") .. ("x"):rep(2)}"#),
        "ab-ab-abxx"
    );
    assert_eq!(
        run(
            r#"return {status="Healthy", message=tostring(string.find("a[b]%c", "[%]]")) .. string.gsub("x", "%bxy", "")}"#
        ),
        "4x"
    );
    // An anchored pattern with two quantifiers runs on a long subject.
    assert_eq!(
        run(
            r#"local a, b = string.match(string.rep("1", 10000) .. "/2", "^(%d+)/(%d+)$") return {status="Healthy", message=#a .. "|" .. b}"#
        ),
        "10000|2"
    );
}

#[test]
fn health_lua_hostile_sandbox_escapes_fail() {
    expect_lua_error(
        "os.execute('touch /tmp/mooring-pwned') return {status='Healthy'}",
        "execute",
    );
    expect_lua_error(
        "local f = io.open('/etc/passwd') return {status='Healthy'}",
        "io",
    );
    expect_lua_error("require('io')", "not available to health scripts");
    expect_lua_error("dofile('/etc/passwd')", "dofile");
    expect_lua_error("loadfile('/etc/passwd')", "loadfile");
    expect_lua_error("loadstring('return 1')()", "loadstring");
    expect_lua_error("return {status = os.getenv('HOME')}", "getenv");
    expect_lua_error("debug.sethook()", "debug");
    expect_lua_error("jit.on()", "jit");
    expect_lua_error("require('ffi')", "not available");
    assert!(!Path::new("/tmp/mooring-pwned").exists());
}

#[test]
fn health_lua_syntax_error_names_the_script() {
    let checks = LuaHealthChecks::from_scripts([("example.com", "Broken", "if then return end")]);
    let obj = json!({"apiVersion": "example.com/v1", "kind": "Broken", "metadata": {"name": "b"}});
    let hs = assess(&obj, Some(&checks)).expect("custom check applies");
    assert_eq!(hs.status, HealthStatusCode::Unknown);
    assert!(
        hs.message
            .contains("resource.customizations.health.example.com_Broken")
            && hs.message.contains("syntax error"),
        "{}",
        hs.message
    );
    let script = checks.lookup("example.com", "Broken").expect("found");
    let err = script.run(&obj, &LuaLimits::default()).expect_err("syntax");
    assert!(matches!(err, HealthError::Lua { .. }), "{err}");

    // From a directory tree the message names the file.
    let dir = scratch_dir("syntax");
    std::fs::create_dir_all(dir.join("example.com/Broken")).expect("mkdir");
    std::fs::write(
        dir.join("example.com/Broken/health.lua"),
        "return {status = ",
    )
    .expect("write");
    let checks = LuaHealthChecks::load_dir(&StdFiles, &dir).expect("loads");
    let hs = assess(&obj, Some(&checks)).expect("applies");
    assert!(
        hs.message.contains("example.com/Broken/health.lua"),
        "{}",
        hs.message
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[cfg(unix)]
#[test]
fn health_load_dir_ignores_symlinks_leaving_the_tree() {
    let outside = scratch_dir("outside");
    std::fs::create_dir_all(outside.join("Secret")).expect("mkdir");
    std::fs::write(
        outside.join("Secret/health.lua"),
        "return {status='Healthy'}",
    )
    .expect("write");
    let dir = scratch_dir("symlinks");
    std::fs::create_dir_all(dir.join("example.com")).expect("mkdir");
    std::os::unix::fs::symlink(outside.join("Secret"), dir.join("example.com/Secret"))
        .expect("symlink");
    std::os::unix::fs::symlink(outside.join("Secret"), dir.join("Secret")).expect("symlink");
    let checks = LuaHealthChecks::load_dir(&StdFiles, &dir).expect("loads");
    assert!(
        checks.is_empty(),
        "{:?}",
        checks.scripts().collect::<Vec<_>>()
    );
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&outside).ok();
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mooring-health-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The health tree is read only through the injected `Files` reader: an in-memory tree
/// loads, runs its `health_test.yaml` cases, and refuses symlinks, with no disk involved.
#[test]
fn health_tree_reads_through_an_injected_reader() {
    use mooring_core::files::MemFiles;
    let thing = "mem/example.com/Thing";
    let files = MemFiles::new()
        .with_file(
            format!("{thing}/health.lua"),
            "return {status = 'Healthy', message = 'all good'}",
        )
        .with_file(
            format!("{thing}/health_test.yaml"),
            "tests:\n- healthStatus: {status: Healthy, message: all good}\n  inputPath: testdata/a.yaml\n- healthStatus: {status: Healthy, message: all good}\n  inputPath: testdata/link.yaml\n",
        )
        .with_file(
            format!("{thing}/testdata/a.yaml"),
            "apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: a}\n",
        )
        .with_symlink(format!("{thing}/testdata/link.yaml"))
        // A symlinked script folder is never loaded.
        .with_symlink("mem/example.com/Linked")
        .with_file("mem/ConfigMap/health.lua", "return {status = 'Degraded'}")
        .with_file("mem/ConfigMap/health_test.yaml", "tests: []\n");
    let dir = Path::new("mem");

    let checks = LuaHealthChecks::load_dir(&files, dir).expect("loads");
    let keys: Vec<String> = checks.scripts().map(|s| s.key()).collect();
    assert_eq!(keys, ["ConfigMap", "example.com/Thing"]);

    let report = run_health_tests(&files, dir).expect("runs");
    let verdicts: Vec<bool> = report.cases.iter().map(|c| c.passed).collect();
    assert_eq!(verdicts, [true, false], "{report}");
    let link = report.cases[1].actual.as_ref().expect_err("refused");
    assert!(link.contains("goes through a symlink"), "{link}");
    assert!(
        report.warnings.iter().any(|w| w.contains("no tests")),
        "{:?}",
        report.warnings
    );

    // A missing tree is an error naming the path.
    let err = LuaHealthChecks::load_dir(&files, Path::new("nowhere")).expect_err("missing");
    assert!(err.to_string().contains("nowhere"), "{err}");
}
