//! The web UI in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver, with the fantoccini client) against `mooring up` on the example
//! platform, as its users would click through it. Screenshots of every page are saved
//! under `$CARGO_TARGET_TMPDIR/ui-screenshots` (the README's come from there).
//!
//! The example is used as it is, with two changes a team would make for the scenario:
//! the development canary's first pause waits for a person (`pause: {}`, promoted from
//! the UI), and the development feature store is synced by hand (no `automated` policy),
//! so drift stays visible until someone syncs it.

use crate::control_plane::{app_until, synced_healthy, Up};
use crate::{copy_dir, kubectl, kubectl_ok, mooring, Proc};
use fantoccini::{Client, ClientBuilder, Locator};
use mooring_testkit::git;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Chromium started by chromedriver, headless, with a fresh profile.
pub(crate) struct Browser {
    pub(crate) client: Client,
    _driver: Proc,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Browser {
    pub(crate) async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (Debian package chromium-driver; scripts/test installs it)");
        let driver = Proc(driver);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1440,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util_connector())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session in Chromium");
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        Browser {
            client,
            _driver: driver,
            _profile: profile,
            shots,
        }
    }

    /// Run `script` (a function body returning a JSON value) until `ok` holds.
    pub(crate) async fn until(
        &self,
        what: &str,
        secs: u64,
        script: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self
                .client
                .execute(script, vec![])
                .await
                .unwrap_or(Value::Null);
            if ok(&v) {
                return v;
            }
            if Instant::now() > deadline {
                self.shot(&format!("timeout-{}", what.replace(' ', "-")))
                    .await;
                let toast = self
                    .client
                    .execute("const t = document.querySelector('#toast'); return t ? t.textContent : null;", vec![])
                    .await
                    .unwrap_or_default();
                let page = self.client.source().await.unwrap_or_default();
                panic!(
                    "timed out waiting for {what}: last {v}; last message {toast}\n{}",
                    &page[..page.len().min(4000)]
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn shot(&self, name: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(self.shots.join(format!("{name}.png")), png);
        }
    }

    /// A screenshot of the element `css` (scrolled into view), for what lies below the fold.
    pub(crate) async fn shot_of(&self, css: &str, name: &str) {
        if let Ok(e) = self.client.find(Locator::Css(css)).await {
            let _ = self
                .client
                .execute(
                    "arguments[0].scrollIntoView({block: 'start'}); return 1;",
                    vec![serde_json::to_value(&e).unwrap_or_default()],
                )
                .await;
            if let Ok(png) = e.screenshot().await {
                let _ = std::fs::write(self.shots.join(format!("{name}.png")), png);
            }
        }
    }

    /// Click `css` once it exists; the pages re-render as the stream updates them, so an
    /// element found may be replaced before the click lands: then it is found again.
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = match self
                .client
                .wait()
                .at_most(Duration::from_secs(30))
                .for_element(Locator::Css(css))
                .await
            {
                Ok(e) => e,
                Err(e) => {
                    self.shot("timeout-click").await;
                    let page = self.client.source().await.unwrap_or_default();
                    let at = page.find("<main").unwrap_or(0);
                    panic!("{css}: {e}\n{}", &page[at..page.len().min(at + 6000)]);
                }
            };
            match found.click().await {
                Ok(()) => return,
                Err(e) if e.to_string().contains("stale element") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("clicking {css}: {e}"),
            }
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }
}

/// fantoccini's plain-HTTP connector (chromedriver listens on loopback only).
fn hyper_util_connector() -> hyper_util::client::legacy::connect::HttpConnector {
    hyper_util::client::legacy::connect::HttpConnector::new()
}

