//! The control-plane namespace (`argocd`) and "applications in any namespace", end to end:
//! an Application elsewhere is ignored with an Event until the controller's
//! `--application-namespaces` and its project's `sourceNamespaces` both allow it; a
//! tenant's own AppProject or cluster Secret outside the control plane is never read;
//! tracking ids carry `namespace_name` for such apps; `refresh: hard` re-renders.

use crate::support::{controller_with, env_with_cluster, eventually, field, Repo};
use mooring_k8s::kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use mooring_k8s::kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};
use std::time::Duration;

fn api(client: &mooring_k8s::kube::Client, ns: &str, r: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, r)
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The first Event with `reason` whose `pointer` field is `value`.
async fn find_event(
    events: &Api<DynamicObject>,
    reason: &str,
    pointer: &str,
    value: &str,
) -> Option<Value> {
    events
        .list(&ListParams::default())
        .await
        .ok()?
        .items
        .into_iter()
        .map(|o| serde_json::to_value(o).expect("json"))
        .find(|ev| field(ev, "/reason") == reason && field(ev, pointer) == value)
}

async fn create(api: &Api<DynamicObject>, v: Value) {
    let o: DynamicObject = serde_json::from_value(v).expect("object");
    api.create(&PostParams::default(), &o)
        .await
        .expect("create");
}

const CONFIG: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: team-config}
data: {owner: team-a}
";

