//! `mooring check [REPO]`: the CI compliance run of a platform repository in one command.
//!
//! # What runs
//!
//! 1. **Discovery.** Every YAML file of REPO (hidden directories such as `.git` and
//!    `.mooring`, and Helm charts' `templates/`, are skipped) is parsed; every Argo CD
//!    `Application` in it is a unit to render. A file that fails to parse but looks like a
//!    manifest (it mentions `apiVersion:`, `kind:` and `metadata:`) is a `yaml` finding
//!    naming the file and the parser's position; other unparsable YAML (CI configs) is
//!    ignored, as Argo CD does.
//! 0. **Export.** Everything below reads a link-checked copy of REPO made with
//!    [`mooring_source::export_dir`] (the rules of the controller's export of a commit),
//!    never REPO itself: a symbolic link that leaves REPO (or dangles, or loops) is not
//!    copied and is a `repository/link-refused` failure naming the link, an Application
//!    whose source path is such a link is a `render/error`, and links inside REPO are
//!    copies of their targets. So Helm (`.Files.Get`, templates), kustomize and every
//!    stage only ever see files of the repository, and nothing outside it reaches the
//!    report. `.git` and `.mooring` are not copied (the configuration below is read from
//!    REPO).
//! 2. **Rendering.** An Application is rendered from the working tree when its
//!    `source.path` is a directory of REPO: its `repoURL` usually names the remote of this
//!    very repository (`https://git.example.com/ml-platform/platform.git`), which `check`
//!    does not fetch. Sources elsewhere (a Helm repository chart, a path not in REPO) are
//!    reported as a `render/external-source` warning. Rendering uses the render crate
//!    exactly as the controller does (kustomize via the real binary, Helm where `helm`
//!    exists, Argo CD's defaulting of the Helm release name to the Application's name).
//!    Applications among the rendered objects (an app-of-apps) are rendered too. Each
//!    `overlays/<env>` directory with a kustomization that no Application renders is
//!    rendered on its own, so an environment nobody deployed yet is still checked.
//!    Multi-source Applications render each source that has a path. Namespaced objects
//!    rendered without a namespace get the Application's destination namespace, as Argo
//!    CD applies them.
//!    A render error is a `render` finding of that Application, never a crash.
//!    Every Application and ApplicationSet written in REPO, and every Application,
//!    ApplicationSet and Rollout rendered, is checked for fields Mooring does not act on
//!    ([`unsupported_findings`]): `application/unsupported-field` warnings (what the
//!    controller reports as `UnsupportedFieldWarning`), `*/unknown-field` failures for
//!    fields Argo CD does not define, `rollout/unsupported-field` failures; and every
//!    rendered object's `argocd.argoproj.io/sync-options` annotation
//!    (`sync-option/unsupported` warnings).
//! 3. **Per object**: schema validation (`engine::schema`: built-in kinds from k8s-openapi,
//!    CRDs from the `openAPIV3Schema` of every CRD rendered or written in REPO, Gatekeeper
//!    constraints from their ConstraintTemplates; kinds with
//!    no schema are one `schema/skipped` warning per kind and Application) and the
//!    built-in lints (`engine::lint`), and the AppProject rules the controller enforces
//!    before a sync ([`project_rules`]: source repository, destination, each object's
//!    kind and namespace; `project/*` findings), with the projects written or rendered in
//!    REPO.
//! 4. **Policies**: [`policy_stage`] (Gatekeeper templates and constraints, conftest
//!    policies, gator suites and Rego unit tests found in REPO).
//! 5. **Terraform**: for every directory with `*.tf` files, `terraform fmt -check -diff`
//!    and `terraform init -backend=false` + `terraform validate -json`, when `terraform` is
//!    on PATH. `init` runs with a temporary `TF_DATA_DIR` (and a lock file it creates is
//!    removed again), so REPO is left as it was; the rest of the environment is kept, so
//!    a CLI configuration with a provider mirror or plugin cache works offline;
//!    a configuration that needs providers or modules, which cannot be downloaded offline,
//!    is a `terraform/validate-skipped` warning rather than a failure.
//!
//! # Environments
//!
//! An Application's environment is the directory after `environments/` in the file that
//! defines it, else the directory after `overlays/` or `environments/` in its
//! `source.path` (an app-of-apps deploying `environments/development` belongs to
//! development), else its `environment` label. `--environment ENV` (repeatable) restricts the run to those
//! environments (Applications without an environment, such as an app-of-apps, always run).
//!
//! # Report and exit code
//!
//! Every result is a `report::Finding`: one `Subject` per rendered Application (`filename`
//! is its source path, `namespace` its name), per YAML file and per Terraform directory.
//! Exit 0 when nothing failed, 1 when a finding is a failure (warnings do not fail),
//! 2 when the run itself cannot proceed: REPO missing, an invalid `.mooring/check.yaml`,
//! an unknown lint id.
//!
//! # Configuration
//!
//! `REPO/.mooring/check.yaml` (optional): `lints: {disable: [id, …]}`, merged with
//! `--disable-lint ID`.

use anyhow::{bail, Context as _};
use mooring_core::app::Application;
use mooring_core::project::AppProject;
use mooring_engine::lint::{self, LintOptions};
use mooring_engine::policy::conftest::{self, Conftest, Input};
use mooring_engine::policy::gate;
use mooring_engine::policy::gatekeeper::{self, EnforcementAction, Gatekeeper};
use mooring_engine::policy::report::{self, Finding, Format, Report, Severity, Subject};
use mooring_engine::policy::{gator, regotest, RegoSource};
use mooring_engine::schema::{self, Crds, Outcome};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

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

/// `.mooring/check.yaml`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckConfig {
    #[serde(default)]
    lints: LintConfig,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LintConfig {
    #[serde(default)]
    disable: Vec<String>,
}

/// One Application to render.
#[derive(Debug, Clone)]
struct Unit {
    /// The Application's name (or the overlay path for an orphan overlay).
    name: String,
    /// Where it was defined (repository-relative file), if in a file.
    file: Option<String>,
    environment: Option<String>,
    /// `spec.destination.namespace`, given to namespaced objects rendered without one.
    namespace: Option<String>,
    /// The Application's own `metadata.namespace` (`None`: the control plane's, or for an
    /// app of an app-of-apps, the parent's destination namespace).
    app_namespace: Option<String>,
    source: mooring_core::app::ApplicationSource,
    /// `spec.project` (`None` for an overlay no Application renders) and
    /// `spec.destination`, for the project rules.
    project: Option<String>,
    destination: mooring_core::app::ApplicationDestination,
}

