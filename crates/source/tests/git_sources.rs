//! Integration tests for `mooring_source` against real Git: fixture repositories built with
//! the `git` CLI, served over file://, over smart HTTP by `git http-backend` behind a small
//! HTTP/1.1 server on 127.0.0.1, and over ssh by a loopback `sshd` (Debian's
//! openssh-server). Needs the `git`, `openssh-client` and `openssh-server` packages.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;
use mooring_source::{CommitId, Credentials, Limits, RepoCache, SourceError};
use mooring_testkit::GitHttpServer;

// ---------------------------------------------------------------------------------------
// harness
// ---------------------------------------------------------------------------------------

/// Run `git` hermetically (no global or system configuration) in `dir`.
fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Mooring Test",
            "-c",
            "user.email=test@mooring.invalid",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .output()
        .context("running git: install the `git` package")?;
    if !out.status.success() {
        bail!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

fn write(root: &Path, rel: &str, content: &[u8]) -> Result<()> {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().context("has parent")?)?;
    std::fs::write(p, content)?;
    Ok(())
}

fn symlink(root: &Path, rel: &str, target: &str) -> Result<()> {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().context("has parent")?)?;
    std::os::unix::fs::symlink(target, p)?;
    Ok(())
}

/// The fixture repository:
///
/// * `c1` (tag `v1`, annotated; tag `light`, lightweight): apps/serving/{deploy,svc}.yaml,
///   apps/training/job.yaml, base/kustomization.yaml, README.md
/// * `c2` = `main`: deploy.yaml changed, svc.yaml deleted, links inside the repository:
///   apps/serving/base -> ../../base (a directory), apps/serving/readme -> ../../README.md
/// * `c3` = `feature` (from c2): hostile content — apps/evil/escape -> ../../../etc,
///   apps/abs/passwd -> /etc/passwd, apps/loop/self -> ., apps/chain/{a->b, b->a},
///   apps/huge/big.bin (2 MiB)
struct Fixture {
    tmp: tempfile::TempDir,
    work: PathBuf,
    /// The bare repository served to Mooring.
    bare: PathBuf,
    c1: String,
    c2: String,
    c3: String,
}

impl Fixture {
    fn new() -> Result<Self> {
        let tmp = tempfile::tempdir()?;
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work)?;
        git(&work, &["init", "-q"])?;
        write(&work, "README.md", b"# ml platform\n")?;
        write(&work, "base/kustomization.yaml", b"resources: []\n")?;
        write(
            &work,
            "apps/serving/deploy.yaml",
            b"kind: Deployment\nversion: 1\n",
        )?;
        write(&work, "apps/serving/svc.yaml", b"kind: Service\n")?;
        write(&work, "apps/training/job.yaml", b"kind: Job\n")?;
        git(&work, &["add", "-A"])?;
        git(&work, &["commit", "-q", "-m", "c1"])?;
        let c1 = git(&work, &["rev-parse", "HEAD"])?;
        git(&work, &["tag", "-a", "v1", "-m", "release 1"])?;
        git(&work, &["tag", "light"])?;

        write(
            &work,
            "apps/serving/deploy.yaml",
            b"kind: Deployment\nversion: 2\n",
        )?;
        std::fs::remove_file(work.join("apps/serving/svc.yaml"))?;
        symlink(&work, "apps/serving/base", "../../base")?;
        symlink(&work, "apps/serving/readme", "../../README.md")?;
        git(&work, &["add", "-A"])?;
        git(&work, &["commit", "-q", "-m", "c2"])?;
        let c2 = git(&work, &["rev-parse", "HEAD"])?;

        git(&work, &["checkout", "-q", "-b", "feature"])?;
        symlink(&work, "apps/evil/escape", "../../../etc")?;
        write(&work, "apps/evil/ok.yaml", b"kind: ConfigMap\n")?;
        symlink(&work, "apps/abs/passwd", "/etc/passwd")?;
        symlink(&work, "apps/loop/self", ".")?;
        symlink(&work, "apps/chain/a", "b")?;
        symlink(&work, "apps/chain/b", "a")?;
        write(&work, "apps/huge/big.bin", &vec![b'x'; 2 << 20])?;
        write(&work, "apps/many/1.yaml", b"a: 1\n")?;
        write(&work, "apps/many/2.yaml", b"a: 2\n")?;
        write(&work, "apps/many/3.yaml", b"a: 3\n")?;
        git(&work, &["add", "-A"])?;
        git(&work, &["commit", "-q", "-m", "c3 hostile"])?;
        let c3 = git(&work, &["rev-parse", "HEAD"])?;
        git(&work, &["checkout", "-q", "main"])?;

