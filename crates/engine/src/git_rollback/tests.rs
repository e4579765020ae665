use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn why() -> Why {
    Why::new(
        "model-serving",
        "abc1234",
        "accuracy\ndrop",
        "alice",
        at("2026-03-04T05:06:07Z"),
    )
}

#[test]
fn branch_message_and_pr_text_carry_the_seed_fields() {
    assert_eq!(
        branch_name("model-serving", at("2026-03-04T05:06:07Z")),
        "rollback/model-serving/20260304_050607"
    );
    let w = why();
    assert_eq!(w.title(), "Rollback model-serving to abc1234");
    let m = w.commit_message(&[("1111111".into(), "bump".into())]);
    assert_eq!(
        m,
        "Rollback model-serving to abc1234\n\nReason: accuracy drop\nRollback initiated by: alice\nTimestamp: 2026-03-04T05:06:07Z\n\nReverted commits:\n- 1111111 bump\n"
    );
    let b = w.pr_body("main", "rollback/x/1", &[("1111111".into(), "bump".into())]);
    assert!(b.contains("**Reason:** accuracy drop"), "{b}");
    assert!(b.contains("### Pre-rollback checklist\n\n- [ ] "), "{b}");
    assert!(b.contains("### Post-rollback checklist\n\n- [ ] "), "{b}");
    assert!(b.contains("- 1111111 bump"), "{b}");
}

#[test]
fn pinned_revisions_are_shas() {
    assert!(pins_commit("0123456789abcdef0123456789abcdef01234567"));
    assert!(pins_commit("abc1234"));
    assert!(!pins_commit("main"));
    assert!(!pins_commit("HEAD"));
    assert!(!pins_commit("v1.2.3"));
}

const APPS: &str = "# the platform's apps\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: other\nspec:\n  source:\n    targetRevision: main\n---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: model-serving\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: https://git.example.com/ml/platform.git\n    targetRevision: \"1111111111111111111111111111111111111111\"  # pinned by CI\n    path: apps/serving\n";

#[test]
fn target_revision_is_edited_in_place() {
    let rev = "2222222222222222222222222222222222222222";
    let out = set_target_revision("apps.yaml", APPS, "model-serving", None, rev).expect("edit");
    assert_eq!(
        out,
        APPS.replace(
            "\"1111111111111111111111111111111111111111\"  # pinned by CI",
            &format!("\"{rev}\"  # pinned by CI")
        )
    );
    let multi = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: m}\nspec:\n  sources:\n  - repoURL: a\n    targetRevision: aaaaaaa\n  - targetRevision: bbbbbbb\n    repoURL: b\n";
    let out = set_target_revision("m.yaml", multi, "m", Some(1), "ccccccc").expect("edit");
    assert_eq!(out, multi.replace("bbbbbbb", "\"ccccccc\""));
}

#[test]
fn target_revision_edits_refuse_what_they_cannot_do_safely() {
    let e = set_target_revision("apps.yaml", APPS, "nope", None, "x").expect_err("absent");
    assert!(matches!(e, GitRollbackError::ApplicationNotInFile { .. }));
    assert!(e.to_string().contains("\"nope\""), "{e}");
    let flow = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: f}\nspec: {source: {repoURL: a, targetRevision: abc1234}}\n";
    let e = set_target_revision("f.yaml", flow, "f", None, "x").expect_err("flow");
    assert!(e.to_string().contains("flow-style"), "{e}");
    let no_rev = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: f}\nspec:\n  source:\n    repoURL: a\n";
    let e = set_target_revision("f.yaml", no_rev, "f", None, "x").expect_err("none");
    assert!(e.to_string().contains("/spec/source/targetRevision"), "{e}");
}

#[test]
fn forge_repositories_from_git_urls() {
    let r = forge_repo("https://github.com/acme/ml-platform.git").expect("https");
    assert_eq!(
        (r.base.as_str(), r.host.as_str(), r.path.as_str()),
        ("https://github.com", "github.com", "acme/ml-platform")
    );
    let r = forge_repo("git@gitlab.example.com:ml/team/platform.git").expect("scp");
    assert_eq!(
        (r.base.as_str(), r.path.as_str()),
        ("https://gitlab.example.com", "ml/team/platform")
    );
    let r = forge_repo("ssh://git@gitea.local:2222/ml/platform").expect("ssh");
    assert_eq!(
        (r.base.as_str(), r.path.as_str()),
        ("https://gitea.local", "ml/platform")
    );
    let r = forge_repo("http://127.0.0.1:8080/ml/platform.git").expect("http");
    assert_eq!(r.base, "http://127.0.0.1:8080");
    for bad in [
        "file:///srv/repo.git",
        "https://github.com/only",
        "https://h/a/../b",
    ] {
        let e = forge_repo(bad).expect_err(bad);
        assert!(e.to_string().contains(bad), "{e}");
    }
}

#[test]
fn file_diffs_are_unified() {
    let d = file_diff("a/x.yaml", Some(b"a: 2\n"), Some(b"a: 0\n"));
    assert_eq!(
        d,
        "--- a/a/x.yaml\n+++ b/a/x.yaml\n@@ -1 +1 @@\n-a: 2\n+a: 0\n"
    );
    let d = file_diff("n.yaml", None, Some(b"x\n"));
    assert!(d.starts_with("--- /dev/null\n+++ b/n.yaml\n"), "{d}");
    assert!(file_diff("b.bin", Some(&[0xff, 0xfe]), None).starts_with("Binary files"));
}

#[test]
fn the_write_back_branch_is_the_flag_or_the_tracked_branch() {
    assert_eq!(
        write_branch(Some("release"), Some("main")),
        Ok("release".into())
    );
    assert_eq!(
        write_branch(None, Some("refs/heads/main")),
        Ok("main".into())
    );
    assert_eq!(write_branch(None, Some(" main ")), Ok("main".into()));
    assert_eq!(write_branch(None, None), Err("HEAD".into()));
    assert_eq!(write_branch(None, Some("HEAD")), Err("HEAD".into()));
    assert_eq!(write_branch(None, Some("3f2a9c1")), Err("3f2a9c1".into()));
}