/// A rendered unit.
struct Rendered {
    unit: Unit,
    objects: Vec<Value>,
}

pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let format = args.output;
    let repo = std::fs::canonicalize(&args.repo).with_context(|| {
        format!(
            "{} does not exist (pass the platform repository directory)",
            args.repo.display()
        )
    })?;
    if !repo.is_dir() {
        bail!("{} is not a directory", repo.display());
    }
    let mut disabled: BTreeSet<String> = args.disable_lint.iter().cloned().collect();
    disabled.extend(load_config(&repo)?.lints.disable);
    let unknown = lint::unknown_ids(&disabled);
    if !unknown.is_empty() {
        let known: Vec<&str> = lint::LINTS.iter().map(|(id, _)| *id).collect();
        bail!(
            "unknown lint id {} (known: {})",
            unknown.join(", "),
            known.join(", ")
        );
    }
    let started = Instant::now();
    let control_plane = mooring_engine::project::ControlPlane {
        namespace: args.namespace.clone(),
        application_namespaces: args.application_namespaces.clone(),
    };
    control_plane.validate().map_err(anyhow::Error::msg)?;
    // Render from a link-checked export, as the controller does (see the module docs).
    let export = tempfile::Builder::new()
        .prefix("mooring-check-")
        .tempdir()
        .context("creating a temporary directory for the export")?;
    let refused = mooring_source::export_dir(
        &repo,
        export.path(),
        &mooring_source::Limits::default(),
        &|name| name == ".git" || name == ".mooring",
    )
    .with_context(|| format!("exporting {}", repo.display()))?;
    let refused: Vec<Refused> = refused
        .into_iter()
        .map(|e| Refused {
            path: refused_path(&e),
            message: e.to_string(),
            too_large: matches!(e, mooring_source::SourceError::FileTooLarge { .. }),
        })
        .collect();
    let report = check(
        export.path(),
        &args.environment,
        &LintOptions { disabled },
        &control_plane,
        &refused,
    )
    .await?;
    let out = report::render(&report, format);
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

