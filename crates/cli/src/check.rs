//! `mooring check [REPO]`: the CI compliance run of a platform repository in one command.
//!
//! The pipeline is the `mooring_check` library (its docs say what runs); this module
//! parses the arguments, prints the report in the format asked for and sets the exit code:
//! 0 when nothing failed, 1 when a finding is a failure (warnings do not fail), 2 when the
//! run itself cannot proceed (REPO missing, an invalid `.mooring/check.yaml`, an unknown
//! lint id).

use mooring_check::CheckOptions;
use mooring_policy::report::{self, Format, Severity};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The platform repository to check.
    #[arg(default_value = ".")]
    pub repo: PathBuf,
    /// Output format: table, json, tap, junit, github, sarif.
    #[arg(short = 'o', long, value_parser = crate::policy::format_parser(), default_value = "table")]
    pub output: Format,
    /// Turn a built-in lint off (repeatable); ids: container-resources, image-latest-tag,
    /// readiness-probe, run-as-non-root, privileged-container, gpu-limits,
    /// host-namespaces, host-path.
    ///
    /// REPO/.mooring/check.yaml can also hold
    /// `lints: {disable: [ID, …]}`, and an object the annotation
    /// `mooring.dev/ignore-lints: ID,ID` (or kube-score's `kube-score/ignore`).
    #[arg(long = "disable-lint", value_name = "ID")]
    pub disable_lint: Vec<String>,
    /// Check only these environments (repeatable; default: all).
    #[arg(long = "environment", value_name = "ENV")]
    pub environment: Vec<String>,
    /// The control-plane namespace the repository's Applications and AppProjects are
    /// applied to (AppProjects elsewhere are never read).
    #[arg(long, env = "MOORING_NAMESPACE", default_value = mooring_core::app::CONTROL_PLANE_NAMESPACE)]
    pub namespace: String,
    /// Other namespaces the controller reads Applications from (`--application-namespaces`
    /// of `mooring up` / the controller): comma-separated globs or `/regex/`.
    #[arg(long, value_delimiter = ',')]
    pub application_namespaces: Vec<String>,
}

pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let options = CheckOptions {
        repo: args.repo,
        disable_lint: args.disable_lint,
        environments: args.environment,
        control_plane: mooring_engine::project::ControlPlane {
            namespace: args.namespace,
            application_namespaces: args.application_namespaces,
        },
    };
    let report = mooring_check::run(&options).await?;
    let out = report::render(&report, args.output);
    std::io::stdout().write_all(out.as_bytes())?;
    let failures = report
        .findings()
        .filter(|f| f.severity == Severity::Failure)
        .count();
    let warnings = report
        .findings()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    eprintln!(
        "check: {failures} failure(s), {warnings} warning(s) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(if report.has_failures() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
