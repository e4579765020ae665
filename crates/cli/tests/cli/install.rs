//! `mooring install`, the `deploy/` kustomize base and the Containerfile: the manifests are
//! the base (`kubectl kustomize deploy/`), a real API server accepts them (server-side dry
//! run, then a real apply, against the embedded cluster), `mooring check` is clean on
//! them, every container is hardened, and bad flags are usage errors.

use crate::{check, copy_dir, findings, kubectl, kubectl_ok, BinCluster};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `mooring install ARGS`: exit code, stdout, stderr.
fn install(args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .arg("install")
        .args(args)
        .output()
        .expect("mooring runs");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn install_ok(args: &[&str]) -> String {
    let (code, out, err) = install(args);
    assert_eq!(code, Some(0), "mooring install {args:?}: {err}");
    out
}

/// The objects of a YAML stream, sorted by (kind, namespace, name).
fn objects(yaml: &str) -> Vec<Value> {
    let mut v = mooring_core::yaml::parse_all(yaml).expect("YAML stream");
    let key = |o: &Value| {
        (
            o["kind"].as_str().unwrap_or_default().to_string(),
            o["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };
    v.sort_by_key(key);
    v
}

#[test]
fn install_is_the_kustomize_base_and_the_api_server_accepts_it() {
    let printed = install_ok(&[]);
    let deploy = repo_root().join("deploy");
    let kustomized = Command::new("kubectl")
        .arg("kustomize")
        .arg(&deploy)
        .output()
        .expect("kubectl must be installed (scripts/test installs it)");
    assert!(
        kustomized.status.success(),
        "{}",
        String::from_utf8_lossy(&kustomized.stderr)
    );
    assert_eq!(
        objects(&printed),
        objects(&String::from_utf8_lossy(&kustomized.stdout)),
        "`mooring install` and `kubectl kustomize deploy/` differ"
    );

    // The flags are an overlay: examples/install-ha is `--namespace mooring-system
    // --shards 3 --ha` written as one.
    let overlay = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo_root().join("examples/install-ha"))
        .output()
        .expect("kubectl");
    assert!(
        overlay.status.success(),
        "{}",
        String::from_utf8_lossy(&overlay.stderr)
    );
    assert_eq!(
        objects(&install_ok(&["--namespace", "mooring-system", "--shards", "3", "--ha"])),
        objects(&String::from_utf8_lossy(&overlay.stdout)),
        "`mooring install --namespace mooring-system --shards 3 --ha` and examples/install-ha differ"
    );

    let cluster = BinCluster::start();
    let kc = &cluster.kc;
    let dry = kubectl_ok(
        kc,
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&printed),
    );
    assert!(
        dry.contains("statefulset.apps/mooring-controller created (server dry run)"),
        "{dry}"
    );
    // Another namespace must exist before a dry run of objects in it, as with any API
    // server (a dry run creates nothing, not even the Namespace of the same stream).
    kubectl_ok(kc, &["create", "namespace", "mooring-system"], None);
    let ha = install_ok(&["--shards", "3", "--ha", "--namespace", "mooring-system"]);
    let dry = kubectl_ok(kc, &["apply", "--dry-run=server", "-f", "-"], Some(&ha));
    for line in [
        "poddisruptionbudget.policy/mooring-server created (server dry run)",
        "networkpolicy.networking.k8s.io/mooring-controller created (server dry run)",
        "clusterrolebinding.rbac.authorization.k8s.io/mooring-server created (server dry run)",
    ] {
        assert!(dry.contains(line), "{line}:\n{dry}");
    }
    // Applied for real: client-side, then server-side over it (no conflicts with the
    // client-side manager, as on a real API server), then again (nothing changes).
    kubectl_ok(kc, &["apply", "-f", "-"], Some(&ha));
    kubectl_ok(kc, &["apply", "--server-side", "-f", "-"], Some(&ha));
    let again = kubectl_ok(kc, &["apply", "-f", "-"], Some(&ha));
    assert!(
        again.contains("statefulset.apps/mooring-controller unchanged"),
        "{again}"
    );
    let sts: Value = serde_json::from_str(&kubectl_ok(
        kc,
        &[
            "get",
            "statefulset",
            "mooring-controller",
            "-n",
            "mooring-system",
            "-o",
            "json",
        ],
        None,
    ))
    .expect("json");
    assert_eq!(sts["spec"]["replicas"], 3);
    // The namespace transformer reached the bindings' subjects.
    let binding = kubectl(
        kc,
        &[
            "get",
            "clusterrolebinding",
            "mooring-controller",
            "-o",
            "jsonpath={.subjects[0].namespace}",
        ],
        None,
    );
    assert_eq!(String::from_utf8_lossy(&binding.stdout), "mooring-system");

    // Least privilege, as the API server's RBAC answers for the service accounts.
    let sa = |name: &str| format!("--as=system:serviceaccount:mooring-system:{name}");
    for (who, verb, what, ns, allowed) in [
        (
            "mooring-server",
            "create",
            "applications.argoproj.io",
            "team-a",
            true,
        ),
        (
            "mooring-server",
            "delete",
            "applicationsets.argoproj.io",
            "team-a",
            false,
        ),
        ("mooring-server", "delete", "deployments", "team-a", false),
        ("mooring-server", "get", "secrets", "mooring-system", true),
        ("mooring-server", "get", "secrets", "kube-system", false),
        ("mooring-server", "get", "secrets", "team-a", false),
        // The UI's views: live objects, logs and the rollout actions, read or patch only.
        ("mooring-server", "list", "pods", "team-a", true),
        ("mooring-server", "get", "pods/log", "team-a", true),
        (
            "mooring-server",
            "patch",
            "rollouts.argoproj.io",
            "team-a",
            true,
        ),
        (
            "mooring-server",
            "delete",
            "rollouts.argoproj.io",
            "team-a",
            false,
        ),
        ("mooring-server", "patch", "deployments", "team-a", false),
        (
            "mooring-server",
            "update",
            "configmaps",
            "mooring-system",
            false,
        ),
        (
            "mooring-controller",
            "delete",
            "deployments",
            "team-a",
            true,
        ),
        (
            "mooring-controller",
            "update",
            "leases.coordination.k8s.io",
            "mooring-system",
            true,
        ),
    ] {
        let o = kubectl(kc, &["auth", "can-i", verb, what, "-n", ns, &sa(who)], None);
        let answer = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert_eq!(
            answer,
            if allowed { "yes" } else { "no" },
            "{who} {verb} {what} -n {ns}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Every container runs non-root on a read-only root filesystem without privilege
/// escalation or capabilities, under seccomp RuntimeDefault, with requests and limits and
/// both probes; writable paths are emptyDirs.
#[test]
fn install_hardens_every_container() {
    for args in [&[][..], &["--shards", "3", "--ha"][..]] {
        let objs = objects(&install_ok(args));
        let mut containers = 0;
        for o in &objs {
            let Some(pod) = o.pointer("/spec/template/spec") else {
                continue;
            };
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{name}"
            );
            assert!(pod["securityContext"]["runAsUser"].as_u64().unwrap_or(0) > 0);
            let empty_dirs: Vec<&str> = pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["emptyDir"].is_object())
                .filter_map(|v| v["name"].as_str())
                .collect();
            for c in pod["containers"].as_array().expect("containers") {
                containers += 1;
                let sc = &c["securityContext"];
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
                assert_eq!(sc["runAsNonRoot"], true, "{name}");
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{name}"
                );
                assert!(sc["capabilities"].get("add").is_none(), "{name}");
                assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
                for what in ["requests", "limits"] {
                    for r in ["cpu", "memory"] {
                        assert!(
                            c["resources"][what][r].is_string(),
                            "{name}: resources.{what}.{r}"
                        );
                    }
                }
                assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{name}");
                assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{name}");
                let mounts: Vec<(&str, &str)> = c["volumeMounts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| Some((m["name"].as_str()?, m["mountPath"].as_str()?)))
                    .collect();
                assert!(
                    mounts.iter().any(|(_, p)| *p == "/tmp"),
                    "{name}: /tmp must be writable"
                );
                for (volume, path) in mounts {
                    assert!(
                        empty_dirs.contains(&volume),
                        "{name}: {path} is not an emptyDir"
                    );
                }
            }
        }
        assert_eq!(containers, 2, "{args:?}");
        // With --ha the server keeps one replica through a drain.
        if !args.is_empty() {
            let pdb = objs
                .iter()
                .find(|o| {
                    o["kind"] == "PodDisruptionBudget" && o["metadata"]["name"] == "mooring-server"
                })
                .expect("server PDB");
            assert_eq!(pdb["spec"]["minAvailable"], 1);
        }
    }
}

#[test]
fn install_bad_flags_exit_2() {
    for (args, says) in [
        (&["--shards", "0"][..], "--shards"),
        (&["--shards", "many"][..], "--shards"),
        (&["--namespace", "Mooring_System"][..], "--namespace"),
        (&["--namespace", ""][..], "--namespace"),
        (&["--image", ""][..], "--image"),
        (&["--replicas", "2"][..], "--replicas"),
    ] {
        let (code, out, err) = install(args);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(out.is_empty(), "{args:?} printed manifests");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// `mooring check deploy/`, and `mooring check` on a repository that deploys Mooring from
/// `deploy/` (Mooring managing itself): schemas and lints are clean; with the example platform's policies (images
/// only from its registries) the site's overlay pointing the image at its registry is
/// clean too.
#[test]
fn check_is_clean_on_the_deploy_base() {
    // The base itself: `mooring check deploy/` renders its kustomization.
    let (code, out, err) = check(&["-o", "json"], &repo_root().join("deploy"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(findings(&out).is_empty(), "{:?}", findings(&out));
    let objects = install_ok(&[]).matches("\nkind: ").count();
    assert!(
        err.contains(&format!("validating and linting {objects} object(s)")),
        "{err}"
    );

    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path();
    copy_dir(&repo_root().join("deploy"), &repo.join("deploy"));
    let app = |name: &str, path: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {name}, namespace: argocd}}\nspec:\n  project: default\n  source: {{repoURL: \"https://git.example.com/platform/mooring.git\", targetRevision: HEAD, path: {path}}}\n  destination: {{server: \"https://kubernetes.default.svc\", namespace: argocd}}\n"
        )
    };
    std::fs::write(repo.join("mooring.yaml"), app("mooring", "deploy")).expect("write");
    let (code, out, err) = check(&["-o", "json"], repo);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(findings(&out).is_empty(), "{:?}", findings(&out));

    copy_dir(
        &repo_root().join("examples/ml-platform/policies"),
        &repo.join("policies"),
    );
    std::fs::create_dir_all(repo.join("site")).expect("mkdir");
    std::fs::write(
        repo.join("site/kustomization.yaml"),
        "resources: [../deploy]\nimages:\n  - name: mooring\n    newName: registry.ml.example.com/platform/mooring\n",
    )
    .expect("write");
    std::fs::write(repo.join("mooring.yaml"), app("mooring", "site")).expect("write");
    let (code, out, err) = check(&["-o", "json"], repo);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(findings(&out).is_empty(), "{:?}", findings(&out));
}

/// No container engine runs in CI, so the Containerfile is checked by its rules: pinned
/// bases, a numeric non-root user, the tools the controller runs, the binary as entry
/// point, and a build context without `target/`.
#[test]
fn containerfile_is_pinned_and_non_root() {
    let text = std::fs::read_to_string(repo_root().join("Containerfile")).expect("Containerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let froms: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .copied()
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    for f in &froms {
        let image = f.split_whitespace().nth(1).expect("image");
        assert!(
            image.contains(':') && !image.ends_with(":latest"),
            "unpinned base {image}"
        );
    }
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    let uid: u32 = user
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .expect("numeric USER");
    assert!(uid > 0, "USER {user} is root");
    let last_from = text.rfind("\nFROM ").expect("runtime stage");
    let runtime = &text[last_from..];
    for tool in ["git", "/usr/local/bin/"] {
        assert!(runtime.contains(tool), "runtime stage lacks {tool}");
    }
    for tool in ["kustomize", "helm", "sha256sum -c"] {
        assert!(text.contains(tool), "no {tool}");
    }
    assert!(runtime.contains("ENTRYPOINT [\"/usr/local/bin/mooring\"]"));
    let ignore = std::fs::read_to_string(repo_root().join(".dockerignore")).expect(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target"));
}