fn load_config(repo: &Path) -> anyhow::Result<CheckConfig> {
    let path = repo.join(".mooring").join("check.yaml");
    if !path.is_file() {
        return Ok(CheckConfig::default());
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v = mooring_core::yaml::parse_one(&text).with_context(|| format!("{}", path.display()))?;
    if v.is_null() {
        return Ok(CheckConfig::default());
    }
    serde_json::from_value(v)
        .with_context(|| format!("{}: expected `lints: {{disable: [id, …]}}`", path.display()))
}

/// An entry of REPO left out of the export, with why.
#[derive(Debug, Clone)]
struct Refused {
    /// Path relative to REPO.
    path: String,
    message: String,
    /// A file over the size limit (a warning, as for YAML files over the parser's limit),
    /// rather than a link or special file (a failure).
    too_large: bool,
}

/// The repository path an export refusal names.
fn refused_path(e: &mooring_source::SourceError) -> String {
    use mooring_source::SourceError as E;
    match e {
        E::SymlinkEscapes { link, .. }
        | E::SymlinkDangling { link, .. }
        | E::SymlinkLoop { link, .. } => link.clone(),
        E::UnsafeEntry { path } | E::InvalidPath { path, .. } | E::FileTooLarge { path, .. } => {
            path.clone()
        }
        _ => String::new(),
    }
}

/// The whole run (everything but output), on the exported tree `repo`.
async fn check(
    repo: &Path,
    envs: &[String],
    lint_opts: &LintOptions,
    control_plane: &mooring_engine::project::ControlPlane,
    refused: &[Refused],
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    for r in refused {
        let finding = if r.too_large {
            let rule = if is_yaml(Path::new(&r.path)) {
                "yaml/too-large"
            } else {
                "repository/file-too-large"
            };
            warning("yaml", rule, format!("{}; not read", r.message), "")
        } else {
            failure(
                "repository",
                "repository/link-refused",
                r.message.clone(),
                "",
            )
        };
        report.subjects.push(subject(&r.path, "", vec![finding]));
    }
    let files = walk(repo);

    // 1. Discovery.
    let mut units = Vec::new();
    let mut written_objects = Vec::new();
    let mut projects: Vec<AppProject> = Vec::new();
    // Unsupported-field findings already reported, so an Application both written in a
    // file and rendered by an app of apps is reported once.
    let mut reported = BTreeSet::new();
    for f in files.iter().filter(|f| is_yaml(f)) {
        let rel = rel(repo, f);
        let size = std::fs::metadata(f).map_or(0, |m| m.len());
        if size > mooring_core::yaml::MAX_YAML_BYTES as u64 {
            report.subjects.push(subject(
                &rel,
                "",
                vec![warning(
                    "yaml",
                    "yaml/too-large",
                    format!(
                        "{rel} is {size} bytes, over the {}-byte limit for a YAML file; not read",
                        mooring_core::yaml::MAX_YAML_BYTES
                    ),
                    "",
                )],
            ));
            continue;
        }
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        match mooring_core::yaml::parse_all(&text) {
            Ok(docs) => {
                for d in docs {
                    let unsupported = unsupported_findings(&d, &mut reported);
                    if !unsupported.is_empty() {
                        let name = d["metadata"]["name"].as_str().unwrap_or("");
                        report.subjects.push(subject(&rel, name, unsupported));
                    }
                    if is_application(&d) {
                        match units_of(&d, Some(&rel)) {
                            Ok(u) => units.extend(u),
                            Err(e) => report.subjects.push(subject(
                                &rel,
                                "",
                                vec![failure("application", "application/invalid", e, "")],
                            )),
                        }
                    }
                    if is_applicationset(&d) {
                        // The Applications it generates from this checkout are checked
                        // like written ones; a set that fails to generate is a finding.
                        let set = d["metadata"]["name"].as_str().unwrap_or("?").to_string();
                        match crate::appset::generate_local(&d, repo) {
                            Ok(apps) => {
                                for a in apps {
                                    match units_of(&a, Some(&rel)) {
                                        Ok(u) => units.extend(u),
                                        Err(e) => report.subjects.push(subject(
                                            &rel,
                                            "",
                                            vec![failure(
                                                "applicationset",
                                                "applicationset/invalid",
                                                format!("ApplicationSet {set}: {e}"),
                                                "",
                                            )],
                                        )),
                                    }
                                }
                            }
                            Err(e) => report.subjects.push(subject(
                                &rel,
                                "",
                                vec![failure(
                                    "applicationset",
                                    "applicationset/invalid",
                                    format!("ApplicationSet {set}: {e:#}"),
                                    "",
                                )],
                            )),
                        }
                    }
                    if d["kind"] == "AppProject" {
                        match serde_json::from_value::<AppProject>(d.clone()) {
                            Ok(p) => {
                                if let Some(f) = project_outside_control_plane(&p, control_plane) {
                                    report.subjects.push(subject(&rel, "", vec![f]));
                                } else {
                                    projects.push(p);
                                }
                            }
                            Err(e) => report.subjects.push(subject(
                                &rel,
                                "",
                                vec![failure(
                                    "project",
                                    "project/invalid",
                                    format!("AppProject in {rel}: {e}"),
                                    "",
                                )],
                            )),
                        }
                    }
                    if d["kind"] == "CustomResourceDefinition" || d["kind"] == "ConstraintTemplate"
                    {
                        written_objects.push(d);
                    }
                }
            }
            Err(e) if looks_like_manifest(&text) => report.subjects.push(subject(
                &rel,
                "",
                vec![failure("yaml", "yaml/parse", format!("{rel}: {e}"), "")],
            )),
            Err(_) => {}
        }
    }
    units.retain(|u| wanted(u, envs));

    // 2. Rendering, following app-of-apps.
    let opts = mooring_render::RenderOptions::default();
    let mut seen: BTreeSet<String> = units.iter().map(unit_key).collect();
    let mut rendered: Vec<Rendered> = Vec::new();
    let mut queue = units;
    let mut round = 0;
    while !queue.is_empty() && round < 8 {
        round += 1;
        eprintln!("check: rendering {} application(s)…", queue.len());
        let results = render_all(repo, std::mem::take(&mut queue), &opts, refused).await?;
        for (unit, result) in results {
            match result {
                RenderResult::Objects(objects) => {
                    for o in objects.iter().filter(|o| is_application(o)) {
                        for mut u in units_of(o, None).unwrap_or_default() {
                            // Rendered without a namespace: the parent's destination's.
                            if u.app_namespace.is_none() {
                                u.app_namespace = unit.namespace.clone();
                            }
                            if wanted(&u, envs) && seen.insert(unit_key(&u)) {
                                queue.push(u);
                            }
                        }
                    }
                    rendered.push(Rendered { unit, objects });
                }
                RenderResult::External(why) => report.subjects.push(subject(
                    unit.source.path.as_deref().unwrap_or(""),
                    &unit.name,
                    vec![warning("render", "render/external-source", why, "")],
                )),
                RenderResult::Failed(e) => {
                    let e = match &unit.file {
                        Some(f) => format!("{e} (Application {} in {f})", unit.name),
                        None => e,
                    };
                    report.subjects.push(subject(
                        unit.source.path.as_deref().unwrap_or(""),
                        &unit.name,
                        vec![failure("render", "render/error", e, "")],
                    ))
                }
            }
        }
    }
    // Orphan overlays: overlays/<env> kustomizations no Application renders.
    let rendered_paths: BTreeSet<String> = rendered
        .iter()
        .filter_map(|r| r.unit.source.path.clone())
        .map(|p| p.trim_matches('/').to_string())
        .collect();
    let mut orphans = Vec::new();
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !matches!(
            name,
            "kustomization.yaml" | "kustomization.yml" | "Kustomization"
        ) {
            continue;
        }
        let Some(dir) = f.parent() else { continue };
        let rel_dir = rel(repo, dir);
        let Some(env) = env_after(&rel_dir, "overlays") else {
            continue;
        };
        if rendered_paths.contains(&rel_dir) || !(envs.is_empty() || envs.contains(&env)) {
            continue;
        }
        // Only a direct overlays/<env> directory, not a nested component.
        if !rel_dir.ends_with(&format!("overlays/{env}")) {
            continue;
        }
        orphans.push(Unit {
            name: format!("overlay {rel_dir}"),
            file: None,
            environment: Some(env),
            namespace: None,
            app_namespace: None,
            source: mooring_core::app::ApplicationSource {
                path: Some(rel_dir),
                ..Default::default()
            },
            project: None,
            destination: Default::default(),
        });
    }
    if !orphans.is_empty() {
        eprintln!(
            "check: rendering {} overlay(s) no Application uses…",
            orphans.len()
        );
        for (unit, result) in render_all(repo, orphans, &opts, refused).await? {
            match result {
                RenderResult::Objects(objects) => rendered.push(Rendered { unit, objects }),
                RenderResult::Failed(e) => report.subjects.push(subject(
                    unit.source.path.as_deref().unwrap_or(""),
                    &unit.name,
                    vec![failure("render", "render/error", e, "")],
                )),
                RenderResult::External(_) => {}
            }
        }
    }

    // Destination namespaces, as Argo CD applies them.
    let cluster_crds = mooring_core::scope::crd_scopes(
        rendered
            .iter()
            .flat_map(|r| r.objects.iter())
            .chain(written_objects.iter()),
    );
    for r in &mut rendered {
        if let Some(ns) = r.unit.namespace.clone() {
            default_namespaces(&mut r.objects, &ns, &cluster_crds);
        }
    }

    // 3. Schemas and lints.
    // Mooring's own kinds (Application, ConstraintTemplate) validate against the CRDs
    // `mooring crds` prints, as the management cluster would.
    let own_crds = mooring_k8s::crds::all();
    let (crds, crd_errors) = Crds::from_objects(
        rendered
            .iter()
            .flat_map(|r| r.objects.iter())
            .chain(written_objects.iter())
            .chain(own_crds.iter()),
    );
    for e in crd_errors {
        tracing::debug!("{e}");
    }
    let objects_total: usize = rendered.iter().map(|r| r.objects.len()).sum();
    eprintln!(
        "check: validating and linting {objects_total} object(s) of {} render(s)…",
        rendered.len()
    );
    // AppProjects rendered by an app (the example deploys its projects so) count too,
    // when they land in the control-plane namespace.
    let mut misplaced = BTreeMap::new();
    for r in &rendered {
        for o in r.objects.iter().filter(|o| o["kind"] == "AppProject") {
            if let Ok(p) = serde_json::from_value::<AppProject>(o.clone()) {
                if let Some(f) = project_outside_control_plane(&p, control_plane) {
                    misplaced.insert(unit_key(&r.unit), f);
                } else if !projects.iter().any(|q| q.name() == p.name()) {
                    projects.push(p);
                }
            }
        }
    }
    for r in &rendered {
        let mut s = check_objects(r, &crds, lint_opts);
        s.findings.extend(misplaced.remove(&unit_key(&r.unit)));
        for o in &r.objects {
            s.findings.extend(unsupported_findings(o, &mut reported));
            s.findings.extend(annotation_findings(o));
        }
        project_rules(r, &projects, &cluster_crds, control_plane, &mut s);
        report.subjects.push(s);
    }

    // 4. Policies.
    let policies = policy_stage(repo, &files, &rendered);
    report.subjects.extend(policies.subjects);

    // 5. Terraform.
    let tf_dirs: BTreeSet<PathBuf> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "tf"))
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    if !tf_dirs.is_empty() {
        report
            .subjects
            .extend(terraform_stage(repo, &tf_dirs).await?);
    }
    Ok(report)
}

