//! The Terraform stage: `terraform fmt -check` and `terraform validate` of every
//! directory with `.tf` files, leaving the repository as it was.

use crate::error::CheckError;
use crate::report::{failure, subject, warning};
use crate::units::rel;
use mooring_policy::report::Subject;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Terraform checks of every directory with `.tf` files.
pub(crate) async fn terraform_stage(
    repo: &Path,
    dirs: &BTreeSet<PathBuf>,
) -> Result<Vec<Subject>, CheckError> {
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
        let data = tempfile::tempdir().map_err(|source| CheckError::TempDir {
            what: "terraform",
            source,
        })?;
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
                    .map_err(|_| CheckError::TerraformTimeout { args })?
                    .map_err(|source| CheckError::Terraform { args, source })
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
pub(crate) fn unformatted_files(stdout: &str) -> Vec<String> {
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
pub(crate) fn needs_download(err: &str) -> bool {
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

pub(crate) fn first_lines(s: &str, n: usize) -> String {
    s.trim().lines().take(n).collect::<Vec<_>>().join("\n")
}

pub(crate) fn which(bin: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
