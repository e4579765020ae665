//! `mooring policy test|test-rego|verify`: policy as code at CI time.
//!
//! The flags follow conftest (`test`) and `opa test` (`test-rego`) so existing CI jobs
//! change only the binary name. This module reads files and directories and prints; the
//! evaluation lives in `mooring_policy`.
//!
//! Exit codes: 0 everything passed, 1 failures (or warnings with `--fail-on-warn`), 2 an
//! error (unreadable or malformed input, a policy that does not compile, a time limit).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use mooring_policy::conftest::{self, Conftest, Parser};
use mooring_policy::regotest::{self, TestOptions};
use mooring_policy::report::{self, Format, Report};
use mooring_policy::{gator, Limits, RegoSource};

#[derive(clap::Subcommand)]
pub enum PolicyCommand {
    /// Test configuration files against conftest policies (`deny`, `violation`, `warn`).
    Test(TestArgs),
    /// Run the Rego unit tests (`test_` rules) under DIRs, like `opa test`.
    TestRego(TestRegoArgs),
    /// Run gator suites (YAML files of `kind: Suite`) and Rego unit tests (`*_test.rego`)
    /// found under PATHs.
    Verify(VerifyArgs),
}

/// `-o/--output` of `policy test` and `check`: one of [`Format::ALL`] (conftest's
/// `stdout` is accepted for `table`).
pub(crate) fn format_parser() -> impl clap::builder::TypedValueParser<Value = Format> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(Format::ALL.map(|f| {
        let value = PossibleValue::new(f.name());
        if f == Format::Table {
            value.alias("stdout")
        } else {
            value
        }
    }))
    .try_map(|name| name.parse::<Format>())
}

/// Output formats of `policy test-rego`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum TestOutput {
    Table,
    Json,
}

#[derive(clap::Args)]
pub struct TestArgs {
    /// Files or directories to test (`-` reads standard input, parsed as YAML unless
    /// --parser says otherwise).
    #[arg(required = true)]
    files: Vec<String>,
    /// Directories (or files) of .rego policies.
    #[arg(short, long = "policy", default_value = "policy")]
    policy: Vec<PathBuf>,
    /// Namespaces (packages) whose rules run.
    #[arg(short, long = "namespace", default_value = "main")]
    namespace: Vec<String>,
    /// Run the rules of every namespace.
    #[arg(long)]
    all_namespaces: bool,
    /// Directories (or files) of JSON/YAML data documents, merged into `data`.
    #[arg(short, long = "data")]
    data: Vec<PathBuf>,
    /// Evaluate all inputs together as one array of `{path, contents}`.
    #[arg(long)]
    combine: bool,
    /// Parse every input with this parser (yaml, json, hcl2, dockerfile, toml, dotenv).
    #[arg(long)]
    parser: Option<String>,
    /// Output format: table, json, tap, junit, github, sarif.
    #[arg(short, long, value_parser = format_parser(), default_value = "table")]
    output: Format,
    /// Exit 1 on warnings too.
    #[arg(long)]
    fail_on_warn: bool,
    /// Time budget of one evaluation, in seconds.
    #[arg(long, default_value_t = 2.0)]
    eval_timeout: f64,
}

#[derive(clap::Args)]
pub struct TestRegoArgs {
    /// Directories (or files) of .rego policies and their tests.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Only run tests whose name (`data.pkg.test_x`) matches this regular expression.
    #[arg(short, long)]
    run: Option<String>,
    /// Report line coverage per file and overall.
    #[arg(long)]
    coverage: bool,
    /// Directories (or files) of JSON/YAML data documents, merged into `data`.
    #[arg(short, long = "data")]
    data: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: TestOutput,
    /// List every test, not only failures.
    #[arg(short, long)]
    verbose: bool,
    /// Time budget of one test, in seconds.
    #[arg(long, default_value_t = 2.0)]
    eval_timeout: f64,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Directories or files: gator suites (`kind: Suite`) and `*_test.rego` Rego tests.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// List every Rego test, not only failures.
    #[arg(short, long)]
    verbose: bool,
    /// Time budget of one evaluation, in seconds.
    #[arg(long, default_value_t = 2.0)]
    eval_timeout: f64,
}