/// Schema validation and lints of one render.
fn check_objects(r: &Rendered, crds: &Crds, lint_opts: &LintOptions) -> Subject {
    let mut s = Subject {
        filename: r.unit.source.path.clone().unwrap_or_default(),
        namespace: r.unit.name.clone(),
        ..Default::default()
    };
    let mut skipped: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for o in &r.objects {
        let resource = lint::resource_label(o);
        match schema::validate(o, crds) {
            Outcome::Valid => s.successes += 1,
            Outcome::Invalid(issues) => {
                for i in issues {
                    let message = match i.message.as_str() {
                        "unknown field" | "missing required field" => {
                            format!("{} {:?}", i.message, i.path)
                        }
                        _ => i.to_string(),
                    };
                    s.findings
                        .push(failure("schema", "schema/invalid", message, &resource));
                }
            }
            Outcome::Skipped { reason } => {
                let key = format!(
                    "{} {}",
                    o["apiVersion"].as_str().unwrap_or(""),
                    o["kind"].as_str().unwrap_or("")
                );
                skipped.entry(key).or_insert((0, reason)).0 += 1;
            }
        }
        let l = lint::lint(o, &r.objects, lint_opts);
        s.successes += l.passed;
        s.findings.extend(l.findings);
    }
    for (_, (n, reason)) in skipped {
        s.findings.push(warning(
            "schema",
            "schema/skipped",
            format!("skipped: {reason} ({n} object(s)); add its CustomResourceDefinition to the repository to validate it"),
            "",
        ));
    }
    s
}

/// Fields of an Argo CD `Application` or `ApplicationSet`, or an Argo Rollouts `Rollout`,
/// that Mooring does not act on ([`mooring_engine::unsupported`], the table the
/// controllers use). For Applications and ApplicationSets, a field Argo CD does not define
/// at all fails (Argo CD's CRD would refuse it) and one Mooring does not implement is a
/// warning, like the controller's `UnsupportedFieldWarning` condition; a Rollout with any
/// such field fails, because the controller refuses it (`InvalidSpec`, nothing rolls
/// out). Findings already in `reported` are not repeated.
fn unsupported_findings(obj: &Value, reported: &mut BTreeSet<(String, String)>) -> Vec<Finding> {
    use mooring_engine::unsupported::{self, Reason};
    let argo = obj["apiVersion"]
        .as_str()
        .is_some_and(|a| a.starts_with("argoproj.io/"));
    let (source, found) = match obj["kind"].as_str() {
        _ if !argo => return vec![],
        Some("Application") => ("application", unsupported::application(obj)),
        Some("ApplicationSet") => ("applicationset", unsupported::applicationset(obj)),
        Some("Rollout") => ("rollout", unsupported::rollout(obj)),
        _ => return vec![],
    };
    let resource = lint::resource_label(obj);
    found
        .into_iter()
        .filter(|u| reported.insert((resource.clone(), u.to_string())))
        .map(|u| match (source, &u.reason) {
            ("rollout", _) => failure(
                source,
                "rollout/unsupported-field",
                format!("{u}; the Rollout would be Degraded (InvalidSpec) and not roll out"),
                &resource,
            ),
            (_, Reason::Unknown { .. }) => failure(
                source,
                &format!("{source}/unknown-field"),
                u.to_string(),
                &resource,
            ),
            _ => warning(
                source,
                &format!("{source}/unsupported-field"),
                u.to_string(),
                &resource,
            ),
        })
        .collect()
}

/// Per-resource annotations Mooring does not act on, as warnings: sync options (the
/// `argocd.argoproj.io/sync-options` annotation, the same table as
/// `syncPolicy.syncOptions`) and hook types it does not run.
fn annotation_findings(obj: &Value) -> Vec<Finding> {
    let resource = lint::resource_label(obj);
    mooring_engine::unsupported::manifest(obj)
        .into_iter()
        .map(|u| {
            let rule = if u
                .path
                .contains(mooring_engine::unsupported::SYNC_OPTIONS_ANNOTATION)
            {
                "sync-option/unsupported"
            } else {
                "hook/unsupported"
            };
            warning("sync", rule, u.to_string(), &resource)
        })
        .collect()
}

