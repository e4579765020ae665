//! Issue 12, findings 3 and 6, end to end: Secrets a tenant writes never hand out or
//! change credentials, and credentials only go to the server they were written for.
//!
//! * A tenant's repository Secret, committed to its own repository and synced into a
//!   namespace its project deploys to, for the admin's repository URL with other
//!   credentials and `insecure: "true"`, is not read: the admin's credentials stay in force.
//! * A tenant's cluster Secret named like another team's destination, pointing at a
//!   cluster the tenant controls, redirects nothing: the team's objects reach its own
//!   cluster only.
//! * Credentials for `https://127.0.0.1/org/private.git` are not sent to
//!   `http://127.0.0.1:PORT/org/private.git` (scheme and port differ), nor are another
//!   project's scoped credentials for that very URL: the Git server sees no
//!   `Authorization` header and the app reports why.

use crate::support::{env_with_cluster, eventually, Repo};
use mooring_k8s::kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use mooring_k8s::kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn api(client: &mooring_k8s::kube::Client, ns: &str, r: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, r)
}

fn secrets_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Secret"), "secrets")
}

async fn create(api: &Api<DynamicObject>, v: Value) {
    let o: DynamicObject = serde_json::from_value(v).expect("object");
    api.create(&PostParams::default(), &o)
        .await
        .expect("create");
}

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git must be installed");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A repository at `root/org/private.git` with one ConfigMap under `web/`.
fn private_repo(root: &Path) {
    let dir = root.join("org/private.git");
    std::fs::create_dir_all(dir.join("web")).expect("mkdir");
    git(&dir, &["init", "-q", "-b", "main"]);
    std::fs::write(
        dir.join("web/config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: private-config}\ndata: {owner: admin}\n",
    )
    .expect("write");
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "private"]);
}

fn repo_secret(name: &str, ns: &str, url: &str, user: &str, password: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": ns,
                        "labels": {"argocd.argoproj.io/secret-type": "repository"}},
           "stringData": {"type": "git", "url": url, "username": user, "password": password}})
}

fn app(name: &str, repo: &str) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
           "metadata": {"name": name, "namespace": "argocd"},
           "spec": {"project": "default",
               "source": {"repoURL": repo, "targetRevision": "main", "path": "web"},
               "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
               "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}}})
}

/// The status of Application `name` once `ok` holds for it.
async fn status_when(
    apps: &Api<DynamicObject>,
    name: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    eventually(60, what, || async {
        let a = serde_json::to_value(apps.get(name).await.ok()?).ok()?;
        ok(&a["status"]).then(|| a["status"].clone())
    })
    .await
}

fn condition_says(status: &Value, text: &str) -> bool {
    status["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["message"].as_str().is_some_and(|m| m.contains(text)))
    })
}

