//! `RepoCache::first_parent_range`, `revert` and `push` against real Git: fixture
//! repositories built with the `git` CLI, served over file:// and over smart HTTP
//! (`git http-backend` with `http.receivepack`), checked with `git` afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};
use mooring_source::{
    validate_branch, CommitId, Credentials, FileEdit, Identity, RepoCache, RevertRequest,
    SourceError,
};
use mooring_testkit::GitHttpServer;

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args(["-c", "user.name=T", "-c", "user.email=t@example.invalid"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .context("running git: install the `git` package")?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// Write `files` in the work tree and commit them; returns the commit.
fn commit(work: &Path, msg: &str, files: &[(&str, &str)]) -> Result<CommitId> {
    for (path, content) in files {
        let p = work.join(path);
        std::fs::create_dir_all(p.parent().context("parent")?)?;
        std::fs::write(p, content)?;
    }
    git(work, &["add", "-A"])?;
    git(work, &["commit", "-q", "-m", msg])?;
    git(work, &["push", "-q", "origin", "HEAD:main"])?;
    Ok(git(work, &["rev-parse", "HEAD"])?.parse()?)
}

struct Repo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    work: PathBuf,
    bare: PathBuf,
    cache: RepoCache,
    c: Vec<CommitId>,
}

impl Repo {
    fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }
}

/// `c0`: a/x.yaml, b/y.yaml, shared/s.yaml; `c1` changes a; `c2` changes b; `c3` changes
/// a again; `c4` changes shared (line 1), `c5` changes shared's line 1 again.
fn fixture() -> Result<Repo> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("srv");
    let bare = root.join("repo.git");
    std::fs::create_dir_all(&bare)?;
    git(&bare, &["init", "-q", "--bare"])?;
    git(&bare, &["config", "http.receivepack", "true"])?;
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work)?;
    git(&work, &["init", "-q"])?;
    git(&work, &["remote", "add", "origin", &bare.to_string_lossy()])?;
    let c = vec![
        commit(
            &work,
            "initial",
            &[
                ("a/x.yaml", "a: 0\n"),
                ("b/y.yaml", "b: 0\n"),
                ("shared/s.yaml", "s: 0\nt: 0\n"),
            ],
        )?,
        commit(&work, "a one", &[("a/x.yaml", "a: 1\n")])?,
        commit(&work, "b one", &[("b/y.yaml", "b: 1\n")])?,
        commit(&work, "a two", &[("a/x.yaml", "a: 2\n")])?,
        commit(&work, "shared one", &[("shared/s.yaml", "s: 1\nt: 0\n")])?,
        commit(&work, "shared two", &[("shared/s.yaml", "s: 2\nt: 0\n")])?,
    ];
    let cache = RepoCache::new(tmp.path().join("cache"));
    Ok(Repo {
        _tmp: tmp,
        root,
        work,
        bare,
        cache,
        c,
    })
}

fn request(head: &CommitId, commits: Vec<CommitId>, write: bool) -> RevertRequest<'static> {
    let who = Identity {
        name: "Rollback Bot".into(),
        email: "bot@example.invalid".into(),
    };
    RevertRequest {
        head: head.clone(),
        commits,
        edits: vec![],
        message: "Rollback a to c0\n\nReason: test\n".into(),
        author: who.clone(),
        committer: who,
        time: 1_700_000_000,
        write,
    }
}

#[test]
fn range_reverts_only_the_chosen_commits_and_pushes_a_branch() -> Result<()> {
    let r = fixture()?;
    let url = r.url();
    let head = r.cache.resolve(&url, "main", &Credentials::none())?;
    assert_eq!(head, r.c[5]);
    let range = r.cache.first_parent_range(&url, &r.c[0], &head)?;
    let ids: Vec<_> = range.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, r.c[1..].to_vec());
    assert_eq!(range[0].summary, "a one");
    assert_eq!(range[0].changed, vec!["a/x.yaml".to_string()]);

    let done = r.cache.revert(
        &url,
        &request(&head, vec![r.c[3].clone(), r.c[1].clone()], true),
    )?;
    assert_eq!(done.changes.len(), 1);
    assert_eq!(done.changes[0].path, "a/x.yaml");
    assert_eq!(done.changes[0].before.as_deref(), Some(&b"a: 2\n"[..]));
    assert_eq!(done.changes[0].after.as_deref(), Some(&b"a: 0\n"[..]));

    r.cache.push(
        &url,
        &done.commit,
        "rollback/a/20240101_000000",
        &Credentials::none(),
    )?;
    let show = |rev: &str| git(&r.bare, &["show", rev]);
    assert_eq!(show("rollback/a/20240101_000000:a/x.yaml")?, "a: 0");
    assert_eq!(show("rollback/a/20240101_000000:b/y.yaml")?, "b: 1");
    assert_eq!(
        git(&r.bare, &["rev-parse", "rollback/a/20240101_000000^"])?,
        head.as_str()
    );
    let message = git(
        &r.bare,
        &[
            "log",
            "-1",
            "--format=%an <%ae>%n%B",
            "rollback/a/20240101_000000",
        ],
    )?;
    assert!(
        message.starts_with("Rollback Bot <bot@example.invalid>\nRollback a to c0"),
        "{message}"
    );
    Ok(())
}