/// Gatekeeper templates and constraints, conftest policies, gator suites and Rego unit
/// tests of the repository, run against the rendered objects.
///
/// * **Gatekeeper**: every ConstraintTemplate and constraint in a YAML file of REPO or
///   among the rendered objects is in force (one copy per kind and name). Each rendered
///   object is reviewed as a `CREATE`, with the Namespace object of its environment when
///   rendered, and `data.inventory` holding every object rendered for the same
///   environment: what the cluster would hold. Only the constraints that apply to the
///   Application's project count, as in the controller's gate
///   ([`mooring_engine::policy::gate`]: a constraint labelled `mooring.dev/project: A`
///   does not apply to an Application of project B; an overlay no Application renders
///   gets every constraint). `deny` violations are failures, `warn` and `dryrun` ones
///   warnings.
/// * **conftest**: each policy root — a directory named `conftest` or `policy` holding
///   `.rego` files, outermost wins — is compiled on its own and run (namespace `main`, as
///   `conftest test` does by default) on every render's objects.
/// * **Rego unit tests**: the `test_` rules of every policy root with `*_test.rego` files.
/// * **gator suites**: every YAML file of `kind: Suite`, with `gator verify`'s meaning.
///
/// A policy that does not compile is a failure naming its file and line, never skipped.
fn policy_stage(repo: &Path, files: &[PathBuf], rendered: &[Rendered]) -> Report {
    let mut report = Report::default();
    let limits = mooring_engine::policy::Limits::default();

    // Gatekeeper.
    let mut policy_objects: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut suites = Vec::new();
    for f in files {
        if !is_yaml(f) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        if gator::is_suite(&text) {
            suites.push(f.clone());
            continue;
        }
        for d in mooring_core::yaml::parse_all(&text).unwrap_or_default() {
            if gatekeeper::is_policy_object(&d) {
                policy_objects.insert(policy_key(&d), d);
            }
        }
    }
    for o in rendered.iter().flat_map(|r| r.objects.iter()) {
        if gatekeeper::is_policy_object(o) {
            policy_objects
                .entry(policy_key(o))
                .or_insert_with(|| o.clone());
        }
    }
    if !policy_objects.is_empty() {
        match Gatekeeper::from_objects(policy_objects.values(), limits) {
            Ok(gk) => report.subjects.extend(gatekeeper_stage(&gk, rendered)),
            Err(e) => report.subjects.push(subject(
                "",
                "gatekeeper",
                vec![failure(
                    "gatekeeper",
                    "gatekeeper/compile",
                    e.to_string(),
                    "",
                )],
            )),
        }
    }

    // conftest policies and their Rego unit tests.
    for root in policy_roots(repo, files) {
        let root_rel = rel(repo, &root);
        let mut sources = Vec::new();
        let mut has_tests = false;
        for f in files.iter().filter(|f| f.starts_with(&root)) {
            if f.extension().is_some_and(|x| x == "rego") {
                has_tests |= f.to_string_lossy().ends_with("_test.rego");
                match std::fs::read_to_string(f) {
                    Ok(text) => sources.push(RegoSource::new(rel(repo, f), text)),
                    Err(e) => report.subjects.push(subject(
                        &rel(repo, f),
                        "",
                        vec![failure("conftest", "conftest/read", e.to_string(), "")],
                    )),
                }
            }
        }
        let engine = match Conftest::load(&sources, &[], limits) {
            Ok(engine) => engine,
            Err(e) => {
                report.subjects.push(subject(
                    &root_rel,
                    "",
                    vec![failure("conftest", "conftest/compile", e.to_string(), "")],
                ));
                continue;
            }
        };
        let inputs: Vec<Input> = rendered
            .iter()
            .map(|r| Input {
                path: format!(
                    "{} ({})",
                    r.unit.name,
                    r.unit.source.path.as_deref().unwrap_or("")
                ),
                documents: r
                    .objects
                    .iter()
                    .filter(|o| !gatekeeper::is_policy_object(o))
                    .cloned()
                    .collect(),
            })
            .filter(|i| !i.documents.is_empty())
            .collect();
        match engine.test(&inputs, &conftest::Options::default()) {
            Ok(r) => report.subjects.extend(r.subjects),
            Err(e) => report.subjects.push(subject(
                &root_rel,
                "",
                vec![failure("conftest", "conftest/eval", e.to_string(), "")],
            )),
        }
        if has_tests {
            let options = regotest::TestOptions {
                limits,
                ..Default::default()
            };
            match regotest::run_tests(&sources, &[], &options) {
                Ok(run) => report.subjects.extend(run.to_report().subjects),
                Err(e) => report.subjects.push(subject(
                    &root_rel,
                    "",
                    vec![failure("rego-test", "rego-test/error", e.to_string(), "")],
                )),
            }
        }
    }

    // gator suites.
    for suite in suites {
        let dir = suite.parent().map(Path::to_path_buf).unwrap_or_default();
        let text = std::fs::read_to_string(&suite).map_err(|e| e.to_string());
        let result = gator::suite_report(
            &rel(repo, &suite),
            text,
            &mut |p| std::fs::read_to_string(dir.join(p)),
            limits,
        );
        report.subjects.extend(result.subjects);
    }
    report
}

fn policy_key(o: &Value) -> (String, String) {
    (
        o["kind"].as_str().unwrap_or("").to_string(),
        o["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

/// Directories named `conftest` or `policy` that hold `.rego` files (the outermost of
/// nested ones).
fn policy_roots(repo: &Path, files: &[PathBuf]) -> Vec<PathBuf> {
    let mut roots: BTreeSet<PathBuf> = BTreeSet::new();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "rego"))
    {
        let root = f
            .ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(repo) && *d != repo)
            .filter(|d| {
                d.file_name()
                    .is_some_and(|n| n == "conftest" || n == "policy")
            })
            .last();
        if let Some(root) = root {
            roots.insert(root.to_path_buf());
        }
    }
    roots.into_iter().collect()
}

/// Reviews every rendered object against the constraints, per environment.
fn gatekeeper_stage(gk: &Gatekeeper, rendered: &[Rendered]) -> Vec<Subject> {
    let mut by_env: BTreeMap<Option<String>, Vec<&Rendered>> = BTreeMap::new();
    for r in rendered {
        by_env
            .entry(r.unit.environment.clone())
            .or_default()
            .push(r);
    }
    let mut subjects = Vec::new();
    for renders in by_env.values() {
        let objects: Vec<&Value> = renders
            .iter()
            .flat_map(|r| r.objects.iter())
            .filter(|o| !gatekeeper::is_policy_object(o))
            .collect();
        let mut gk = gk.clone();
        gk.set_inventory(objects.iter().copied());
        let namespaces: BTreeMap<&str, &Value> = objects
            .iter()
            .filter(|o| o["kind"] == "Namespace" && o["apiVersion"] == "v1")
            .filter_map(|o| Some((o["metadata"]["name"].as_str()?, *o)))
            .collect();
        for r in renders {
            let mut s = Subject {
                filename: r.unit.source.path.clone().unwrap_or_default(),
                namespace: r.unit.name.clone(),
                ..Default::default()
            };
            // The constraints that apply to the Application's project, as in the
            // controller's gate; an overlay no Application renders gets them all.
            let scope = r
                .unit
                .project
                .as_deref()
                .map_or(gate::Scope::Unknown, gate::Scope::Project);
            let objects = r
                .objects
                .iter()
                .filter(|o| !gatekeeper::is_policy_object(o));
            for reviewed in gate::review(&gk, scope, objects, &[], &namespaces) {
                match reviewed.result {
                    Ok(violations) if violations.is_empty() => s.successes += 1,
                    Ok(violations) => {
                        for v in violations {
                            let rule = format!("{}/{}", v.constraint_kind, v.constraint_name);
                            let message = v.message.clone();
                            let resource = v.resource.to_string();
                            let mut f = if v.enforcement_action == EnforcementAction::Deny {
                                failure("gatekeeper", &rule, message, &resource)
                            } else {
                                warning("gatekeeper", &rule, message, &resource)
                            };
                            f.metadata = v.details;
                            s.findings.push(f);
                        }
                    }
                    Err(e) => s.findings.push(failure(
                        "gatekeeper",
                        "gatekeeper/eval",
                        e.to_string(),
                        &lint::resource_label(reviewed.object),
                    )),
                }
            }
            if s.successes > 0 || !s.findings.is_empty() {
                subjects.push(s);
            }
        }
    }
    subjects
}