/// Finding 6: the admin's credentials for `https://127.0.0.1/org/private.git` (a
/// repository Secret, and a credential template for `https://127.0.0.1/org`) are
/// not sent to the same host and path over plain `http://` on another port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_credentials_are_never_sent_to_an_http_url() {
    let served = tempfile::tempdir().expect("tmp");
    private_repo(served.path());
    let http = mooring_testkit::GitHttpServer::start(served.path(), Some(("admin", "s3cret")))
        .expect("git http server");
    let downgraded = http.url("org/private.git");
    assert!(downgraded.starts_with("http://127.0.0.1:"), "{downgraded}");

    let (_cluster, e) = env_with_cluster().await;
    let c = e.client.clone();
    let secrets = api(&c, "argocd", &secrets_resource());
    create(
        &secrets,
        repo_secret(
            "private-repo",
            "argocd",
            "https://127.0.0.1/org/private.git",
            "admin",
            "s3cret",
        ),
    )
    .await;
    create(
        &secrets,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "org-creds", "namespace": "argocd",
                            "labels": {"argocd.argoproj.io/secret-type": "repo-creds"}},
               "stringData": {"url": "https://127.0.0.1/org", "username": "admin", "password": "s3cret"}}),
    )
    .await;
    eventually(30, "both Secrets are read", || async {
        (e.controller.ctx.credentials.read().expect("lock").len() == 2).then_some(())
    })
    .await;

    let apps = api(
        &c,
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    create(&apps, app("downgrade", &downgraded)).await;
    let status = status_when(
        &apps,
        "downgrade",
        "the fetch fails with a clear error",
        |s| condition_says(s, "scheme, host and port must match"),
    )
    .await;
    assert!(
        condition_says(&status, "authentication to"),
        "an authentication error: {status}"
    );
    assert!(!status.to_string().contains("s3cret"), "{status}");
    assert_eq!(
        http.authorizations(),
        Vec::<String>::new(),
        "no credentials reached the http server"
    );
    let cms = api(
        &c,
        "downgrade",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "ConfigMap"),
            "configmaps",
        ),
    );
    assert!(cms.get_opt("private-config").await.ok().flatten().is_none());

    let refresh = || async {
        apps.patch(
            "downgrade",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}),
            ),
        )
        .await
        .expect("refresh");
    };
    // Credentials for exactly this URL, but scoped to another project: not used either.
    let mut scoped = repo_secret(
        "private-http-team-a",
        "argocd",
        &downgraded,
        "admin",
        "s3cret",
    );
    scoped["stringData"]["project"] = json!("team-a");
    create(&secrets, scoped).await;
    eventually(30, "the scoped Secret is read", || async {
        (e.controller.ctx.credentials.read().expect("lock").len() == 3).then_some(())
    })
    .await;
    refresh().await;
    status_when(
        &apps,
        "downgrade",
        "another project's Secret is not used",
        |s| condition_says(s, "belongs to project \"team-a\""),
    )
    .await;
    assert_eq!(http.authorizations(), Vec::<String>::new());

    // Control: credentials written for exactly this http URL are sent (and work).
    create(
        &secrets,
        repo_secret("private-http", "argocd", &downgraded, "admin", "s3cret"),
    )
    .await;
    eventually(30, "the Secret is read", || async {
        (e.controller.ctx.credentials.read().expect("lock").len() == 4).then_some(())
    })
    .await;
    refresh().await;
    status_when(
        &apps,
        "downgrade",
        "the app syncs with its own credentials",
        |s| s["sync"]["status"] == "Synced",
    )
    .await;
    assert!(!http.authorizations().is_empty());
}