/// The example as a Git work tree whose `origin` is the URL its manifests name, so `up`
/// serves it, with the scenario's two changes (see the module doc).
fn platform_repo(dir: &Path) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ml-platform");
    copy_dir(&example, dir);
    let overlay = dir.join("applications/model-serving/overlays/development/kustomization.yaml");
    let text = std::fs::read_to_string(&overlay).expect("overlay");
    let text = text.replacen(
        "    - op: replace\n      path: /spec/strategy/canary/steps/1/pause/duration\n      value: 10s\n",
        "    - op: replace\n      path: /spec/strategy/canary/steps/1/pause\n      value: {}\n",
        1,
    );
    assert!(text.contains("steps/1/pause\n      value: {}"), "{text}");
    std::fs::write(&overlay, text).expect("write overlay");
    let fs = dir.join("environments/development/feature-store.yaml");
    let text = std::fs::read_to_string(&fs).expect("feature store app");
    assert!(text.contains("automated: {prune: true, selfHeal: true}"));
    std::fs::write(
        &fs,
        text.replacen("    automated: {prune: true, selfHeal: true}\n", "", 1),
    )
    .expect("write");
    git(dir, &["init", "-q", "-b", "main"]);
    git(
        dir,
        &[
            "remote",
            "add",
            "origin",
            "https://git.example.com/ml-platform/platform.git",
        ],
    );
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "the ML platform"]);
}

/// `mooring up` on the scenario's platform (see the module doc), the feature store synced
/// by hand and both apps of the scenario Synced and Healthy: its kubeconfig, the work
/// tree, the login link and the base URL.
struct Platform {
    /// Stopped when the platform is dropped.
    _up: Up,
    kc: String,
    repo: PathBuf,
    login: String,
    base: String,
    _tmp: tempfile::TempDir,
}