enum RenderResult {
    Objects(Vec<Value>),
    External(String),
    Failed(String),
}

/// Render units on blocking threads, at most as many at once as there are cores.
async fn render_all(
    repo: &Path,
    units: Vec<Unit>,
    opts: &mooring_render::RenderOptions,
    refused: &[Refused],
) -> anyhow::Result<Vec<(Unit, RenderResult)>> {
    let refused = std::sync::Arc::new(refused.to_vec());
    let width = std::thread::available_parallelism().map_or(2, |n| n.get());
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(width));
    let mut tasks = Vec::new();
    for unit in units {
        let repo = repo.to_path_buf();
        let opts = opts.clone();
        let sem = sem.clone();
        let refused = refused.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            tokio::task::spawn_blocking(move || {
                let result = render_one(&repo, &unit, &opts, &refused);
                (unit, result)
            })
            .await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.context("render task")?.context("render task")?);
    }
    Ok(out)
}

fn render_one(
    repo: &Path,
    unit: &Unit,
    opts: &mooring_render::RenderOptions,
    refused: &[Refused],
) -> RenderResult {
    let started = Instant::now();
    let s = &unit.source;
    if s.chart.as_deref().is_some_and(|c| !c.is_empty()) {
        return RenderResult::External(format!(
            "chart {:?} from {} is not in this repository; not rendered",
            s.chart.as_deref().unwrap_or(""),
            s.repo_url
        ));
    }
    let path = s.path.as_deref().unwrap_or("");
    // A path that escapes (`..`, an absolute path, a symlink out) is the render crate's
    // to refuse with a clear error; one that merely does not exist here belongs to
    // another repository.
    let escapes = Path::new(path).components().any(|c| {
        matches!(
            c,
            std::path::Component::ParentDir | std::path::Component::RootDir
        )
    });
    // A source path through a link the export refused is that link's error.
    let normalized = path.trim_start_matches("./").trim_end_matches('/');
    if let Some(r) = refused.iter().find(|r| {
        !r.path.is_empty()
            && (normalized == r.path || normalized.starts_with(&format!("{}/", r.path)))
    }) {
        return RenderResult::Failed(format!("source path {path:?}: {}", r.message));
    }
    let in_repo = !path.is_empty() && (escapes || repo.join(path).exists());
    if !in_repo {
        return RenderResult::External(format!(
            "source path {path:?} of {} is not a directory of this repository; not rendered",
            s.repo_url
        ));
    }
    let mut source = s.clone();
    if let Some(helm) = source.helm.as_mut().and_then(Value::as_object_mut) {
        helm.entry("releaseName")
            .or_insert_with(|| Value::String(unit.name.clone()));
    }
    let result = match mooring_render::render(repo, &source, opts) {
        Ok(objects) => RenderResult::Objects(objects),
        Err(e) => RenderResult::Failed(e.to_string()),
    };
    eprintln!(
        "check:   {} ({path}) {:.2}s",
        unit.name,
        started.elapsed().as_secs_f64()
    );
    result
}

/// Terraform checks of every directory with `.tf` files.
async fn terraform_stage(repo: &Path, dirs: &BTreeSet<PathBuf>) -> anyhow::Result<Vec<Subject>> {
    let Some(tf) = which("terraform") else {
        return Ok(vec![subject(
            "",
            "terraform",
            vec![warning(
                "terraform",
                "terraform/missing",
                "terraform is not on PATH: Terraform folders were not checked (install it: https://developer.hashicorp.com/terraform/install)".into(),
                "",
            )],
        )]);
    };
    let mut out = Vec::new();
    for dir in dirs {
        let rel_dir = rel(repo, dir);
        eprintln!("check: terraform {rel_dir}");
        let mut s = Subject {
            filename: rel_dir.clone(),
            namespace: "terraform".into(),
            ..Default::default()
        };
        let data = tempfile::tempdir()?;
        let run = |args: &'static [&'static str]| {
            let mut c = tokio::process::Command::new(&tf);
            c.args(args)
                .current_dir(dir)
                .env("TF_DATA_DIR", data.path().join(".terraform"))
                .env("TF_IN_AUTOMATION", "1")
                .env("TF_INPUT", "0")
                .env("CHECKPOINT_DISABLE", "1")
                .kill_on_drop(true);
            async move {
                tokio::time::timeout(Duration::from_secs(120), c.output())
                    .await
                    .map_err(|_| anyhow::anyhow!("terraform {args:?} timed out"))?
                    .context("running terraform")
            }
        };
        // fmt
        let fmt = run(&["fmt", "-check", "-diff", "-no-color"]).await?;
        if fmt.status.success() {
            s.successes += 1;
        } else {
            let stdout = String::from_utf8_lossy(&fmt.stdout).to_string();
            let files = unformatted_files(&stdout);
            if files.is_empty() {
                let err = String::from_utf8_lossy(&fmt.stderr);
                s.findings.push(failure(
                    "terraform",
                    "terraform/fmt",
                    format!("terraform fmt failed: {}", err.trim()),
                    "",
                ));
            }
            for f in files {
                let mut finding = failure(
                    "terraform",
                    "terraform/fmt",
                    format!("{rel_dir}/{f} is not formatted: run `terraform fmt`"),
                    "",
                );
                finding.metadata = serde_json::json!({"diff": stdout});
                s.findings.push(finding);
            }
        }
        // init + validate
        let lock = dir.join(".terraform.lock.hcl");
        let had_lock = lock.exists();
        let init = run(&["init", "-backend=false", "-input=false", "-no-color"]).await?;
        if !had_lock && lock.exists() {
            // init records the providers it installed; the repository is not ours to change.
            let _ = std::fs::remove_file(&lock);
        }
        if !init.status.success() {
            let err = String::from_utf8_lossy(&init.stderr).to_string()
                + &String::from_utf8_lossy(&init.stdout);
            if needs_download(&err) {
                s.findings.push(warning(
                    "terraform",
                    "terraform/validate-skipped",
                    "skipped: providers not available offline (terraform init could not install the providers or modules this configuration requires)".into(),
                    "",
                ));
            } else {
                s.findings.push(failure(
                    "terraform",
                    "terraform/init",
                    format!("terraform init failed: {}", first_lines(&err, 20)),
                    "",
                ));
            }
            out.push(s);
            continue;
        }
        let validate = run(&["validate", "-json", "-no-color"]).await?;
        let v: Value = serde_json::from_slice(&validate.stdout).unwrap_or(Value::Null);
        if v["valid"] == true {
            s.successes += 1;
        }
        for d in v["diagnostics"].as_array().into_iter().flatten() {
            let file = d["range"]["filename"].as_str().unwrap_or("");
            let line = d["range"]["start"]["line"]
                .as_u64()
                .and_then(|l| u32::try_from(l).ok());
            let mut message = d["summary"].as_str().unwrap_or("").to_string();
            if let Some(detail) = d["detail"].as_str().filter(|x| !x.is_empty()) {
                message.push_str(": ");
                message.push_str(detail);
            }
            if !file.is_empty() {
                message = format!("{rel_dir}/{file}: {message}");
            }
            let mut f = if d["severity"] == "error" {
                failure("terraform", "terraform/validate", message, "")
            } else {
                warning("terraform", "terraform/validate", message, "")
            };
            f.line = line;
            s.findings.push(f);
        }
        if v.is_null() {
            s.findings.push(failure(
                "terraform",
                "terraform/validate",
                format!(
                    "terraform validate failed: {}",
                    first_lines(&String::from_utf8_lossy(&validate.stderr), 20)
                ),
                "",
            ));
        }
        out.push(s);
    }
    Ok(out)
}