fn tenant_app(project: &str, repo: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {"project": project,
            "source": {"repoURL": repo, "targetRevision": "main", "path": "web"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "team-a-web"},
            "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_outside_the_control_plane_is_ignored_until_both_allow_it() {
    let repo = Repo::new();
    repo.write("web/config.yaml", CONFIG);
    repo.commit("team a's config");
    let (cluster, e) = env_with_cluster().await;
    let c = e.client.clone();
    let namespaces: Api<DynamicObject> =
        Api::all_with(c.clone(), &resource("", "v1", "Namespace", "namespaces"));
    create(
        &namespaces,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
    )
    .await;
    let projects = api(&c, "argocd", &mooring_k8s::resources::appproject_resource());
    create(
        &projects,
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
               "metadata": {"name": "team", "namespace": "argocd"},
               "spec": {"sourceRepos": ["*"],
                        "destinations": [{"server": "*", "namespace": "team-a-*"}],
                        "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}]}}),
    )
    .await;
    // A tenant's own, permissive AppProject beside its Application: never read.
    let tenant_projects = api(&c, "team-a", &mooring_k8s::resources::appproject_resource());
    create(
        &tenant_projects,
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
               "metadata": {"name": "escape", "namespace": "team-a"},
               "spec": {"sourceRepos": ["*"], "sourceNamespaces": ["*"],
                        "destinations": [{"server": "*", "namespace": "*"}],
                        "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}}),
    )
    .await;
    let apps = api(
        &c,
        "team-a",
        &mooring_k8s::resources::application_resource(),
    );
    create(&apps, tenant_app("team", &repo.url())).await;
    // An ApplicationSet there is ignored the same way (it would generate into team-a).
    let sets = api(
        &c,
        "team-a",
        &mooring_k8s::resources::applicationset_resource(),
    );
    create(
        &sets,
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
               "metadata": {"name": "fleet", "namespace": "team-a"},
               "spec": {"generators": [{"list": {"elements": [{"n": "x"}]}}],
                        "template": {"metadata": {"name": "gen-{{n}}"},
                                     "spec": {"project": "escape",
                                              "source": {"repoURL": repo.url(), "path": "web"},
                                              "destination": {"server": "https://kubernetes.default.svc", "namespace": "kube-system"}}}}}),
    )
    .await;
    let configmaps = api(
        &c,
        "team-a-web",
        &resource("", "v1", "ConfigMap", "configmaps"),
    );

    // 1. The controller reads only `argocd`: a Warning Event, no status, nothing deployed.
    let events = api(&c, "team-a", &resource("", "v1", "Event", "events"));
    let event = eventually(30, "an Event saying why web is ignored", || {
        find_event(
            &events,
            "NamespaceNotAllowed",
            "/involvedObject/kind",
            "Application",
        )
    })
    .await;
    assert_eq!(field(&event, "/involvedObject/name"), "web", "{event}");
    assert_eq!(field(&event, "/involvedObject/kind"), "Application");
    assert_eq!(field(&event, "/type"), "Warning");
    assert!(
        field(&event, "/message").contains("--application-namespaces"),
        "{event}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a = serde_json::to_value(apps.get("web").await.expect("app")).expect("json");
    assert!(
        a.get("status").is_none_or(Value::is_null),
        "never reconciled: {a}"
    );
    assert!(
        apps.get_opt("gen-x").await.expect("get").is_none(),
        "the ignored set generated nothing"
    );
    eventually(
        30,
        "an Event saying why the ApplicationSet is ignored",
        || {
            find_event(
                &events,
                "NamespaceNotAllowed",
                "/involvedObject/kind",
                "ApplicationSet",
            )
        },
    )
    .await;
    assert!(configmaps
        .get_opt("team-config")
        .await
        .expect("get")
        .is_none());
    drop(e);

    // 2. The controller allows team-*, but the project does not list team-a: refused.
    let e = controller_with(&cluster, |o| {
        o.control_plane.application_namespaces = vec!["team-*".into()];
    })
    .await;
    let a = eventually(30, "InvalidSpecError naming sourceNamespaces", || async {
        let a = serde_json::to_value(apps.get("web").await.ok()?).ok()?;
        a["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| {
                c["type"] == "InvalidSpecError"
                    && c["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("sourceNamespaces"))
            })
            .then_some(a)
    })
    .await;
    assert!(
        configmaps
            .get_opt("team-config")
            .await
            .expect("get")
            .is_none(),
        "{a}"
    );

    // The tenant's own project does not exist for the controller.
    apps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"project": "escape"}})),
    )
    .await
    .expect("patch");
    eventually(30, "the tenant's project is not found", || async {
        let a = serde_json::to_value(apps.get("web").await.ok()?).ok()?;
        a["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| {
                c["type"] == "InvalidSpecError"
                    && c["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("project escape which does not exist"))
            })
            .then_some(())
    })
    .await;
    assert!(configmaps
        .get_opt("team-config")
        .await
        .expect("get")
        .is_none());

    // 3. Both allow it: reconciled; its tracking ids name `team-a_web`.
    apps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"project": "team"}})),
    )
    .await
    .expect("patch");
    projects
        .patch(
            "team",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"sourceNamespaces": ["team-*"]}})),
        )
        .await
        .expect("patch project");
    let cm = eventually(60, "team-config deployed", || async {
        configmaps.get_opt("team-config").await.ok().flatten()
    })
    .await;
    let cm = serde_json::to_value(cm).expect("json");
    assert_eq!(
        field(&cm, "/metadata/annotations/argocd.argoproj.io~1tracking-id"),
        "team-a_web:/ConfigMap:team-a-web/team-config"
    );
    eventually(60, "web Synced and Healthy", || async {
        let a = serde_json::to_value(apps.get("web").await.ok()?).ok()?;
        (field(&a, "/status/sync/status") == "Synced"
            && field(&a, "/status/health/status") == "Healthy")
            .then_some(())
    })
    .await;
    drop(e);
    drop(cluster);
}

/// A cluster Secret outside the control-plane namespace registers nothing: an app naming
/// that cluster stays refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_secrets_outside_the_control_plane_are_not_read() {
    let repo = Repo::new();
    repo.write("web/config.yaml", CONFIG);
    repo.commit("config");
    let (_cluster, e) = env_with_cluster().await;
    let c = e.client.clone();
    let secrets = api(&c, "default", &resource("", "v1", "Secret", "secrets"));
    create(
        &secrets,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "cluster-hijack", "namespace": "default",
                            "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
               "stringData": {"name": "prod", "server": "https://10.9.9.9:6443", "config": "{}"}}),
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
               "metadata": {"name": "prod-web", "namespace": "argocd"},
               "spec": {"project": "default",
                   "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "web"},
                   "destination": {"name": "prod", "namespace": "web"}}}),
    )
    .await;
    let a = eventually(30, "prod is not a registered cluster", || async {
        let a = serde_json::to_value(apps.get("prod-web").await.ok()?).ok()?;
        a["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| {
                c["type"] == "InvalidSpecError"
                    && c["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("is not registered"))
            })
            .then_some(a)
    })
    .await;
    assert!(
        e.controller
            .ctx
            .clusters
            .read()
            .expect("lock")
            .get("prod")
            .is_none(),
        "{a}"
    );
}