impl Platform {
    fn start() -> Platform {
        let tmp = tempfile::tempdir().expect("tmp");
        let repo = tmp.path().join("platform");
        platform_repo(&repo);
        let up = Up::start(&repo, &tmp.path().join("data"), &[]);
        let kc = up.kc.clone();
        let login = up
            .printed_value("log in")
            .expect("mooring up prints a one-click login link");
        let base = login.split("/login?").next().expect("base URL").to_string();
        app_until(&kc, "feature-store-development", 240, "registered", |v| {
            v["status"]["sync"]["status"] == "OutOfSync"
        });
        let o = mooring(
            &kc,
            &[
                "app",
                "sync",
                "feature-store-development",
                "--timeout",
                "120",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for app in ["model-serving-development", "feature-store-development"] {
            app_until(&kc, app, 240, "Synced and Healthy", synced_healthy);
        }
        Platform {
            _up: up,
            kc,
            repo,
            login,
            base,
            _tmp: tmp,
        }
    }
}

/// A runtime for the browser's client.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Every Application (`kubectl get applications -A` with `extra` arguments), as JSON.
fn applications(kc: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["get", "applications", "-A", "-o", "json"];
    args.extend_from_slice(extra);
    let o = kubectl(kc, &args, None);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["items"].as_array().cloned().unwrap_or_default()
}

fn name_of(a: &Value) -> String {
    a["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Every Application as the API reports it: name → (sync, health).
fn apps_in_cluster(kc: &str) -> std::collections::BTreeMap<String, (String, String)> {
    let status = |a: &Value, p: &str| {
        a.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("Unknown")
            .to_string()
    };
    applications(kc, &[])
        .iter()
        .map(|a| {
            (
                name_of(a),
                (
                    status(a, "/status/sync/status"),
                    status(a, "/status/health/status"),
                ),
            )
        })
        .collect()
}

const LIST_ROWS: &str = "return [...document.querySelectorAll('tr[data-app]')].map(r => [r.dataset.app, r.querySelector('[data-sync]').dataset.sync, r.querySelector('[data-health]').dataset.health]);";

fn rows(v: &Value) -> std::collections::BTreeMap<String, (String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let s = |i: usize| r[i].as_str().unwrap_or_default().to_string();
            (s(0), (s(1), s(2)))
        })
        .collect()
}

#[test]
fn web_ui_in_a_real_browser() {
    let p = Platform::start();
    let (kc, repo, login, base) = (
        p.kc.clone(),
        p.repo.clone(),
        p.login.clone(),
        p.base.clone(),
    );
    let rt = runtime();
    rt.block_on(async {
        let b = Browser::start().await;

        // The login page, then the one-click link: the cookie is set and the token leaves
        // the address bar.
        b.goto(&format!("{base}/applications")).await;
        b.until("the login redirect", 30, "return location.pathname", |v| v == "/login")
            .await;
        b.shot("login").await;
        b.goto(&login).await;
        let url = b.client.current_url().await.expect("url");
        assert!(!url.as_str().contains("token"), "{url}");
        let cookie_visible = b
            .client
            .execute("return document.cookie", vec![])
            .await
            .expect("script");
        assert_eq!(cookie_visible, json!(""), "the cookie is HttpOnly");

        // The list: every application with the API's sync and health.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let want = apps_in_cluster(&kc);
            let shown = rows(&b.client.execute(LIST_ROWS, vec![]).await.unwrap_or_default());
            if !want.is_empty() && want == shown {
                assert!(want.contains_key("model-serving-development"), "{want:?}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the list never matched the API:\nAPI {want:?}\nUI  {shown:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let total = rows(&b.client.execute(LIST_ROWS, vec![]).await.expect("rows")).len();
        b.shot("applications").await;

        // Filters: search, label, project.
        let search = b
            .client
            .find(Locator::Css("#search"))
            .await
            .expect("search box");
        search.send_keys("feature").await.expect("type");
        let shown = b
            .until("the search filter", 10, LIST_ROWS, |v| {
                let r = rows(v);
                !r.is_empty() && r.len() < total
            })
            .await;
        assert!(
            rows(&shown).keys().all(|n| n.contains("feature")),
            "{shown}"
        );
        b.client
            .execute(
                "const q = document.querySelector('#search'); q.value = ''; q.dispatchEvent(new Event('input')); const s = document.querySelector('#label-filter'); s.value = 'environment=development'; s.dispatchEvent(new Event('input')); return 1;",
                vec![],
            )
            .await
            .expect("label filter");
        // Only the development environment's apps carry the label.
        let labelled = apps_labelled(&kc, "environment", "development");
        assert!(!labelled.is_empty() && labelled.len() < total, "{labelled:?}");
        b.until("the label filter", 10, LIST_ROWS, |v| {
            rows(v).keys().cloned().collect::<Vec<_>>() == labelled
        })
        .await;
        b.client
            .execute(
                "const s = document.querySelector('#label-filter'); s.value = ''; s.dispatchEvent(new Event('input')); const p = document.querySelector('#filter-project'); p.value = 'ml-platform'; p.dispatchEvent(new Event('change')); return 1;",
                vec![],
            )
            .await
            .expect("project filter");
        let projects = apps_projects(&kc);
        let shown = b
            .until("the project filter", 10, LIST_ROWS, |v| {
                let r = rows(v);
                !r.is_empty() && r.len() < total
            })
            .await;
        for name in rows(&shown).keys() {
            assert_eq!(projects.get(name).map(String::as_str), Some("ml-platform"), "{name}");
        }
        b.client
            .execute(
                "const p = document.querySelector('#filter-project'); p.value = ''; p.dispatchEvent(new Event('change')); return 1;",
                vec![],
            )
            .await
            .expect("reset");

        // Hostile text from a tenant's Application is shown as text: no element, no script.
        kubectl_ok(
            &kc,
            &["apply", "-f", "-"],
            Some(&json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": "hostile", "namespace": "argocd",
                             "labels": {"team": "x"}},
                "spec": {"project": "default",
                    "source": {"repoURL": "https://git.example.com/<img src=x onerror=window.__xss=1>.git",
                               "targetRevision": "<script>window.__xss=2</script>", "path": "x"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": "<b>ns</b>"}}
            }).to_string()),
        );
        let cell = b
            .until(
                "the hostile app in the list",
                30,
                "const r = document.querySelector('tr[data-app=\"hostile\"]'); return r ? [r.textContent, r.querySelectorAll('img,script,b').length, window.__xss || 0] : null;",
                |v| v.is_array(),
            )
            .await;
        assert!(cell[0].as_str().is_some_and(|t| t.contains("<img src=x")), "{cell}");
        assert_eq!((cell[1].clone(), cell[2].clone()), (json!(0), json!(0)), "{cell}");
        b.goto(&format!("{base}/applications/argocd/hostile")).await;
        let page = b
            .until(
                "the hostile app's page",
                30,
                "const h = document.querySelector('#app-head'); return h ? [h.textContent, document.querySelectorAll('main img, main script, #app-head b').length, window.__xss || 0] : null;",
                |v| v[0].as_str().is_some_and(|t| !t.is_empty()),
            )
            .await;
        assert!(page[0].as_str().is_some_and(|t| t.contains("<script>")), "{page}");
        assert_eq!((page[1].clone(), page[2].clone()), (json!(0), json!(0)), "{page}");
        kubectl_ok(&kc, &["-n", "argocd", "delete", "application", "hostile"], None);

        // The model server: Rollout → ReplicaSet → Pod in the tree.
        b.goto(&format!("{base}/applications/argocd/model-serving-development"))
            .await;
        let cols = b
            .until(
                "the rollout's tree",
                60,
                "return [...document.querySelectorAll('#tree .col')].map(c => [...c.querySelectorAll('.node')].map(n => n.dataset.kind));",
                |v| {
                    let s = v.to_string();
                    s.contains("Rollout") && s.contains("ReplicaSet") && s.contains("Pod")
                },
            )
            .await;
        let depth = |kind: &str| {
            cols.as_array()
                .and_then(|c| {
                    c.iter()
                        .position(|col| col.as_array().is_some_and(|k| k.contains(&json!(kind))))
                })
                .unwrap_or(usize::MAX)
        };
        assert!(
            depth("Rollout") < depth("ReplicaSet") && depth("ReplicaSet") < depth("Pod"),
            "{cols}"
        );
        b.shot("application").await;
        b.shot_of("#tree", "tree").await;

        // A new image, committed: the page follows the rollout to its first pause without
        // a reload, Promote moves it on, and the analysis chart fills.
        b.client
            .execute("window.__sameDocument = 1; return 1;", vec![])
            .await
            .expect("marker");
        let rollout = repo.join("applications/model-serving/base/rollout.yaml");
        let text = std::fs::read_to_string(&rollout).expect("rollout");
        std::fs::write(
            &rollout,
            text.replacen("fraud-detector:1.4.2", "fraud-detector:1.5.0", 1),
        )
        .expect("write");
        git(&repo, &["commit", "-q", "-am", "fraud-detector 1.5.0"]);
        b.until(
            "the rollout paused at its first pause",
            120,
            "const r = document.querySelector('.rollout'); return r ? [r.dataset.status, r.dataset.step, window.__sameDocument || 0] : null;",
            |v| v[0] == "Paused" && v[1] == "1" && v[2] == 1,
        )
        .await;
        b.shot("rollout-paused").await;
        b.click(".rollout button[data-action='resume']").await;
        b.until(
            "the rollout past its pause",
            60,
            "const r = document.querySelector('.rollout'); return r ? Number(r.dataset.step) : -1;",
            |v| v.as_i64().is_some_and(|s| s >= 2),
        )
        .await;
        b.until(
            "measurements in the analysis chart",
            180,
            "return [...document.querySelectorAll('svg.chart')].map(s => Number(s.dataset.points));",
            |v| v.as_array().is_some_and(|p| p.iter().any(|n| n.as_i64() > Some(0))),
        )
        .await;
        b.shot_of(".rollout", "rollout-analysis").await;

        // Drift with kubectl: OutOfSync in the list, the diff names the field, Sync heals.
        b.goto(&format!("{base}/applications")).await;
        let state = "const r = document.querySelector('tr[data-app=\"feature-store-development\"] [data-sync]'); return r ? r.dataset.sync : null;";
        b.until("feature-store Synced in the list", 60, state, |v| v == "Synced")
            .await;
        let patched = Instant::now();
        kubectl_ok(
            &kc,
            &[
                "-n",
                "ml-features-development",
                "scale",
                "statefulset",
                "feature-store",
                "--replicas=2",
            ],
            None,
        );
        b.until("feature-store OutOfSync in the list", 30, state, |v| v == "OutOfSync")
            .await;
        eprintln!(
            "drift → OutOfSync shown in the list: {} ms",
            patched.elapsed().as_millis()
        );
        b.shot("drift-list").await;
        b.goto(&format!("{base}/applications/argocd/feature-store-development"))
            .await;
        b.click(".node[data-kind='StatefulSet'][data-name='feature-store']").await;
        b.click("button[data-tab='Diff']").await;
        let diff = b
            .until(
                "the diff of the StatefulSet",
                30,
                "const d = document.querySelector('#diff'); return d ? d.textContent : null;",
                |v| v.as_str().is_some_and(|t| t.contains("replicas: 2")),
            )
            .await;
        assert!(diff.to_string().contains("replicas: 1"), "{diff}");
        b.shot_of("#detail", "diff").await;
        // A dry run validates and changes nothing (no history entry either).
        let history = "return document.querySelectorAll('#history [data-rollback], #history tbody tr').length;";
        let before = b.client.execute(history, vec![]).await.expect("history");
        b.click("#sync-button").await;
        b.click("#sync-dry-run").await;
        b.click("#sync-confirm").await;
        b.until(
            "the dry run's result",
            60,
            "const o = document.querySelector('#operation-state'); return o ? o.textContent : null;",
            |v| v.as_str().is_some_and(|t| t.contains("dry run: ") && t.contains("nothing was changed")),
        )
        .await;
        let replicas = || {
            kubectl_ok(
                &kc,
                &[
                    "-n",
                    "ml-features-development",
                    "get",
                    "statefulset",
                    "feature-store",
                    "-o",
                    "jsonpath={.spec.replicas}",
                ],
                None,
            )
        };
        assert_eq!(replicas().trim(), "2", "a dry run changed the StatefulSet");
        assert_eq!(b.client.execute(history, vec![]).await.expect("history"), before);
        // A selective sync of the StatefulSet alone heals it.
        b.click("#sync-button").await;
        b.click("input[data-resource='StatefulSet/feature-store']").await;
        b.click("#sync-confirm").await;
        b.until(
            "feature-store Synced again",
            60,
            "const s = document.querySelector('#app-sync'); return s ? s.textContent : null;",
            |v| v == "Synced",
        )
        .await;
        assert_eq!(replicas().trim(), "1");
        let synced = b
            .until(
                "the selective sync's result",
                30,
                "const o = document.querySelector('#operation-state'); return o && !o.textContent.includes('dry run') ? [...o.querySelectorAll('tbody tr')].map(r => r.children[0].textContent) : null;",
                |v| v.as_array().is_some_and(|k| !k.is_empty()),
            )
            .await;
        assert!(
            synced.as_array().is_some_and(|k| k.iter().all(|k| k == "StatefulSet" || k == "Namespace")
                && k.contains(&json!("StatefulSet"))),
            "a selective sync touched more: {synced}"
        );

        // Every other page loads without an error.
        for (page, table) in [
            ("policy", "#constraints"),
            ("clusters", "#clusters"),
            ("projects", "#projects"),
            ("applicationsets", "#applicationsets"),
            ("rollbackpolicies", "#rollbackpolicies"),
            ("drplans", "#drplans"),
            ("rollouts", ".rollout"),
        ] {
            b.goto(&format!("{base}/{page}")).await;
            let script = format!(
                "return document.querySelector('main .error') ? 'error: ' + document.querySelector('main .error').textContent : (document.querySelector('{table}') ? 'ok' : null);"
            );
            b.until(&format!("the {page} page"), 30, &script, |v| v.is_string())
                .await;
            let got = b.client.execute(&script, vec![]).await.expect("script");
            assert_eq!(got, json!("ok"), "{page}");
            b.shot(page).await;
        }

        // A read-only account: no Sync button; a forged request gets 403 and the reason.
        grant_readonly(&kc);
        let o = mooring(&kc, &["account", "generate-token", "--account", "viewer"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let viewer = String::from_utf8_lossy(&o.stdout).trim().to_string();
        b.click("#nav form button").await;
        b.until("logged out", 20, "return location.pathname", |v| v == "/login")
            .await;
        b.goto(&format!("{base}/login?token={viewer}")).await;
        b.goto(&format!("{base}/applications/argocd/model-serving-development"))
            .await;
        b.until(
            "the read-only view",
            30,
            "return document.querySelector('#read-only') ? (document.querySelector('#sync-button') ? 'both' : 'read-only') : null;",
            |v| v.is_string(),
        )
        .await;
        let buttons = b
            .client
            .execute(
                "return [!!document.querySelector('#sync-button'), document.querySelectorAll('.rollout button[data-action]').length, !!document.querySelector('[data-rollback]')];",
                vec![],
            )
            .await
            .expect("script");
        assert_eq!(buttons, json!([false, 0, false]));
        b.shot("read-only").await;
        let forged = b
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1]; fetch('/api/v1/applications/model-serving-development/sync?appNamespace=argocd', {method: 'POST', headers: {'X-Requested-With': 'forged', 'Content-Type': 'application/json'}, body: '{}'}).then(async r => done([r.status, await r.text()]));",
                vec![],
            )
            .await
            .expect("forged sync");
        assert_eq!(forged[0], 403, "{forged}");
        assert!(
            forged[1]
                .as_str()
                .is_some_and(|t| t.contains("permission denied: applications, sync")),
            "{forged}"
        );
        let no_header = b
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1]; fetch('/api/v1/applications/model-serving-development/sync?appNamespace=argocd', {method: 'POST', body: '{}'}).then(async r => done([r.status, await r.text()]));",
                vec![],
            )
            .await
            .expect("cross-site style request");
        assert_eq!(no_header[0], 403, "{no_header}");
        assert!(no_header[1].as_str().is_some_and(|t| t.contains("cross-site")), "{no_header}");
        b.client.close().await.expect("close the browser");
    });
    drop(p);
}

/// The names of the apps with label `key=value`, sorted.
fn apps_labelled(kc: &str, key: &str, value: &str) -> Vec<String> {
    let mut names: Vec<String> = applications(kc, &["-l", &format!("{key}={value}")])
        .iter()
        .map(name_of)
        .collect();
    names.sort();
    names
}

/// Each app's project.
fn apps_projects(kc: &str) -> std::collections::BTreeMap<String, String> {
    applications(kc, &[])
        .iter()
        .map(|a| {
            (
                name_of(a),
                a["spec"]["project"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string(),
            )
        })
        .collect()
}

/// An API-key account `viewer` with Argo CD's built-in `role:readonly`.
fn grant_readonly(kc: &str) {
    merge_data(kc, "mooring-cm", "accounts.viewer", "apiKey");
    merge_data(
        kc,
        "mooring-rbac-cm",
        "policy.csv",
        "g, viewer, role:readonly\n",
    );
}

/// Set one key of a ConfigMap of `argocd`, creating it if needed.
fn merge_data(kc: &str, name: &str, key: &str, value: &str) {
    let exists = kubectl(kc, &["-n", "argocd", "get", "configmap", name], None);
    if exists.status.success() {
        let patch = json!({"data": {key: value}}).to_string();
        kubectl_ok(
            kc,
            &[
                "-n",
                "argocd",
                "patch",
                "configmap",
                name,
                "--type",
                "merge",
                "-p",
                &patch,
            ],
            None,
        );
    } else {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "argocd"}, "data": {key: value}});
        kubectl_ok(kc, &["apply", "-f", "-"], Some(&cm.to_string()));
    }
}