#[test]
fn a_conflicting_revert_names_the_files_and_stores_nothing() -> Result<()> {
    let r = fixture()?;
    let url = r.url();
    let head = r.cache.resolve(&url, "main", &Credentials::none())?;
    // Reverting "shared one" alone conflicts with "shared two" (same line).
    let err = r
        .cache
        .revert(&url, &request(&head, vec![r.c[4].clone()], true))
        .expect_err("conflict");
    match &err {
        SourceError::RevertConflict { commit, paths, .. } => {
            assert_eq!(commit, r.c[4].as_str());
            assert_eq!(paths, &vec!["shared/s.yaml".to_string()]);
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert!(err.to_string().contains("shared/s.yaml"), "{err}");
    Ok(())
}

#[test]
fn a_dry_run_writes_nothing_to_the_cache() -> Result<()> {
    let r = fixture()?;
    let url = r.url();
    let head = r.cache.resolve(&url, "main", &Credentials::none())?;
    let dry = r
        .cache
        .revert(&url, &request(&head, vec![r.c[3].clone()], false))?;
    assert_eq!(dry.changes[0].after.as_deref(), Some(&b"a: 1\n"[..]));
    // The commit was never stored, so there is nothing to push.
    let err = r
        .cache
        .push(&url, &dry.commit, "rollback/a/dry", &Credentials::none())
        .expect_err("nothing stored");
    assert!(matches!(err, SourceError::Push { .. }), "{err}");
    assert!(git(&r.bare, &["branch", "--list", "rollback/*"])?.is_empty());
    // The same revert, written, is the same commit (deterministic with a fixed time).
    let wet = r
        .cache
        .revert(&url, &request(&head, vec![r.c[3].clone()], true))?;
    assert_eq!(wet.commit, dry.commit);
    Ok(())
}

#[test]
fn edits_land_in_the_same_commit() -> Result<()> {
    let r = fixture()?;
    let url = r.url();
    let head = r.cache.resolve(&url, "main", &Credentials::none())?;
    let edit = |old: &[u8]| -> Result<Vec<u8>, String> {
        Ok(String::from_utf8_lossy(old)
            .replace("b: 1", "b: pinned")
            .into_bytes())
    };
    let mut req = request(&head, vec![r.c[3].clone()], false);
    req.edits.push(FileEdit {
        path: "./b/y.yaml".into(),
        edit: &edit,
    });
    let done = r.cache.revert(&url, &req)?;
    let paths: Vec<_> = done.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["a/x.yaml", "b/y.yaml"]);
    assert_eq!(done.changes[1].after.as_deref(), Some(&b"b: pinned\n"[..]));

    let mut req = request(&head, vec![r.c[3].clone()], false);
    req.edits.push(FileEdit {
        path: "../etc/passwd".into(),
        edit: &edit,
    });
    let err = r.cache.revert(&url, &req).expect_err("path refused");
    assert!(matches!(err, SourceError::InvalidPath { .. }), "{err}");
    assert_eq!(
        r.cache.read_file(&url, &head, "b/y.yaml")?.as_deref(),
        Some(&b"b: 1\n"[..])
    );
    assert_eq!(r.cache.read_file(&url, &head, "nope.yaml")?, None);
    Ok(())
}

#[test]
fn a_target_off_the_branch_is_refused() -> Result<()> {
    let r = fixture()?;
    let url = r.url();
    git(&r.work, &["checkout", "-q", "-b", "side", r.c[1].as_str()])?;
    let side = commit(&r.work, "side", &[("a/x.yaml", "side\n")]);
    // `commit` pushes HEAD to main, which is refused as a non-fast-forward: push the
    // side branch itself instead.
    assert!(side.is_err());
    git(&r.work, &["push", "-q", "origin", "side"])?;
    let side = r.cache.resolve(&url, "side", &Credentials::none())?;
    let head = r.cache.resolve(&url, "main", &Credentials::none())?;
    let err = r
        .cache
        .first_parent_range(&url, &side, &head)
        .expect_err("not an ancestor");
    assert!(matches!(err, SourceError::NotAnAncestor { .. }), "{err}");
    assert!(err.to_string().contains(side.as_str()), "{err}");
    Ok(())
}

#[test]
fn a_push_onto_a_branch_that_moved_is_rejected() -> Result<()> {
    let r = fixture()?;
    let url = r.url();
    let head = r.cache.resolve(&url, "main", &Credentials::none())?;
    let done = r
        .cache
        .revert(&url, &request(&head, vec![r.c[3].clone()], true))?;
    commit(&r.work, "meanwhile", &[("b/y.yaml", "b: 9\n")])?;
    let err = r
        .cache
        .push(&url, &done.commit, "main", &Credentials::none())
        .expect_err("moved");
    assert!(matches!(err, SourceError::PushRejected { .. }), "{err}");
    assert_eq!(git(&r.bare, &["show", "main:b/y.yaml"])?, "b: 9");
    Ok(())
}

#[test]
fn push_over_http_sends_the_secret_credentials_and_hides_them() -> Result<()> {
    let r = fixture()?;
    let server = GitHttpServer::start(&r.root, Some(("alice", "s3cret")))?;
    let url = server.url("repo.git");
    let creds = Credentials::basic("alice", "s3cret");
    let head = r.cache.resolve(&url, "main", &creds)?;
    let done = r
        .cache
        .revert(&url, &request(&head, vec![r.c[3].clone()], true))?;
    r.cache
        .push(&url, &done.commit, "rollback/a/http", &creds)?;
    assert_eq!(git(&r.bare, &["show", "rollback/a/http:a/x.yaml"])?, "a: 1");

    let err = r
        .cache
        .push(
            &url,
            &done.commit,
            "rollback/a/http2",
            &Credentials::basic("alice", "wrong"),
        )
        .expect_err("wrong password");
    assert!(matches!(err, SourceError::AuthFailed { .. }), "{err}");
    assert!(!err.to_string().contains("wrong"), "{err}");
    Ok(())
}

#[test]
fn hostile_branch_names_and_urls_are_refused() -> Result<()> {
    for bad in ["-f", "a..b", "refs/heads/x", "a b", "x~1", "", "a:b"] {
        let err = validate_branch(bad).expect_err(bad);
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    validate_branch("rollback/model-serving/20240101_000000")?;
    let r = fixture()?;
    let c = r.c[0].clone();
    let err = r
        .cache
        .push("ext::sh -c touch% /tmp/x", &c, "main", &Credentials::none())
        .expect_err("refused");
    assert!(matches!(err, SourceError::InvalidUrl { .. }), "{err}");
    Ok(())
}

/// `update_branch` racing a human: the first attempt's push is refused (someone
/// committed in between), the edit is computed again from the new head, and both
/// commits end up on the branch.
#[test]
fn update_branch_recomputes_the_edit_after_a_concurrent_commit() -> Result<()> {
    use mooring_source::{BranchEdit, UpdateOptions};
    let r = fixture()?;
    let url = r.url();
    let who = Identity {
        name: "Image Bot".into(),
        email: "bot@example.invalid".into(),
    };
    let mut seen = Vec::new();
    let mut checked = 0;
    let done = r
        .cache
        .update_branch(
            &url,
            &Credentials::none(),
            &UpdateOptions {
                branch: "main",
                author: &who,
                attempts: 3,
            },
            |cache, head| {
                let b = cache.read_file(&url, head, "b/y.yaml")?.unwrap_or_default();
                seen.push(String::from_utf8_lossy(&b).to_string());
                if seen.len() == 1 {
                    // A human pushes between our read and our push.
                    commit(&r.work, "human", &[("b/y.yaml", "b: 7\n")]).expect("human commit");
                }
                Ok(Some(BranchEdit {
                    files: vec![("a/x.yaml".into(), b"a: bot\n".to_vec())],
                    message: "bot edit\n".into(),
                }))
            },
            |_| {
                checked += 1;
                Ok(())
            },
        )?
        .expect("a change");
    assert_eq!(done.attempts, 2);
    assert_eq!(
        checked, 2,
        "every attempt's commit is checked before its push"
    );
    assert_eq!(seen, vec!["b: 1\n".to_string(), "b: 7\n".to_string()]);
    assert_eq!(git(&r.bare, &["show", "main:b/y.yaml"])?, "b: 7");
    assert_eq!(git(&r.bare, &["show", "main:a/x.yaml"])?, "a: bot");
    assert_eq!(
        git(&r.bare, &["log", "-1", "--format=%s", "main"])?,
        "bot edit"
    );
    assert_eq!(
        git(&r.bare, &["log", "-1", "--format=%s", "main~1"])?,
        "human"
    );
    // A refused check pushes nothing.
    let before = git(&r.bare, &["rev-parse", "main"])?;
    let err = r
        .cache
        .update_branch(
            &url,
            &Credentials::none(),
            &UpdateOptions {
                branch: "main",
                author: &who,
                attempts: 3,
            },
            |_, _| {
                Ok(Some(BranchEdit {
                    files: vec![("a/x.yaml".into(), b"a: forbidden\n".to_vec())],
                    message: "forbidden\n".into(),
                }))
            },
            |c| Err(format!("policy refused {c}")),
        )
        .expect_err("refused");
    assert!(matches!(err, SourceError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("policy refused"), "{err}");
    assert_eq!(git(&r.bare, &["rev-parse", "main"])?, before);
    Ok(())
}
