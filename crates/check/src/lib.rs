//! The `mooring check [REPO]` pipeline as a library: the CI compliance run of a platform
//! repository in one call, [`run`] ([`CheckOptions`] in, a [`Report`] out). The CLI only
//! parses arguments, prints the report in the format asked for and sets the exit code.
//!
//! # Modules
//!
//! * `units`: the file walk, Applications and the units to render, environments.
//! * `appset`: ApplicationSets expanded from the checkout ([`LocalInputs`]).
//! * `render`: rendering units (app-of-apps, orphan overlays), destination namespaces.
//! * `stages`: schema validation, built-in lints and unsupported fields of each render.
//! * `project`: the AppProject rules of `mooring_engine::project`, at CI time.
//! * `policy`: Gatekeeper (`mooring_policy::gate`, scoped by project as in the
//!   controller), conftest, Rego unit tests and gator suites.
//! * `terraform`: `terraform fmt` and `validate`.
//! * `report`: building findings and subjects of the report.
//!
//! A new built-in lint goes in `mooring_policy::lint` (it then runs here and wherever
//! lints run); a new stage is a module here called from [`run`]'s pipeline.
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
//!    rendered on its own, so an environment nobody deployed yet is still checked; so is
//!    REPO's own kustomization when no Application renders it (`mooring check deploy/`
//!    of a kustomize base).
//!    Multi-source Applications render each source that has a path. Namespaced objects
//!    rendered without a namespace get the Application's destination namespace, as Argo
//!    CD applies them.
//!    A render error is a `render` finding of that Application, never a crash.
//!    Every Application and ApplicationSet written in REPO, and every Application,
//!    ApplicationSet and Rollout rendered, is checked for fields Mooring does not act on
//!    (`stages::unsupported_findings`): `application/unsupported-field` warnings (what the
//!    controller reports as `UnsupportedFieldWarning`), `*/unknown-field` failures for
//!    fields Argo CD does not define, `rollout/unsupported-field` failures; and every
//!    rendered object's `argocd.argoproj.io/sync-options` annotation
//!    (`sync-option/unsupported` warnings).
//! 3. **Per object**: schema validation (`engine::schema`: built-in kinds from k8s-openapi,
//!    CRDs from the `openAPIV3Schema` of every CRD rendered or written in REPO, Gatekeeper
//!    constraints from their ConstraintTemplates; kinds with
//!    no schema are one `schema/skipped` warning per kind and Application) and the
//!    built-in lints (`policy::lint`), and the AppProject rules the controller enforces
//!    before a sync (`project::project_rules`: source repository, destination, each object's
//!    kind and namespace; `project/*` findings), with the projects written or rendered in
//!    REPO.
//! 4. **Policies**: `policy::policy_stage` (Gatekeeper templates and constraints, conftest
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

mod appset;
mod error;
mod policy;
mod project;
mod render;
mod report;
mod stages;
mod terraform;
mod units;

pub use appset::LocalInputs;
pub use error::CheckError;

use crate::project::{project_outside_control_plane, project_rules};
use crate::render::{
    default_namespaces, refused_path, render_all, Refused, RenderResult, Rendered,
};
use crate::report::{failure, subject, warning};
use crate::stages::{annotation_findings, check_objects, unsupported_findings};
use crate::units::{
    env_after, is_application, is_applicationset, is_yaml, looks_like_manifest, rel, unit_key,
    units_of, walk, wanted, Unit,
};
use mooring_core::project::AppProject;
use mooring_engine::project::ControlPlane;
use mooring_engine::schema::Crds;
use mooring_policy::lint::{self, LintOptions};
use mooring_policy::report::Report;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What to check, and how.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The platform repository (a directory).
    pub repo: PathBuf,
    /// Built-in lints turned off, besides those of `REPO/.mooring/check.yaml`.
    pub disable_lint: Vec<String>,
    /// Check only these environments (empty: all).
    pub environments: Vec<String>,
    /// The control-plane namespace and the other namespaces Applications are read from.
    pub control_plane: ControlPlane,
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