/// Record in the page when the list shows `app` with a new sync status (wall-clock ms), so
/// latency is read from the browser's own clock rather than from polling.
const OBSERVE: &str = r#"
const app = arguments[0];
window.__seen = [];
let last = null;
const look = () => {
  const r = document.querySelector(`tr[data-app="${app}"] [data-sync]`);
  const v = r ? r.dataset.sync : null;
  if (v !== last) { last = v; window.__seen.push([Date.now(), v]); }
};
new MutationObserver(look).observe(document.getElementById('main'), {subtree: true, childList: true, attributes: true});
look();
return 1;
"#;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The UI's figures for `docs/benchmarks.md` (not part of `scripts/test`; run with
/// `cargo nextest run -p mooring --run-ignored only -E 'test(bench_ui)' --no-capture`):
/// a live change (a StatefulSet scaled with the API) until the list shows the app's new
/// sync status, p50 over 20 changes; and the application list's load with 1,000 apps.
#[test]
#[ignore = "a benchmark: run it on a quiet machine"]
fn bench_ui_live_change_and_list_load() {
    let p = Platform::start();
    let (kc, login, base) = (p.kc.clone(), p.login.clone(), p.base.clone());
    let rt = runtime();
    rt.block_on(async {
        let client = mooring_k8s::client_from_kubeconfig(Path::new(&kc))
            .await
            .expect("client");
        let sets: mooring_k8s::kube::Api<mooring_k8s::k8s_openapi::api::apps::v1::StatefulSet> =
            mooring_k8s::kube::Api::namespaced(client.clone(), "ml-features-development");
        let b = Browser::start().await;
        b.goto(&login).await;
        b.goto(&format!("{base}/applications")).await;
        let state = "const r = document.querySelector('tr[data-app=\"feature-store-development\"] [data-sync]'); return r ? r.dataset.sync : null;";
        b.until("the list", 60, state, |v| v == "Synced").await;
        b.client
            .execute(OBSERVE, vec![json!("feature-store-development")])
            .await
            .expect("observer");
        let mut took = Vec::new();
        for i in 0..20 {
            let (replicas, want) = if i % 2 == 0 { (2, "OutOfSync") } else { (1, "Synced") };
            let started = now_ms();
            sets.patch(
                "feature-store",
                &mooring_k8s::kube::api::PatchParams::default(),
                &mooring_k8s::kube::api::Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .expect("scale");
            let seen = b
                .until(&format!("change {i}"), 30, "return window.__seen;", |v| {
                    v.as_array()
                        .and_then(|s| s.last())
                        .is_some_and(|l| l[1] == want)
                })
                .await;
            let shown = seen
                .as_array()
                .and_then(|s| s.last())
                .and_then(|l| l[0].as_i64())
                .expect("time");
            took.push(shown - started);
        }
        took.sort_unstable();
        println!(
            "live change → shown in the list, 20 changes: p50 {} ms, p90 {} ms, max {} ms",
            took[took.len() / 2],
            took[took.len() * 9 / 10],
            took[took.len() - 1]
        );

        // 1,000 more applications (not synced: the list shows what the API has).
        let apps: mooring_k8s::kube::Api<mooring_k8s::kube::api::DynamicObject> =
            mooring_k8s::kube::Api::namespaced_with(
                client.clone(),
                "argocd",
                &mooring_k8s::resources::application_resource(),
            );
        for i in 0..1000 {
            let a: mooring_k8s::kube::api::DynamicObject = serde_json::from_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": format!("fleet-{i:04}"), "namespace": "argocd",
                             "labels": {"team": format!("team-{}", i % 10)}},
                "spec": {"project": "default",
                    "source": {"repoURL": "https://git.example.com/ml/fleet.git", "targetRevision": "main", "path": format!("apps/{i}")},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": format!("fleet-{i}")}},
                "status": {"sync": {"status": "OutOfSync"}, "health": {"status": "Missing"}}
            }))
            .expect("app");
            apps.create(&Default::default(), &a).await.expect("create");
        }
        let total = apps_in_cluster(&kc).len();
        assert!(total >= 1000, "{total}");
        let mut loads = Vec::new();
        for _ in 0..5 {
            let started = now_ms();
            b.goto(&format!("{base}/applications")).await;
            b.until("1,000 rows", 120, "return document.querySelectorAll('tr[data-app]').length;", |v| {
                v.as_u64().is_some_and(|n| n as usize >= total)
            })
            .await;
            loads.push(now_ms() - started);
        }
        loads.sort_unstable();
        println!(
            "application list with {total} apps, navigation → every row shown, 5 loads: median {} ms, min {} ms, max {} ms",
            loads[2], loads[0], loads[4]
        );
        b.client.close().await.expect("close");
    });
    drop(p);
}