/// `argocd.argoproj.io/refresh: hard` renders again, ignoring a cached render: a stale
/// cache entry (a manifest no longer in Git) is replaced by what Git holds; the annotation
/// is removed afterwards, as Argo CD does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_refresh_renders_again_and_clears_the_annotation() {
    let repo = Repo::new();
    repo.write("web/config.yaml", CONFIG);
    let commit = repo.commit("config");
    let (_cluster, e) = env_with_cluster().await;
    let c = e.client.clone();
    let apps = api(
        &c,
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    create(
        &apps,
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
               "metadata": {"name": "web", "namespace": "argocd"},
               "spec": {"project": "default",
                   "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "web"},
                   "destination": {"server": "https://kubernetes.default.svc", "namespace": "web"}}}),
    )
    .await;
    let resources = |a: &Value| -> Vec<String> {
        a["status"]["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| field(r, "/name").to_string())
            .collect()
    };
    eventually(30, "web compared", || async {
        let a = serde_json::to_value(apps.get("web").await.ok()?).ok()?;
        (resources(&a) == ["team-config"]).then_some(())
    })
    .await;
    // Poison the render cache for this commit: a normal refresh keeps using it.
    let source: mooring_core::app::ApplicationSource = serde_json::from_value(json!({
        "repoURL": repo.url(), "targetRevision": "main", "path": "web"
    }))
    .expect("source");
    let key = mooring_render::RenderCache::key_for(&repo.url(), &commit, "web", &source);
    e.controller.ctx.renders.insert(
        key,
        std::sync::Arc::new(vec![json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "stale"}, "data": {}})]),
    );
    let refresh = |level: &'static str| {
        let apps = apps.clone();
        async move {
            apps.patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": level}}}),
                ),
            )
            .await
            .expect("annotate");
        }
    };
    refresh("normal").await;
    eventually(30, "the cached render is used", || async {
        let a = serde_json::to_value(apps.get("web").await.ok()?).ok()?;
        (resources(&a) == ["stale"]
            && a.pointer("/metadata/annotations/argocd.argoproj.io~1refresh")
                .is_none())
        .then_some(())
    })
    .await;
    refresh("hard").await;
    eventually(30, "a hard refresh renders Git again", || async {
        let a = serde_json::to_value(apps.get("web").await.ok()?).ok()?;
        (resources(&a) == ["team-config"]
            && a.pointer("/metadata/annotations/argocd.argoproj.io~1refresh")
                .is_none())
        .then_some(())
    })
    .await;
}