        let srv = tmp.path().join("srv");
        std::fs::create_dir_all(&srv)?;
        git(
            &srv,
            &[
                "clone",
                "-q",
                "--bare",
                work.to_str().context("utf-8")?,
                "repo.git",
            ],
        )?;
        let bare = srv.join("repo.git");
        Ok(Fixture {
            tmp,
            work,
            bare,
            c1,
            c2,
            c3,
        })
    }

    fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    fn cache(&self) -> Result<(tempfile::TempDir, RepoCache)> {
        let dir = tempfile::tempdir()?;
        let cache = RepoCache::new(dir.path().join("cache"));
        Ok((dir, cache))
    }

    /// Commit a change in the work tree and push it to the served repository.
    fn push_change(&self, rel: &str, content: &[u8]) -> Result<String> {
        write(&self.work, rel, content)?;
        git(&self.work, &["add", "-A"])?;
        git(&self.work, &["commit", "-q", "-m", "change"])?;
        git(
            &self.work,
            &["push", "-q", self.bare.to_str().context("utf-8")?, "main"],
        )?;
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

fn cid(s: &str) -> CommitId {
    s.parse().expect("a full commit id")
}

fn names(files: &[mooring_source::TreeFile]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------
// resolve
// ---------------------------------------------------------------------------------------

fn check_all_revisions(f: &Fixture, cache: &RepoCache, url: &str) -> Result<()> {
    let none = Credentials::none();
    assert_eq!(cache.resolve(url, "main", &none)?.as_str(), f.c2);
    assert_eq!(cache.resolve(url, "HEAD", &none)?.as_str(), f.c2);
    assert_eq!(cache.resolve(url, "", &none)?.as_str(), f.c2);
    assert_eq!(cache.resolve(url, "feature", &none)?.as_str(), f.c3);
    assert_eq!(
        cache.resolve(url, "refs/heads/feature", &none)?.as_str(),
        f.c3
    );
    // annotated tag peels to its commit; lightweight tag too
    assert_eq!(cache.resolve(url, "v1", &none)?.as_str(), f.c1);
    assert_eq!(cache.resolve(url, "light", &none)?.as_str(), f.c1);
    assert_eq!(cache.resolve(url, &f.c1, &none)?.as_str(), f.c1);
    assert_eq!(
        cache.resolve(url, &f.c3.to_uppercase(), &none)?.as_str(),
        f.c3
    );
    assert_eq!(cache.resolve(url, &f.c2[..8], &none)?.as_str(), f.c2);
    Ok(())
}

#[test]
fn resolve_branch_tag_sha_head_over_file_url() -> Result<()> {
    let f = Fixture::new()?;
    let (_d, cache) = f.cache()?;
    check_all_revisions(&f, &cache, &f.file_url())
}

#[test]
fn resolve_branch_tag_sha_head_over_http() -> Result<()> {
    let f = Fixture::new()?;
    let server = GitHttpServer::start(&f.tmp.path().join("srv"), None)?;
    let (_d, cache) = f.cache()?;
    check_all_revisions(&f, &cache, &server.url("repo.git"))?;
    assert!(server.requests.load(Ordering::SeqCst) > 0);
    Ok(())
}

#[test]
fn known_full_sha_is_answered_from_the_cache_without_fetching() -> Result<()> {
    let f = Fixture::new()?;
    let server = GitHttpServer::start(&f.tmp.path().join("srv"), None)?;
    let (_d, cache) = f.cache()?;
    let url = server.url("repo.git");
    cache.resolve(&url, "main", &Credentials::none())?;
    let before = server.requests.load(Ordering::SeqCst);
    assert_eq!(
        cache.resolve(&url, &f.c1, &Credentials::none())?.as_str(),
        f.c1
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), before);
    Ok(())
}

#[test]
fn a_new_push_is_seen_by_the_next_resolve() -> Result<()> {
    let f = Fixture::new()?;
    let (_d, cache) = f.cache()?;
    let url = f.file_url();
    assert_eq!(
        cache.resolve(&url, "main", &Credentials::none())?.as_str(),
        f.c2
    );
    let c4 = f.push_change("apps/training/job.yaml", b"kind: Job\nversion: 4\n")?;
    let resolved = cache.resolve(&url, "main", &Credentials::none())?;
    assert_eq!(resolved.as_str(), c4);
    assert_eq!(
        cache.changed_paths(&url, &cid(&f.c2), &resolved)?,
        vec!["apps/training/job.yaml"]
    );
    Ok(())
}

#[test]
fn missing_commit_and_branch_are_clear_errors() -> Result<()> {
    let f = Fixture::new()?;
    let (_d, cache) = f.cache()?;
    let url = f.file_url();
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let err = cache
        .resolve(&url, sha, &Credentials::none())
        .expect_err("no such commit");
    assert!(
        matches!(err, SourceError::RevisionNotFound { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(sha) && msg.contains(&url) && msg.contains("not found"),
        "{msg}"
    );

    let err = cache
        .resolve(&url, "no-such-branch", &Credentials::none())
        .expect_err("no such branch");
    assert!(
        err.to_string().contains("\"no-such-branch\" not found"),
        "{err}"
    );
    let err = cache
        .resolve(&url, "deadbee", &Credentials::none())
        .expect_err("no such short sha");
    assert!(
        matches!(err, SourceError::RevisionNotFound { .. }),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn unreachable_server_is_a_clear_error() -> Result<()> {
    let f = Fixture::new()?;
    let (_d, cache) = f.cache()?;
    let url = format!("http://127.0.0.1:{}/repo.git", free_port()?);
    let err = cache
        .resolve(&url, "main", &Credentials::none())
        .expect_err("nothing listens there");
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");

    let missing = format!("file://{}/nope.git", f.tmp.path().display());
    let err = cache
        .resolve(&missing, "main", &Credentials::none())
        .expect_err("no repository there");
    assert!(
        matches!(err, SourceError::RepositoryNotFound { .. }),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn injection_urls_are_refused_before_any_transport_runs() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let marker = tmp.path().join("pwned");
    let cache = RepoCache::new(tmp.path().join("cache"));
    for url in [
        format!("-oProxyCommand=touch {}", marker.display()),
        format!("ext::sh -c touch% {}", marker.display()),
        "ssh://-oProxyCommand=touch/repo".to_string(),
        "git@-oProxyCommand=x:repo".to_string(),
        tmp.path().display().to_string(),
        "git://127.0.0.1/repo".to_string(),
    ] {
        let err = cache
            .resolve(&url, "main", &Credentials::none())
            .expect_err("refused");
        assert!(
            matches!(err, SourceError::InvalidUrl { .. }),
            "{url}: {err:?}"
        );
    }
    assert!(!marker.exists());
    assert!(!tmp.path().join("cache").exists(), "nothing was cloned");
    Ok(())
}

#[test]
fn basic_auth_over_http() -> Result<()> {
    let f = Fixture::new()?;
    let server = GitHttpServer::start(&f.tmp.path().join("srv"), Some(("alice", "s3cret")))?;
    let url = server.url("repo.git");

    let (_d1, cache) = f.cache()?;
    let err = cache
        .resolve(&url, "main", &Credentials::none())
        .expect_err("credentials required");
    assert!(matches!(err, SourceError::AuthFailed { .. }), "{err:?}");

    let err = cache
        .resolve(&url, "main", &Credentials::basic("alice", "wrong"))
        .expect_err("wrong password");
    assert!(matches!(err, SourceError::AuthFailed { .. }), "{err:?}");
    assert!(
        !err.to_string().contains("wrong"),
        "password must not leak: {err}"
    );

    let got = cache.resolve(&url, "main", &Credentials::basic("alice", "s3cret"))?;
    assert_eq!(got.as_str(), f.c2);

    // credentials from an Argo CD repository Secret
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "repo", "labels": {"argocd.argoproj.io/secret-type": "repository"}},
        "data": {"url": b64(&url), "username": b64("alice"), "password": b64("s3cret")}
    });
    let (secret_url, creds) = Credentials::from_repository_secret(&secret)?;
    let (_d2, fresh) = f.cache()?;
    assert_eq!(fresh.resolve(&secret_url, "v1", &creds)?.as_str(), f.c1);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// read_tree, export, changed_paths
// ---------------------------------------------------------------------------------------

#[test]
fn read_tree_at_two_commits() -> Result<()> {
    let f = Fixture::new()?;
    let (_d, cache) = f.cache()?;
    let url = f.file_url();
    cache.resolve(&url, "main", &Credentials::none())?;
    let limits = Limits::default();

    let at_c1 = cache.read_tree(&url, &cid(&f.c1), "apps/serving", &limits)?;
    assert_eq!(names(&at_c1), vec!["deploy.yaml", "svc.yaml"]);
    assert_eq!(at_c1[0].data, b"kind: Deployment\nversion: 1\n");

    let at_c2 = cache.read_tree(&url, &cid(&f.c2), "./apps/serving/", &limits)?;
    assert_eq!(
        names(&at_c2),
        vec!["base/kustomization.yaml", "deploy.yaml", "readme"]
    );
    assert_eq!(at_c2[1].data, b"kind: Deployment\nversion: 2\n");
    // links inside the repository are followed
    assert_eq!(at_c2[0].data, b"resources: []\n");
    assert_eq!(at_c2[2].data, b"# ml platform\n");

    // the whole repository, and a path that goes through a link
    let root = cache.read_tree(&url, &cid(&f.c1), "", &limits)?;
    assert_eq!(root.len(), 5);
    let via_link = cache.read_tree(&url, &cid(&f.c2), "apps/serving/base", &limits)?;
    assert_eq!(names(&via_link), vec!["kustomization.yaml"]);

    let err = cache
        .read_tree(&url, &cid(&f.c1), "apps/nope", &limits)
        .expect_err("missing path");
    assert!(matches!(err, SourceError::PathNotFound { .. }), "{err:?}");
    let err = cache
        .read_tree(&url, &cid(&f.c1), "README.md", &limits)
        .expect_err("a file");
    assert!(matches!(err, SourceError::NotADirectory { .. }), "{err:?}");
    for bad in ["../x", "apps/../../etc", "/etc"] {
        let err = cache
            .read_tree(&url, &cid(&f.c1), bad, &limits)
            .expect_err("refused path");
        assert!(
            matches!(err, SourceError::InvalidPath { .. }),
            "{bad}: {err:?}"
        );
    }
    Ok(())
}

#[test]
fn read_tree_needs_a_fetched_commit() -> Result<()> {
    let f = Fixture::new()?;
    let (_d, cache) = f.cache()?;
    let err = cache
        .read_tree(&f.file_url(), &cid(&f.c1), "", &Limits::default())
        .expect_err("nothing fetched");
    assert!(
        matches!(err, SourceError::CommitUnavailable { .. }),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn changed_paths_between_commits() -> Result<()> {
    let f = Fixture::new()?;
    let (_d, cache) = f.cache()?;
    let url = f.file_url();
    cache.resolve(&url, "feature", &Credentials::none())?;
    assert_eq!(
        cache.changed_paths(&url, &cid(&f.c1), &cid(&f.c2))?,
        vec![
            "apps/serving/base",
            "apps/serving/deploy.yaml",
            "apps/serving/readme",
            "apps/serving/svc.yaml"
        ]
    );
    let c2_to_c3 = cache.changed_paths(&url, &cid(&f.c2), &cid(&f.c3))?;
    assert!(
        c2_to_c3.iter().all(|p| !p.starts_with("apps/serving")),
        "{c2_to_c3:?}"
    );
    assert!(c2_to_c3.contains(&"apps/huge/big.bin".to_string()));
    assert!(cache
        .changed_paths(&url, &cid(&f.c2), &cid(&f.c2))?
        .is_empty());
    Ok(())
}

#[test]
fn symlinks_leaving_the_repository_are_refused() -> Result<()> {
    let f = Fixture::new()?;
    let (_d, cache) = f.cache()?;
    let url = f.file_url();
    cache.resolve(&url, "feature", &Credentials::none())?;
    let limits = Limits::default();
    let c3 = cid(&f.c3);

    let err = cache
        .read_tree(&url, &c3, "apps/evil", &limits)
        .expect_err("escapes");
    match &err {
        SourceError::SymlinkEscapes { link, target } => {
            assert_eq!(link, "apps/evil/escape");
            assert_eq!(target, "../../../etc");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("apps/evil/escape"), "{err}");

    let err = cache
        .read_tree(&url, &c3, "apps/abs", &limits)
        .expect_err("absolute");
    assert!(
        matches!(&err, SourceError::SymlinkEscapes { link, .. } if link == "apps/abs/passwd"),
        "{err:?}"
    );
    let err = cache
        .read_tree(&url, &c3, "apps/loop", &limits)
        .expect_err("cycle");
    assert!(
        matches!(&err, SourceError::SymlinkLoop { link, .. } if link == "apps/loop/self"),
        "{err:?}"
    );
    let err = cache
        .read_tree(&url, &c3, "apps/chain", &limits)
        .expect_err("a <-> b");
    assert!(matches!(&err, SourceError::SymlinkLoop { .. }), "{err:?}");

    // exporting the hostile commit fails as a whole and writes nothing outside dest
    let dest = tempfile::tempdir()?;
    let err = cache
        .export(&url, &c3, dest.path(), &limits)
        .expect_err("hostile tree");
    assert!(
        matches!(
            err,
            SourceError::SymlinkEscapes { .. } | SourceError::SymlinkLoop { .. }
        ),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn oversized_files_and_too_many_files_are_refused() -> Result<()> {
    let f = Fixture::new()?;
    let (_d, cache) = f.cache()?;
    let url = f.file_url();
    cache.resolve(&url, "feature", &Credentials::none())?;
    let c3 = cid(&f.c3);
    let small = Limits {
        max_file_bytes: 1 << 20,
        ..Limits::default()
    };
    let err = cache
        .read_tree(&url, &c3, "apps/huge", &small)
        .expect_err("2 MiB > 1 MiB");
    match &err {
        SourceError::FileTooLarge { path, size, limit } => {
            assert_eq!(path, "apps/huge/big.bin");
            assert_eq!(*size, 2 << 20);
            assert_eq!(*limit, 1 << 20);
        }
        other => panic!("unexpected {other:?}"),
    }
    let few = Limits {
        max_files: 2,
        ..Limits::default()
    };
    let err = cache
        .read_tree(&url, &c3, "apps/many", &few)
        .expect_err("3 files > 2");
    assert!(
        matches!(err, SourceError::TooManyFiles { limit: 2, .. }),
        "{err:?}"
    );
    let tiny_total = Limits {
        max_total_bytes: 10,
        ..Limits::default()
    };
    let err = cache
        .read_tree(&url, &c3, "apps/many", &tiny_total)
        .expect_err("15 bytes > 10");
    assert!(matches!(err, SourceError::TotalTooLarge { .. }), "{err:?}");
    Ok(())
}

#[test]
fn export_writes_the_whole_tree_with_links_as_copies() -> Result<()> {
    let f = Fixture::new()?;
    let (_d, cache) = f.cache()?;
    let url = f.file_url();
    let main = cache.resolve(&url, "main", &Credentials::none())?;
    let dest = tempfile::tempdir()?;
    cache.export(&url, &main, dest.path(), &Limits::default())?;
    let read = |rel: &str| std::fs::read(dest.path().join(rel));
    assert_eq!(read("README.md")?, b"# ml platform\n");
    assert_eq!(read("base/kustomization.yaml")?, b"resources: []\n");
    assert_eq!(
        read("apps/serving/deploy.yaml")?,
        b"kind: Deployment\nversion: 2\n"
    );
    assert_eq!(
        read("apps/serving/base/kustomization.yaml")?,
        b"resources: []\n"
    );
    let link_copy = std::fs::symlink_metadata(dest.path().join("apps/serving/readme"))?;
    assert!(
        link_copy.file_type().is_file(),
        "links are exported as plain files"
    );
    assert!(!dest.path().join("apps/serving/svc.yaml").exists());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// ssh against a loopback sshd
// ---------------------------------------------------------------------------------------

/// `sshd` on 127.0.0.1, killed on drop.
struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ssh_keygen(path: &Path) -> Result<()> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "mooring-test", "-f"])
        .arg(path)
        .output()
        .context("running ssh-keygen: install the `openssh-client` package")?;
    if !out.status.success() {
        bail!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn start_sshd(dir: &Path, authorized_key: &Path) -> Result<Sshd> {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("sshd not found: install the `openssh-server` package")?;
    // sshd insists on its privilege-separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    ssh_keygen(&dir.join("host_key"))?;
    std::fs::copy(authorized_key, dir.join("authorized_keys"))?;
    let port = free_port()?;
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\nPidFile {dir}/sshd.pid\n\
         AuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\nUsePAM no\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
         PermitRootLogin prohibit-password\nLogLevel ERROR\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("sshd_config"), config)?;
    let child = Command::new(&sshd)
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log"))?)
        .spawn()
        .context("starting sshd")?;
    let server = Sshd { child, port };
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("sshd did not listen on 127.0.0.1:{port} within 15 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(server)
}

fn current_user() -> Result<String> {
    let out = Command::new("id").arg("-un").output()?;
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

#[test]
fn fetch_over_ssh_with_a_private_key() -> Result<()> {
    let f = Fixture::new()?;
    let keys = tempfile::tempdir()?;
    ssh_keygen(&keys.path().join("id"))?;
    ssh_keygen(&keys.path().join("other"))?;
    let sshd = start_sshd(keys.path(), &keys.path().join("id.pub"))?;
    let key = std::fs::read_to_string(keys.path().join("id"))?;
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        current_user()?,
        sshd.port,
        f.bare.display()
    );

    // insecure: no host-key check
    let (_d1, cache) = f.cache()?;
    let creds = Credentials::ssh_key(key.clone()).with_insecure(true);
    assert_eq!(cache.resolve(&url, "main", &creds)?.as_str(), f.c2);
    assert_eq!(cache.resolve(&url, "v1", &creds)?.as_str(), f.c1);
    let files = cache.read_tree(&url, &cid(&f.c2), "apps/serving", &Limits::default())?;
    assert_eq!(files.len(), 3);

    // strict host-key checking against a known_hosts file
    let host_pub = std::fs::read_to_string(keys.path().join("host_key.pub"))?;
    let mut fields = host_pub.split_whitespace();
    let known = format!(
        "[127.0.0.1]:{} {} {}\n",
        sshd.port,
        fields.next().context("key type")?,
        fields.next().context("key")?
    );
    std::fs::write(keys.path().join("known_hosts"), known)?;
    let strict_dir = tempfile::tempdir()?;
    let strict = RepoCache::new(strict_dir.path().to_path_buf())
        .with_known_hosts(keys.path().join("known_hosts"));
    assert_eq!(
        strict
            .resolve(&url, "feature", &Credentials::ssh_key(key.clone()))?
            .as_str(),
        f.c3
    );
    // push (the `git` binary, for rollbacks) over the same ssh: key file, known hosts
    strict.push(
        &url,
        &cid(&f.c3),
        "rollback/ssh",
        &Credentials::ssh_key(key.clone()),
    )?;
    assert_eq!(git(&f.bare, &["rev-parse", "rollback/ssh"])?, f.c3);
    let other_key = std::fs::read_to_string(keys.path().join("other"))?;
    let err = strict
        .push(
            &url,
            &cid(&f.c3),
            "rollback/ssh-2",
            &Credentials::ssh_key(other_key),
        )
        .expect_err("wrong key");
    assert!(matches!(err, SourceError::AuthFailed { .. }), "{err:?}");

    // an unknown host key is refused
    std::fs::write(keys.path().join("empty_known_hosts"), "")?;
    let picky_dir = tempfile::tempdir()?;
    let picky = RepoCache::new(picky_dir.path().to_path_buf())
        .with_known_hosts(keys.path().join("empty_known_hosts"));
    let err = picky
        .resolve(&url, "main", &Credentials::ssh_key(key))
        .expect_err("host key unknown");
    assert!(
        matches!(err, SourceError::HostKeyRejected { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("Host key verification failed"),
        "{err}"
    );

    // a key the server does not know is an authentication failure
    let other = std::fs::read_to_string(keys.path().join("other"))?;
    let (_d2, cache2) = f.cache()?;
    let err = cache2
        .resolve(
            &url,
            "main",
            &Credentials::ssh_key(other).with_insecure(true),
        )
        .expect_err("wrong key");
    assert!(matches!(err, SourceError::AuthFailed { .. }), "{err:?}");
    Ok(())
}