/// File names in `terraform fmt -check -diff` output (`--- old/main.tf` headers).
fn unformatted_files(stdout: &str) -> Vec<String> {
    let mut files: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("--- old/"))
        .map(str::to_string)
        .collect();
    if files.is_empty() {
        // Without diffs terraform lists the files, one per line.
        files = stdout
            .lines()
            .filter(|l| l.ends_with(".tf") || l.ends_with(".tfvars"))
            .map(str::to_string)
            .collect();
    }
    files.dedup();
    files
}

/// Whether a failed `terraform init` failed for want of downloads (offline).
fn needs_download(err: &str) -> bool {
    let e = err.to_ascii_lowercase();
    [
        "failed to query available provider packages",
        "failed to install provider",
        "could not retrieve the list of available versions",
        "failed to download module",
        "module not installed",
        "registry.terraform.io",
        "error accessing remote module registry",
    ]
    .iter()
    .any(|p| e.contains(p))
}

fn first_lines(s: &str, n: usize) -> String {
    s.trim().lines().take(n).collect::<Vec<_>>().join("\n")
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Every file under `repo` (hidden directories and Helm `templates/` skipped; symlinks not
/// followed), sorted.
fn walk(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let is_chart = dir.join("Chart.yaml").is_file();
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Ok(ty) = e.file_type() else { continue };
            if ty.is_dir() {
                if name.starts_with('.') || (is_chart && name == "templates") {
                    continue;
                }
                stack.push(e.path());
            } else if ty.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn is_yaml(p: &Path) -> bool {
    p.extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| x == "yaml" || x == "yml")
}

fn rel(repo: &Path, p: &Path) -> String {
    let r = p.strip_prefix(repo).unwrap_or(p);
    let s = r.to_string_lossy().replace('\\', "/");
    if s.is_empty() {
        ".".into()
    } else {
        s
    }
}

fn looks_like_manifest(text: &str) -> bool {
    text.contains("apiVersion:") && text.contains("kind:") && text.contains("metadata:")
}

fn is_application(v: &Value) -> bool {
    v["kind"] == "Application"
        && v["apiVersion"]
            .as_str()
            .is_some_and(|a| a.starts_with("argoproj.io/"))
}

fn is_applicationset(v: &Value) -> bool {
    v["kind"] == "ApplicationSet"
        && v["apiVersion"]
            .as_str()
            .is_some_and(|a| a.starts_with("argoproj.io/"))
}

/// The environment after `marker/` in a `/`-separated path.
fn env_after(path: &str, marker: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    parts
        .windows(2)
        .find(|w| w[0] == marker)
        .map(|w| w[1].to_string())
        .filter(|e| !e.is_empty() && !e.ends_with(".yaml") && !e.ends_with(".yml"))
}

/// The units of an Application: one per source (Argo CD multi-source Applications render
/// every source with a path; `ref`-only sources, which carry value files, have none).
fn units_of(doc: &Value, file: Option<&str>) -> Result<Vec<Unit>, String> {
    let app: Application = serde_json::from_value(doc.clone()).map_err(|e| {
        format!(
            "Application {}: {e}",
            doc["metadata"]["name"].as_str().unwrap_or("?")
        )
    })?;
    // `spec.sources` wins over `spec.source`, as in Argo CD.
    let sources: Vec<_> = app.sources().to_vec();
    if sources.is_empty() {
        return Err(format!("Application {} has no source", app.name()));
    }
    let multi = sources.len() > 1;
    let mut units = Vec::new();
    for (i, source) in sources.into_iter().enumerate() {
        if multi && source.path.is_none() && source.chart.is_none() {
            continue;
        }
        let environment = file
            .and_then(|f| env_after(f, "environments"))
            .or_else(|| {
                let p = source.path.as_deref()?;
                env_after(p, "overlays").or_else(|| env_after(p, "environments"))
            })
            .or_else(|| {
                app.metadata["labels"]["environment"]
                    .as_str()
                    .map(str::to_string)
            });
        let app_namespace = app
            .metadata
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        units.push(Unit {
            app_namespace,
            name: if multi {
                format!("{} (source {})", app.name(), i + 1)
            } else {
                app.name().to_string()
            },
            file: file.map(str::to_string),
            environment,
            namespace: app
                .spec
                .destination
                .namespace
                .clone()
                .filter(|n| !n.is_empty()),
            source,
            project: Some(app.spec.project.clone()),
            destination: app.spec.destination.clone(),
        });
    }
    Ok(units)
}

/// Give namespaced objects without a namespace the Application's destination namespace,
/// as Argo CD does when it applies them, so findings name the namespace the object
/// lands in. Scope comes from CRDs among `crds` (`spec.scope`), the built-in table and
/// Gatekeeper constraints (cluster-scoped); anything else is taken as namespaced.
fn default_namespaces(
    objects: &mut [Value],
    namespace: &str,
    cluster_crds: &BTreeMap<(String, String), bool>,
) {
    for o in objects.iter_mut() {
        if is_cluster_scoped(o, cluster_crds) {
            continue;
        }
        if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            if meta
                .get("namespace")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                meta.insert("namespace".into(), Value::String(namespace.to_string()));
            }
        }
    }
}