pub async fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Test(args) => test(args),
        PolicyCommand::TestRego(args) => test_rego(args),
        PolicyCommand::Verify(args) => verify(args),
    }
}

fn limits(eval_timeout: f64) -> anyhow::Result<Limits> {
    if !(eval_timeout.is_finite() && eval_timeout > 0.0 && eval_timeout <= 3600.0) {
        bail!("--eval-timeout must be between 0 and 3600 seconds, not {eval_timeout}");
    }
    Ok(Limits {
        eval_timeout: Duration::from_secs_f64(eval_timeout),
        ..Limits::default()
    })
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let limits = limits(args.eval_timeout)?;
    let parser = args
        .parser
        .as_deref()
        .map(str::parse::<Parser>)
        .transpose()?;
    let policies = read_rego(&args.policy)?;
    if policies.is_empty() {
        bail!(
            "no policies found: no .rego files in {}",
            display_paths(&args.policy)
        );
    }
    let data = read_data(&args.data)?;
    let engine = Conftest::load(&policies, &data, limits).context("loading the policies")?;

    let mut inputs = Vec::new();
    for file in &args.files {
        if file == "-" {
            let mut text = String::new();
            std::io::stdin()
                .take(conftest::MAX_INPUT_BYTES as u64 + 1)
                .read_to_string(&mut text)
                .context("reading standard input (is it UTF-8 text?)")?;
            inputs.push(conftest::parse_input(
                "-",
                &text,
                Some(parser.unwrap_or(Parser::Yaml)),
            )?);
            continue;
        }
        let path = Path::new(file);
        let files = if path.is_dir() {
            // Inside a directory, only files a parser knows (unless --parser is given).
            walk(path)?
                .into_iter()
                .filter(|p| parser.is_some() || Parser::for_path(&p.to_string_lossy()).is_some())
                .collect()
        } else {
            vec![path.to_path_buf()]
        };
        for f in files {
            let name = f.display().to_string();
            let text = read_text(&f, conftest::MAX_INPUT_BYTES)?;
            inputs.push(conftest::parse_input(&name, &text, parser)?);
        }
    }
    let options = conftest::Options {
        namespaces: args.namespace,
        all_namespaces: args.all_namespaces,
        combine: args.combine,
        base_dir: std::env::current_dir()
            .ok()
            .map(|d| d.display().to_string()),
    };
    let report = engine.test(&inputs, &options)?;
    print!("{}", report::render(&report, args.output));
    let warned = args.fail_on_warn && report.totals().warnings > 0;
    Ok(exit(report.has_failures() || warned))
}