/// Check the repository of `options`: the whole pipeline of the crate docs, on a
/// link-checked export of it.
pub async fn run(options: &CheckOptions) -> Result<Report, CheckError> {
    let repo = std::fs::canonicalize(&options.repo).map_err(|source| CheckError::RepoMissing {
        path: options.repo.clone(),
        source,
    })?;
    if !repo.is_dir() {
        return Err(CheckError::NotADirectory { path: repo });
    }
    let mut disabled: BTreeSet<String> = options.disable_lint.iter().cloned().collect();
    disabled.extend(load_config(&repo)?.lints.disable);
    let unknown = lint::unknown_ids(&disabled);
    if !unknown.is_empty() {
        let known: Vec<&str> = lint::LINTS.iter().map(|(id, _)| *id).collect();
        return Err(CheckError::UnknownLint {
            ids: unknown.join(", "),
            known: known.join(", "),
        });
    }
    let control_plane = &options.control_plane;
    control_plane.validate().map_err(CheckError::ControlPlane)?;
    // Render from a link-checked export, as the controller does (see the crate docs).
    let export = tempfile::Builder::new()
        .prefix("mooring-check-")
        .tempdir()
        .map_err(|source| CheckError::TempDir {
            what: "the export",
            source,
        })?;
    let refused = mooring_source::export_dir(
        &repo,
        export.path(),
        &mooring_source::Limits::default(),
        &|name| name == ".git" || name == ".mooring",
    )
    .map_err(|source| CheckError::Export {
        path: repo.clone(),
        source,
    })?;
    let refused: Vec<Refused> = refused
        .into_iter()
        .map(|e| Refused {
            path: refused_path(&e),
            message: e.to_string(),
            too_large: matches!(e, mooring_source::SourceError::FileTooLarge { .. }),
        })
        .collect();
    check(
        export.path(),
        &options.environments,
        &LintOptions { disabled },
        control_plane,
        &refused,
    )
    .await
}

fn load_config(repo: &Path) -> Result<CheckConfig, CheckError> {
    let path = repo.join(".mooring").join("check.yaml");
    if !path.is_file() {
        return Ok(CheckConfig::default());
    }
    let text = std::fs::read_to_string(&path).map_err(|source| CheckError::ReadConfig {
        path: path.clone(),
        source,
    })?;
    let v = mooring_core::yaml::parse_one(&text).map_err(|source| CheckError::ParseConfig {
        path: path.clone(),
        source,
    })?;
    if v.is_null() {
        return Ok(CheckConfig::default());
    }
    serde_json::from_value(v).map_err(|source| CheckError::InvalidConfig { path, source })
}

/// The whole run (everything but output), on the exported tree `repo`.
async fn check(
    repo: &Path,
    envs: &[String],
    lint_opts: &LintOptions,
    control_plane: &ControlPlane,
    refused: &[Refused],
) -> Result<Report, CheckError> {
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
                        let invalid = |e: String| {
                            subject(
                                &rel,
                                "",
                                vec![failure(
                                    "applicationset",
                                    "applicationset/invalid",
                                    format!("ApplicationSet {set}: {e}"),
                                    "",
                                )],
                            )
                        };
                        match appset::generate_local(&d, repo) {
                            Ok(apps) => {
                                for a in apps {
                                    match units_of(&a, Some(&rel)) {
                                        Ok(u) => units.extend(u),
                                        Err(e) => report.subjects.push(invalid(e.to_string())),
                                    }
                                }
                            }
                            Err(e) => report.subjects.push(invalid(e.to_string())),
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
    // Applications whose source is another repository: not rendered here, but their
    // AppProject rules (source repository, destination) still apply and are checked below.
    let mut external: Vec<(Unit, String)> = Vec::new();
    let mut queue = units;
    let mut round = 0;
    while !queue.is_empty() && round < 8 {
        round += 1;
        eprintln!("check: rendering {} application(s)…", queue.len());
        let results = render_all(
            repo,
            std::mem::take(&mut queue),
            &opts,
            refused,
            control_plane,
        )
        .await?;
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
                RenderResult::External(why) => external.push((unit, why)),
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
    // Orphan overlays: overlays/<env> kustomizations no Application renders (and REPO's
    // own kustomization).
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
        // REPO itself a kustomization (`mooring check deploy/` of a base): rendered on
        // its own when no Application renders it.
        if rel_dir == "."
            && envs.is_empty()
            && !rendered_paths.contains(".")
            && !rendered_paths.contains("")
        {
            orphans.push(Unit {
                name: "kustomization .".into(),
                file: None,
                environment: None,
                namespace: None,
                app_namespace: None,
                source: mooring_core::app::ApplicationSource {
                    path: Some(".".into()),
                    ..Default::default()
                },
                project: None,
                destination: Default::default(),
            });
            continue;
        }
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
        for (unit, result) in render_all(repo, orphans, &opts, refused, control_plane).await? {
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
    for (unit, why) in external {
        let mut s = subject(
            unit.source.path.as_deref().unwrap_or(""),
            &unit.name,
            vec![warning("render", "render/external-source", why, "")],
        );
        let r = Rendered {
            unit,
            objects: Vec::new(),
        };
        project_rules(&r, &projects, &cluster_crds, control_plane, &mut s);
        report.subjects.push(s);
    }

    // 4. Policies.
    let policies = policy::policy_stage(repo, &files, &rendered);
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
            .extend(terraform::terraform_stage(repo, &tf_dirs).await?);
    }
    Ok(report)
}