/// Finding 1 of the security audit, as the attacker did it: a tenant who can commit only to
/// its project's repository commits an Application (no `spec.project`, then its own
/// permissive AppProject, then the project it belongs to) meant to create a
/// ClusterRoleBinding to cluster-admin and an object in kube-system. Its project
/// (`ml-platform`: namespaced kinds in `ml-*` only) deploys the tenant's files into
/// `ml-team`. Whatever the controller's `--application-namespaces`, nothing of the escape
/// is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_commit_cannot_escape_its_project() {
    let tenant = Repo::new();
    let escape_app = |name: &str, project: Option<&str>| {
        let project = project
            .map(|p| format!("  project: {p}\n"))
            .unwrap_or_default();
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {name}, namespace: ml-team}}\nspec:\n{project}  source: {{repoURL: \"{}\", targetRevision: main, path: evil}}\n  destination: {{server: \"https://kubernetes.default.svc\", namespace: kube-system}}\n  syncPolicy: {{automated: {{prune: true}}}}\n",
            tenant.url()
        )
    };
    tenant.write("apps/escape.yaml", &escape_app("escape", None));
    tenant.write(
        "apps/escape-own-project.yaml",
        &escape_app("escape-own-project", Some("escape")),
    );
    tenant.write(
        "apps/escape-as-member.yaml",
        &escape_app("escape-as-member", Some("ml-platform")),
    );
    tenant.write(
        "apps/project.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: escape, namespace: ml-team}\nspec:\n  sourceRepos: ['*']\n  sourceNamespaces: ['*']\n  destinations: [{server: '*', namespace: '*'}]\n  clusterResourceWhitelist: [{group: '*', kind: '*'}]\n",
    );
    tenant.write(
        "evil/crb.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: tenant-is-admin}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: ServiceAccount, name: default, namespace: ml-team}]\n",
    );
    tenant.write(
        "evil/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: planted, namespace: kube-system}\ndata: {owned: \"yes\"}\n",
    );
    tenant.commit("escape attempt");

    let (cluster, e) = env_with_cluster().await;
    let c = e.client.clone();
    let projects = api(&c, "argocd", &mooring_k8s::resources::appproject_resource());
    create(
        &projects,
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
               "metadata": {"name": "ml-platform", "namespace": "argocd"},
               "spec": {"sourceRepos": [tenant.url()],
                        "sourceNamespaces": ["ml-*"],
                        "destinations": [{"server": "*", "namespace": "ml-*"}],
                        "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}]}}),
    )
    .await;
    // The admin's Application: the team's repository, into ml-team.
    let admin_apps = api(
        &c,
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    create(
        &admin_apps,
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
               "metadata": {"name": "team-apps", "namespace": "argocd"},
               "spec": {"project": "ml-platform",
                   "source": {"repoURL": tenant.url(), "targetRevision": "main", "path": "apps"},
                   "destination": {"server": "https://kubernetes.default.svc", "namespace": "ml-team"},
                   "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}}}),
    )
    .await;
    let tenant_apps = api(
        &c,
        "ml-team",
        &mooring_k8s::resources::application_resource(),
    );
    eventually(
        60,
        "the tenant's objects are deployed into ml-team",
        || async {
            let names: Vec<String> = tenant_apps
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter_map(|o| o.metadata.name)
                .collect();
            (names.len() == 3).then_some(())
        },
    )
    .await;
    let crbs: Api<DynamicObject> = Api::all_with(
        c.clone(),
        &resource(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
        ),
    );
    let kube_system = api(
        &c,
        "kube-system",
        &resource("", "v1", "ConfigMap", "configmaps"),
    );
    let nothing_escaped = || async {
        assert!(
            crbs.get_opt("tenant-is-admin")
                .await
                .expect("get")
                .is_none(),
            "a ClusterRoleBinding to cluster-admin was created"
        );
        assert!(
            kube_system.get_opt("planted").await.expect("get").is_none(),
            "a ConfigMap was created in kube-system"
        );
    };
    // 1. The control plane reads Applications from argocd only: the tenant's are ignored.
    let events = api(&c, "ml-team", &resource("", "v1", "Event", "events"));
    eventually(
        30,
        "the tenant's Applications are reported as ignored",
        || async {
            let n = events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .map(|o| serde_json::to_value(o).expect("json"))
                .filter(|ev| field(ev, "/reason") == "NamespaceNotAllowed")
                .count();
            (n >= 3).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    nothing_escaped().await;
    drop(e);

    // 2. The admin lets ml-* hold Applications: each escape is refused by the rules.
    let e = controller_with(&cluster, |o| {
        o.control_plane.application_namespaces = vec!["ml-*".into()];
    })
    .await;
    let condition = |name: &'static str, want: &'static str| {
        let tenant_apps = tenant_apps.clone();
        async move {
            eventually(60, &format!("{name}: {want}"), || async {
                let a = serde_json::to_value(tenant_apps.get(name).await.ok()?).ok()?;
                let text = a["status"].to_string();
                text.contains(want).then_some(())
            })
            .await
        }
    };
    // No spec.project: the `default` project (a real object now) does not list ml-team.
    condition("escape", "sourceNamespaces").await;
    // Its own AppProject, outside the control plane, does not exist for the controller.
    condition("escape-own-project", "project escape which does not exist").await;
    // Its real project does not permit the cluster-scoped kind nor kube-system.
    condition("escape-as-member", "kube-system").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    nothing_escaped().await;
    drop(e);
    drop(cluster);
}

/// A project's resource whitelist applies to what an app-of-apps creates: a project whose
/// `namespaceResourceWhitelist` names only workloads refuses the Application, AppProject
/// and Secret kinds its repository holds, before anything is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_whitelist_refuses_applications_projects_and_secrets() {
    let tenant = Repo::new();
    tenant.write(
        "apps/app.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: nested}\nspec:\n  source: {repoURL: 'https://x.example/r.git', path: p}\n  destination: {server: 'https://kubernetes.default.svc', namespace: ml-team}\n",
    );
    tenant.write(
        "apps/project.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: mine}\nspec: {sourceRepos: ['*']}\n",
    );
    tenant.write(
        "apps/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: repo\n  labels: {argocd.argoproj.io/secret-type: repository}\nstringData: {url: 'https://x.example/r.git', insecure: 'true'}\n",
    );
    tenant.write("apps/cm.yaml", CONFIG);
    tenant.commit("nested objects");
    let (_cluster, e) = env_with_cluster().await;
    let c = e.client.clone();
    let projects = api(&c, "argocd", &mooring_k8s::resources::appproject_resource());
    create(
        &projects,
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
               "metadata": {"name": "workloads", "namespace": "argocd"},
               "spec": {"sourceRepos": ["*"],
                        "destinations": [{"server": "*", "namespace": "ml-*"}],
                        "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}],
                        "namespaceResourceWhitelist": [
                            {"group": "", "kind": "ConfigMap"}, {"group": "apps", "kind": "Deployment"}]}}),
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
               "metadata": {"name": "team-apps", "namespace": "argocd"},
               "spec": {"project": "workloads",
                   "source": {"repoURL": tenant.url(), "targetRevision": "main", "path": "apps"},
                   "destination": {"server": "https://kubernetes.default.svc", "namespace": "ml-team"},
                   "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}}}),
    )
    .await;
    let message = eventually(60, "the sync is refused by the whitelist", || async {
        let a = serde_json::to_value(apps.get("team-apps").await.ok()?).ok()?;
        (field(&a, "/status/operationState/phase") == "Failed")
            .then(|| field(&a, "/status/operationState/message").to_string())
    })
    .await;
    for kind in [
        "Application.argoproj.io",
        "AppProject.argoproj.io",
        "Secret/ml-team/repo",
    ] {
        assert!(message.contains(kind), "{kind} refused: {message}");
    }
    assert!(message.contains("nothing was applied"), "{message}");
    let cms = api(
        &c,
        "ml-team",
        &resource("", "v1", "ConfigMap", "configmaps"),
    );
    assert!(
        cms.get_opt("team-config").await.expect("get").is_none(),
        "nothing applied"
    );
    let secrets = api(&c, "ml-team", &resource("", "v1", "Secret", "secrets"));
    assert!(secrets.get_opt("repo").await.expect("get").is_none());
}

/// Issue 12 finding 10, the controller's side: an AppProject role whose `policies` entry
/// smuggles a `g` line (and another whose object is outside the project) is reported on
/// the AppProject as a Warning Event naming the project, role and line, so the admin sees
/// why the REST API grants that role nothing; a valid role raises nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_role_policy_is_reported_on_the_project() {
    let (_cluster, e) = env_with_cluster().await;
    let c = e.client.clone();
    let projects = api(&c, "argocd", &mooring_k8s::resources::appproject_resource());
    for (name, policies) in [
        (
            "team-a",
            vec![
                "p, proj:team-a:ci, applications, get, team-a/*, allow\ng, proj:team-a:ci, role:admin",
            ],
        ),
        (
            "team-c",
            vec!["p, proj:team-c:ci, applications, sync, team-c/*, allow"],
        ),
    ] {
        create(
            &projects,
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
                   "metadata": {"name": name, "namespace": "argocd"},
                   "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": name}],
                            "roles": [{"name": "ci", "policies": policies},
                                      {"name": "ops", "policies": [format!("p, proj:{name}:ops, applications, delete, team-b/*, allow")]}]}}),
        )
        .await;
    }
    let events = api(&c, "argocd", &resource("", "v1", "Event", "events"));
    let event = eventually(30, "an InvalidRolePolicy Event on team-a", || {
        find_event(
            &events,
            "InvalidRolePolicy",
            "/involvedObject/name",
            "team-a",
        )
    })
    .await;
    assert_eq!(field(&event, "/type"), "Warning");
    assert_eq!(field(&event, "/involvedObject/kind"), "AppProject");
    let message = field(&event, "/message");
    assert!(
        message.contains("AppProject \"team-a\" role \"ci\" policy line 1")
            && message.contains("line break")
            && message.contains("role \"ops\"")
            && message.contains("team-b/*"),
        "{message}"
    );
    // team-c's `ci` role is valid: only its `ops` role is reported.
    let team_c = eventually(30, "an InvalidRolePolicy Event on team-c", || {
        find_event(
            &events,
            "InvalidRolePolicy",
            "/involvedObject/name",
            "team-c",
        )
    })
    .await;
    let message = field(&team_c, "/message");
    assert!(
        message.contains("role \"ops\"") && !message.contains("role \"ci\""),
        "{message}"
    );
}
