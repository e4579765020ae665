//! Helm charts in the repository, through `helm template`, only where the `helm` binary
//! exists.

use crate::exec::{which, Tool};
use crate::manifests::collect_tool_output;
use crate::paths::{canonical_root, check_size, inside_root, repo_relative, AppDir};
use crate::sources::{ref_value_file, RefRoots};
use crate::{validate, RenderError, RenderOptions};
use serde_json::Value;
use std::ffi::OsString;
use std::path::PathBuf;

fn bad(option: &str, value: &str, reason: &str) -> RenderError {
    RenderError::InvalidOption {
        option: option.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// A string that will be the value of an `--flag=value` argument: no control
/// characters and no leading `-`.
fn plain(option: &str, v: &str) -> Result<(), RenderError> {
    if v.is_empty() || v.starts_with('-') || v.chars().any(char::is_control) {
        return Err(bad(
            option,
            v,
            "must be non-empty, must not start with '-' and must not contain control characters",
        ));
    }
    Ok(())
}

fn str_field<'a>(helm: &'a Value, field: &str) -> Option<&'a str> {
    helm.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The directories, besides the chart's, holding value files and file parameters.
pub(crate) fn extra_inputs(app: &AppDir, helm: Option<&Value>) -> Vec<PathBuf> {
    let Some(helm) = helm else {
        return Vec::new();
    };
    let files = helm
        .get("valueFiles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    let params = helm
        .get("fileParameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("path").and_then(Value::as_str));
    files
        .chain(params)
        .filter_map(|f| app.dir.join(f).canonicalize().ok())
        .filter(|p| p.starts_with(&app.root))
        .filter_map(|p| p.parent().map(PathBuf::from))
        .collect()
}

pub(crate) fn render(
    app: &AppDir,
    helm: Option<&Value>,
    refs: &RefRoots,
    opts: &RenderOptions,
) -> Result<Vec<Value>, RenderError> {
    let rel = repo_relative(&app.root, &app.dir);
    let null = Value::Null;
    let helm = helm.unwrap_or(&null);
    let mut args: Vec<OsString> = vec!["template".into()];

    // Argo CD defaults the release name to the Application's name; the renderer does
    // not know it, so the caller sets releaseName (else the chart directory's name).
    let release = match str_field(helm, "releaseName") {
        Some(r) => r.to_string(),
        None => app
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_else(|| "release".into()),
    };
    validate::dns_label("source.helm.releaseName", &release)?;
    args.push(release.into());
    args.push(app.dir.as_os_str().to_owned());

    if let Some(ns) = str_field(helm, "namespace") {
        validate::dns_label("source.helm.namespace", ns)?;
        args.push(format!("--namespace={ns}").into());
    }
    if !helm
        .get("skipCrds")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        args.push("--include-crds".into());
    }
    if let Some(v) = str_field(helm, "kubeVersion") {
        plain("source.helm.kubeVersion", v)?;
        args.push(format!("--kube-version={v}").into());
    }
    for v in helm
        .get("apiVersions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        plain("source.helm.apiVersions entry", v)?;
        args.push(format!("--api-versions={v}").into());
    }

    let ignore_missing = helm
        .get("ignoreMissingValueFiles")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    for f in helm
        .get("valueFiles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        plain("source.helm.valueFiles entry", f)?;
        // `$NAME/path`: a file of another source's repository (a multi-source app's
        // `ref: NAME`), resolved inside that tree only.
        if let Some((ref_root, path)) =
            ref_value_file(f, refs, &format!("source.helm.valueFiles of {rel}"))?
        {
            let ref_root = canonical_root(&ref_root)?;
            let p = ref_root.join(&path);
            if !p.exists() {
                if ignore_missing {
                    continue;
                }
                return Err(RenderError::MissingReference {
                    kustomization: format!("source.helm.valueFiles of {rel}"),
                    entry: f.into(),
                });
            }
            let canon = inside_root(&ref_root, &p, &format!("value file {f:?}"))?;
            check_size(&canon, f, opts.max_file_bytes)?;
            let mut a = OsString::from("--values=");
            a.push(canon.as_os_str());
            args.push(a);
            continue;
        }
        if f.contains("://") {
            return Err(RenderError::Unsupported {
                what: format!("remote value file {f:?} (source.helm.valueFiles)"),
            });
        }
        let p = app.dir.join(f);
        if !p.exists() {
            if ignore_missing {
                continue;
            }
            return Err(RenderError::MissingReference {
                kustomization: format!("source.helm.valueFiles of {rel}"),
                entry: f.into(),
            });
        }
        let canon = inside_root(&app.root, &p, &format!("value file {f:?}"))?;
        check_size(
            &canon,
            &repo_relative(&app.root, &canon),
            opts.max_file_bytes,
        )?;
        let mut a = OsString::from("--values=");
        a.push(canon.as_os_str());
        args.push(a);
    }

    // Inline values (a YAML string, or valuesObject which wins) go through a private
    // temporary file outside the repository.
    let inline = match (helm.get("valuesObject"), str_field(helm, "values")) {
        (Some(obj @ Value::Object(_)), _) => Some(obj.clone()),
        (_, Some(text)) => {
            let v = mooring_core::yaml::parse_one(text).map_err(|source| RenderError::Yaml {
                file: "source.helm.values".into(),
                source,
            })?;
            (!v.is_null()).then_some(v)
        }
        _ => None,
    };
    let values_dir = match inline {
        Some(v) => {
            let dir = tempfile::tempdir().map_err(|e| RenderError::io("temporary directory", e))?;
            let file = dir.path().join("values.json");
            let text = serde_json::to_string(&v)
                .map_err(|e| RenderError::io(&file, std::io::Error::other(e)))?;
            std::fs::write(&file, text).map_err(|e| RenderError::io(&file, e))?;
            let mut a = OsString::from("--values=");
            a.push(file.as_os_str());
            args.push(a);
            Some(dir)
        }
        None => None,
    };

    for p in helm
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        let value = match p.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        plain("source.helm.parameters name", name)?;
        if name.contains('=') {
            return Err(bad(
                "source.helm.parameters name",
                name,
                "must not contain '='",
            ));
        }
        if value.chars().any(|c| c.is_control()) {
            return Err(bad(
                &format!("source.helm.parameters[{name}] value"),
                &value,
                "must not contain control characters",
            ));
        }
        let force = p
            .get("forceString")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // Helm splits --set on commas; escape them as Argo CD does.
        let value = value.replace('\\', "\\\\").replace(',', "\\,");
        let flag = if force { "--set-string" } else { "--set" };
        args.push(format!("{flag}={name}={value}").into());
    }
    for p in helm
        .get("fileParameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        let path = p.get("path").and_then(Value::as_str).unwrap_or_default();
        plain("source.helm.fileParameters name", name)?;
        plain("source.helm.fileParameters path", path)?;
        let canon = inside_root(
            &app.root,
            &app.dir.join(path),
            &format!("file parameter {path:?}"),
        )?;
        check_size(
            &canon,
            &repo_relative(&app.root, &canon),
            opts.max_file_bytes,
        )?;
        let mut a = OsString::from(format!("--set-file={name}="));
        a.push(canon.as_os_str());
        args.push(a);
    }

    let program: PathBuf = match &opts.helm {
        Some(p) if p.is_file() => p.clone(),
        Some(p) => {
            return Err(RenderError::HelmMissing {
                path: rel,
                detail: format!(" at {}", p.display()),
            })
        }
        None => which("helm").ok_or_else(|| RenderError::HelmMissing {
            path: rel.clone(),
            detail: " on PATH".into(),
        })?,
    };
    let out = Tool {
        program: &program,
        args,
        cwd: &app.dir,
        root: &app.root,
        timeout: opts.timeout,
        max_output: opts.max_output_bytes,
    }
    .run();
    drop(values_dir);
    collect_tool_output(&format!("helm template {rel}"), &out?)
}