fn test_rego(args: TestRegoArgs) -> anyhow::Result<ExitCode> {
    let options = TestOptions {
        run: args.run,
        coverage: args.coverage,
        limits: limits(args.eval_timeout)?,
    };
    let sources = read_rego(&args.paths)?;
    if sources.is_empty() {
        bail!("no .rego files in {}", display_paths(&args.paths));
    }
    let data = read_data(&args.data)?;
    let filtered = options.run.is_some();
    let run = regotest::run_tests(&sources, &data, &options)?;
    if run.results.is_empty() && !filtered {
        bail!(
            "no tests found: no test_ rules in the .rego files of {}",
            display_paths(&args.paths)
        );
    }
    match args.output {
        TestOutput::Table => print!("{}", run.render_text(args.verbose)),
        TestOutput::Json => println!("{}", serde_json::to_string_pretty(&run.to_json())?),
    }
    Ok(exit(!run.ok()))
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let limits = limits(args.eval_timeout)?;
    let mut suites = Vec::new();
    let mut rego_roots = Vec::new();
    for path in &args.paths {
        let files = if path.is_dir() {
            walk(path)?
        } else if path.exists() {
            vec![path.clone()]
        } else {
            bail!("{}: no such file or directory", path.display());
        };
        let mut has_tests = false;
        for f in files {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
            match name.as_deref() {
                Some(n) if n.ends_with("_test.rego") => has_tests = true,
                Some(n) if (n.ends_with(".yaml") || n.ends_with(".yml")) && is_suite(&f) => {
                    suites.push(f)
                }
                _ => {}
            }
        }
        if has_tests {
            rego_roots.push(path.clone());
        }
    }
    if suites.is_empty() && rego_roots.is_empty() {
        bail!(
            "no gator suites (kind: Suite) or Rego tests (*_test.rego) in {}",
            display_paths(&args.paths)
        );
    }
    let mut failed = false;
    if !suites.is_empty() {
        let report = verify_suites(&suites, limits);
        print!("{}", report::render(&report, Format::Table));
        failed |= report.has_failures();
    }
    if !rego_roots.is_empty() {
        // Tests are compiled with every policy beside them, as `opa test DIR` does.
        let sources = read_rego(&rego_roots)?;
        let run = regotest::run_tests(
            &sources,
            &[],
            &TestOptions {
                limits,
                ..TestOptions::default()
            },
        )?;
        print!("{}", run.render_text(args.verbose));
        failed |= !run.ok();
    }
    Ok(exit(failed))
}

/// Whether a YAML file is a gator `Suite` (gator finds suites by kind, whatever the file
/// is called; see [`gator::is_suite`]).
fn is_suite(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| gator::is_suite(&text))
}

/// Runs gator `Suite` files (paths in a suite are relative to its directory). A suite file
/// that cannot be used fails on its own and the others still run.
fn verify_suites(paths: &[PathBuf], limits: Limits) -> Report {
    let mut report = Report::default();
    for path in paths {
        let text = read_text(path, conftest::MAX_INPUT_BYTES).map_err(|e| format!("{e:#}"));
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let suite = gator::suite_report(
            &path.display().to_string(),
            text,
            &mut |p| std::fs::read_to_string(dir.join(p)),
            limits,
        );
        report.subjects.extend(suite.subjects);
    }
    report
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Files under `root` (or `root` itself), sorted; symlinked directories are not followed
/// and hidden directories (`.git`) are skipped.
fn walk(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let meta = std::fs::metadata(root).with_context(|| format!("{}", root.display()))?;
    if !meta.is_dir() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .with_context(|| format!("{}", path.display()))?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if kind.is_dir() {
                if !hidden {
                    stack.push(path);
                }
            } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a text file of at most `limit` bytes.
fn read_text(path: &Path, limit: usize) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if meta.len() > limit as u64 {
        bail!(
            "{}: file is {} bytes, over the {limit}-byte limit",
            path.display(),
            meta.len()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text (a binary file?)", path.display()))
}

/// Every `.rego` file under `paths`.
fn read_rego(paths: &[PathBuf]) -> anyhow::Result<Vec<RegoSource>> {
    let mut sources = Vec::new();
    for root in paths {
        if !root.exists() {
            bail!("{}: no such file or directory", root.display());
        }
        for f in walk(root)? {
            if f.extension().is_some_and(|e| e == "rego") {
                let text = read_text(&f, Limits::default().max_policy_bytes)?;
                sources.push(RegoSource::new(f.display().to_string(), text));
            }
        }
    }
    Ok(sources)
}

/// Every JSON/YAML data document under `paths`.
fn read_data(paths: &[PathBuf]) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut docs = Vec::new();
    for root in paths {
        if !root.exists() {
            bail!("{}: no such file or directory", root.display());
        }
        for f in walk(root)? {
            let ext = f
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase());
            if matches!(ext.as_deref(), Some("json" | "yaml" | "yml")) {
                let text = read_text(&f, conftest::MAX_INPUT_BYTES)?;
                docs.push(conftest::parse_data(&f.display().to_string(), &text)?);
            }
        }
    }
    Ok(docs)
}