/// Whether an object is cluster-scoped without a cluster to ask: CRDs among
/// `cluster_crds`, then the built-in table (`mooring_core::scope`).
fn is_cluster_scoped(o: &Value, cluster_crds: &BTreeMap<(String, String), bool>) -> bool {
    let group = mooring_core::scope::api_group(o["apiVersion"].as_str().unwrap_or(""));
    let kind = o["kind"].as_str().unwrap_or("");
    !mooring_core::scope::namespaced_without_discovery(group, kind, cluster_crds)
}

/// The AppProject rules the controller enforces before a sync, at CI time: the app's
/// source repositories and destination, and every rendered object's kind (cluster vs
/// namespace white/blacklists) and namespace. Projects come from the repository (files
/// and renders); a missing `default` project permits everything, another missing project
/// is a warning (it may exist only in the cluster).
fn project_rules(
    r: &Rendered,
    projects: &[AppProject],
    cluster_crds: &BTreeMap<(String, String), bool>,
    control_plane: &mooring_engine::project::ControlPlane,
    s: &mut Subject,
) {
    use mooring_engine::project as rules;
    let Some(name) = r.unit.project.as_deref() else {
        return;
    };
    let name = if name.is_empty() {
        mooring_core::project::DEFAULT_PROJECT
    } else {
        name
    };
    let proj = match projects.iter().find(|p| p.name() == name) {
        Some(p) => p.clone(),
        None if name == mooring_core::project::DEFAULT_PROJECT => AppProject::default_project(""),
        None => {
            s.findings.push(warning(
                "project",
                "project/unknown",
                format!(
                    "project {name} is not defined in the repository; its rules were not checked"
                ),
                "",
            ));
            return;
        }
    };
    let dst = rules::Destination::of(&r.unit.destination);
    let mut refusals = Vec::new();
    let app_namespace = r
        .unit
        .app_namespace
        .as_deref()
        .unwrap_or(&control_plane.namespace);
    refusals.push((
        "project/app-namespace",
        control_plane
            .check_app_namespace(&proj, app_namespace)
            .err(),
        String::new(),
    ));
    if !r.unit.source.repo_url.is_empty() {
        refusals.push((
            "project/source",
            rules::check_source(&proj, &r.unit.source.repo_url).err(),
            String::new(),
        ));
    }
    refusals.push((
        "project/destination",
        rules::check_destination(&proj, &dst).err(),
        String::new(),
    ));
    for o in &r.objects {
        let Some(key) = mooring_core::ResourceKey::of(o) else {
            continue;
        };
        let namespaced = !is_cluster_scoped(o, cluster_crds);
        refusals.push((
            "project/resource",
            rules::check_resource(&proj, &key, namespaced, &dst).err(),
            lint::resource_label(o),
        ));
    }
    for (rule, refusal, resource) in refusals {
        match refusal {
            None => s.successes += 1,
            Some(e) => s
                .findings
                .push(failure("project", rule, e.to_string(), &resource)),
        }
    }
}

/// An AppProject that will never be read, being outside the control-plane namespace (one
/// without a namespace is applied there).
fn project_outside_control_plane(
    p: &AppProject,
    control_plane: &mooring_engine::project::ControlPlane,
) -> Option<Finding> {
    let ns = p.namespace();
    (!ns.is_empty() && ns != control_plane.namespace).then(|| {
        warning(
            "project",
            "project/namespace",
            format!(
                "AppProject {} is in namespace {ns}: projects are read only from the control-plane namespace {}, so no Application can use it",
                p.name(),
                control_plane.namespace
            ),
            "",
        )
    })
}

fn unit_key(u: &Unit) -> String {
    format!(
        "{}\u{0}{}",
        u.name,
        serde_json::to_string(&u.source).unwrap_or_default()
    )
}

fn wanted(u: &Unit, envs: &[String]) -> bool {
    envs.is_empty() || u.environment.as_ref().is_none_or(|e| envs.contains(e))
}

fn subject(filename: &str, namespace: &str, findings: Vec<Finding>) -> Subject {
    Subject {
        filename: filename.to_string(),
        namespace: namespace.to_string(),
        successes: 0,
        findings,
    }
}

fn finding(
    severity: Severity,
    source: &str,
    rule: &str,
    message: String,
    resource: &str,
) -> Finding {
    Finding {
        severity,
        source: source.into(),
        rule: rule.into(),
        message,
        resource: resource.into(),
        line: None,
        metadata: Value::Null,
    }
}

fn failure(source: &str, rule: &str, message: String, resource: &str) -> Finding {
    finding(Severity::Failure, source, rule, message, resource)
}

fn warning(source: &str, rule: &str, message: String, resource: &str) -> Finding {
    finding(Severity::Warning, source, rule, message, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_from_paths() {
        for (path, marker, want) in [
            (
                "environments/staging/web.yaml",
                "environments",
                Some("staging"),
            ),
            (
                "clusters/eu/environments/prod/a.yaml",
                "environments",
                Some("prod"),
            ),
            ("environments/web.yaml", "environments", None),
            ("apps/web/overlays/dev", "overlays", Some("dev")),
            ("apps/web/overlays", "overlays", None),
            ("apps/web/base", "overlays", None),
        ] {
            assert_eq!(env_after(path, marker).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn terraform_output_parsing() {
        let diff = "main.tf\n--- old/main.tf\n+++ new/main.tf\n@@ -1 +1 @@\n-a\n+b\nvars.tf\n--- old/vars.tf\n+++ new/vars.tf\n";
        assert_eq!(unformatted_files(diff), vec!["main.tf", "vars.tf"]);
        assert_eq!(unformatted_files("main.tf\n"), vec!["main.tf"]);
        assert!(needs_download(
            "Error: Failed to query available provider packages\nCould not retrieve the list"
        ));
        assert!(!needs_download(
            "Error: Argument or block definition required"
        ));
    }

    #[test]
    fn namespaces_follow_scope() {
        let mut objs = vec![
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}}),
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}),
            serde_json::json!({"apiVersion": "ml.example.com/v1", "kind": "Pool", "metadata": {"name": "p"}}),
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "mine"}}),
        ];
        let cluster = [(("ml.example.com".to_string(), "Pool".to_string()), false)].into();
        default_namespaces(&mut objs, "dest", &cluster);
        let ns: Vec<Option<&str>> = objs
            .iter()
            .map(|o| o["metadata"]["namespace"].as_str())
            .collect();
        assert_eq!(ns, vec![Some("dest"), None, None, Some("mine")]);
    }
}