/// Finding 3: a tenant's repository Secret, synced from its own Git repository into a
/// namespace its project deploys to, names the admin's repository URL with other
/// credentials and `insecure: "true"`; a tenant's cluster Secret is named like another
/// team's destination. Neither is read: the admin's app keeps fetching with the admin's
/// credentials, and the other team's app still deploys to the management cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_repository_and_cluster_secrets_replace_nothing() {
    let served = tempfile::tempdir().expect("tmp");
    private_repo(served.path());
    let http = mooring_testkit::GitHttpServer::start(served.path(), Some(("admin", "s3cret")))
        .expect("git http server");
    let admin_url = http.url("org/private.git");
    // Team B's cluster (registered by the admin) and a cluster the tenant controls.
    let team_b_cluster = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        name: "team-b-prod".into(),
        ..Default::default()
    })
    .await
    .expect("team-b cluster");
    let tenant_cluster = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        name: "tenant-owned".into(),
        ..Default::default()
    })
    .await
    .expect("tenant cluster");

    // The tenant's repository: a repository Secret for the admin's URL, and a cluster
    // Secret named like team B's destination `team-b-prod`, pointing at its own cluster.
    let tenant = Repo::new();
    tenant.write(
        "secrets/repo.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: hijack-repo\n  labels: {{argocd.argoproj.io/secret-type: repository}}\nstringData:\n  url: \"{admin_url}\"\n  username: tenant\n  password: tenant-password\n  insecure: \"true\"\n"
        ),
    );
    // A working cluster Secret for the tenant's cluster (its token and CA), renamed.
    let mut hijack = mooring_k8s::registry::secret_for(
        &mooring_k8s::registry::ClusterEntry {
            project: String::new(),
            name: "team-b-prod".into(),
            server: tenant_cluster.url(),
            config: tenant_cluster.client_config(),
            labels: Default::default(),
            annotations: Default::default(),
        },
        "argocd",
    );
    hijack["metadata"] = json!({"name": "hijack-cluster",
        "labels": {"argocd.argoproj.io/secret-type": "cluster"}});
    tenant.write(
        "secrets/cluster.yaml",
        &serde_json::to_string_pretty(&hijack).expect("json"),
    );
    tenant.commit("plant secrets");

    let (_cluster, e) = env_with_cluster().await;
    let c = e.client.clone();
    let secrets = api(&c, "argocd", &secrets_resource());
    create(
        &secrets,
        repo_secret("private-repo", "argocd", &admin_url, "admin", "s3cret"),
    )
    .await;
    {
        use mooring_k8s::registry::{secret_for, ClusterEntry};
        let entry = ClusterEntry {
            project: String::new(),
            name: "team-b-prod".into(),
            server: team_b_cluster.url(),
            config: team_b_cluster.client_config(),
            labels: Default::default(),
            annotations: Default::default(),
        };
        create(&secrets, secret_for(&entry, "argocd")).await;
    }
    let projects = api(&c, "argocd", &mooring_k8s::resources::appproject_resource());
    create(
        &projects,
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
               "metadata": {"name": "tenant", "namespace": "argocd"},
               "spec": {"sourceRepos": [tenant.url()],
                        "destinations": [{"server": "*", "namespace": "tenant-*"}],
                        "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}]}}),
    )
    .await;
    let apps = api(
        &c,
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    create(
        &apps,
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
               "metadata": {"name": "tenant-secrets", "namespace": "argocd"},
               "spec": {"project": "tenant",
                   "source": {"repoURL": tenant.url(), "targetRevision": "main", "path": "secrets"},
                   "destination": {"server": "https://kubernetes.default.svc", "namespace": "tenant-a"},
                   "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}}}),
    )
    .await;
    let tenant_secrets = api(&c, "tenant-a", &secrets_resource());
    eventually(60, "the tenant's Secrets are deployed", || async {
        let repo = tenant_secrets.get_opt("hijack-repo").await.ok()??;
        let cluster = tenant_secrets.get_opt("hijack-cluster").await.ok()??;
        Some((repo, cluster))
    })
    .await;

    // The admin's app fetches with the admin's credentials, the tenant's never reach
    // the server; team B's app deploys to team B's cluster, not to the tenant's.
    create(&apps, app("admin-private", &admin_url)).await;
    create(
        &apps,
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
               "metadata": {"name": "team-b", "namespace": "argocd"},
               "spec": {"project": "default",
                   "source": {"repoURL": admin_url, "targetRevision": "main", "path": "web"},
                   "destination": {"name": "team-b-prod", "namespace": "team-b"},
                   "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}}}),
    )
    .await;
    status_when(&apps, "admin-private", "the admin's app syncs", |s| {
        s["sync"]["status"] == "Synced"
    })
    .await;
    status_when(&apps, "team-b", "team B's app syncs", |s| {
        s["sync"]["status"] == "Synced"
    })
    .await;
    let configmaps = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("", "v1", "ConfigMap"),
        "configmaps",
    );
    let in_cluster = |kubeconfig: std::path::PathBuf| {
        let configmaps = configmaps.clone();
        async move {
            let client = mooring_k8s::client_from_kubeconfig(&kubeconfig)
                .await
                .expect("client");
            api(&client, "team-b", &configmaps)
                .get_opt("private-config")
                .await
                .ok()
                .flatten()
                .is_some()
        }
    };
    assert!(
        in_cluster(team_b_cluster.kubeconfig_path().to_path_buf()).await,
        "team B's objects are in team B's cluster"
    );
    assert!(
        !in_cluster(tenant_cluster.kubeconfig_path().to_path_buf()).await,
        "nothing of team B's reached the tenant's cluster"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tenant_basic = {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("tenant:tenant-password")
        )
    };
    let seen = http.authorizations();
    assert!(!seen.is_empty(), "the admin's credentials were used");
    assert!(
        !seen.contains(&tenant_basic),
        "the tenant's credentials reached the server: {seen:?}"
    );
    let ctx = &e.controller.ctx;
    assert_eq!(ctx.credentials.read().expect("lock").len(), 1);
    let creds = ctx.credentials_for(&admin_url, Some("default"));
    assert_eq!(creds.password(), Some("s3cret"));
    assert!(!creds.insecure(), "insecure was not turned on");
    let clusters = ctx.clusters.read().expect("lock");
    let by_name = clusters
        .get("team-b-prod")
        .expect("team-b-prod is registered");
    let by_server = clusters
        .get(&team_b_cluster.url())
        .expect("team B's server is registered");
    assert!(
        std::sync::Arc::ptr_eq(by_name, by_server),
        "team-b-prod is team B's cluster"
    );
    assert!(
        clusters.get(&tenant_cluster.url()).is_none(),
        "the tenant's cluster is not registered"
    );
}
