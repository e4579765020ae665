//! Authorization with the real kubectl: `auth can-i` (with `--as` impersonation and
//! `--list`), `auth whoami`, requests made as another identity and refused by RBAC, and the
//! review APIs with hostile bodies.

use crate::kubectl::{kubectl, ok};
use crate::support::{raw, start};
use serde_json::json;

const ROLE: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: demo}
rules:
- apiGroups: ['']
  resources: [pods, pods/log]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ci-reads-pods, namespace: demo}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects:
- {kind: ServiceAccount, name: ci, namespace: demo}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: auditors-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: auditors}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_whoami_and_impersonation_follow_rbac() {
    let c = start(None).await;
    ok(
        &c,
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n"),
    )
    .await;
    ok(&c, &["apply", "-f", "-"], Some(ROLE)).await;

    // The kubeconfig's identity is the administrator.
    assert_eq!(
        ok(&c, &["auth", "can-i", "create", "deployments"], None)
            .await
            .trim(),
        "yes"
    );
    assert_eq!(
        ok(&c, &["auth", "can-i", "*", "*"], None).await.trim(),
        "yes"
    );
    let who = ok(&c, &["auth", "whoami", "-o", "json"], None).await;
    let who: serde_json::Value = serde_json::from_str(&who).expect("whoami JSON");
    assert_eq!(who["status"]["userInfo"]["username"], "kubernetes-admin");
    assert!(who["status"]["userInfo"]["groups"]
        .as_array()
        .is_some_and(|g| g.contains(&json!("system:masters"))));

    // A service account may do exactly what its RoleBinding grants, in its namespace.
    let sa = "--as=system:serviceaccount:demo:ci";
    let can = |args: Vec<&'static str>| {
        let c = &c;
        async move {
            let mut a = vec!["auth", "can-i"];
            a.extend(args);
            kubectl(c, &a, None).await.stdout.trim().to_string()
        }
    };
    assert_eq!(can(vec!["list", "pods", "-n", "demo", sa]).await, "yes");
    assert_eq!(
        can(vec!["get", "pods", "--subresource=log", "-n", "demo", sa]).await,
        "yes"
    );
    assert_eq!(can(vec!["delete", "pods", "-n", "demo", sa]).await, "no");
    assert_eq!(can(vec!["list", "pods", "-n", "default", sa]).await, "no");
    assert_eq!(can(vec!["list", "secrets", "-n", "demo", sa]).await, "no");
    // Groups: `view` (aggregated from system:aggregate-to-view) reads workloads, not secrets.
    let auditor = ["--as=ann", "--as-group=auditors"];
    let args = [
        vec!["list", "deployments.apps", "-n", "demo"],
        auditor.to_vec(),
    ]
    .concat();
    assert_eq!(can(args).await, "yes");
    let args = [vec!["get", "secrets", "-n", "demo"], auditor.to_vec()].concat();
    assert_eq!(can(args).await, "no");

    // `--list` is a SelfSubjectRulesReview.
    let list = ok(&c, &["auth", "can-i", "--list", "-n", "demo", sa], None).await;
    assert!(
        list.contains("pods/log") && list.contains("[get list watch]"),
        "{list}"
    );
    assert!(list.contains("selfsubjectaccessreviews"), "{list}");

    // Requests made as the service account are authorized for real.
    let o = kubectl(&c, &["get", "pods", "-n", "demo", sa], None).await;
    assert!(o.ok, "{}", o.stderr);
    let o = kubectl(&c, &["get", "secrets", "-n", "demo", sa], None).await;
    assert!(!o.ok);
    assert!(
        o.stderr.contains("secrets is forbidden: User \"system:serviceaccount:demo:ci\" cannot list resource \"secrets\" in API group \"\" in the namespace \"demo\""),
        "{}",
        o.stderr
    );
    let o = kubectl(
        &c,
        &[
            "create",
            "configmap",
            "x",
            "-n",
            "demo",
            "--from-literal=a=b",
            sa,
            "-o",
            "json",
            "--dry-run=server",
        ],
        None,
    )
    .await;
    assert!(!o.ok && o.stderr.contains("forbidden"), "{}", o.stderr);
    // Nothing was written.
    let o = kubectl(&c, &["get", "configmap", "x", "-n", "demo"], None).await;
    assert!(!o.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_access_reviews_answer_and_refuse_malformed_questions() {
    let c = start(None).await;
    let token = std::fs::read_to_string(c.kubeconfig_path())
        .expect("kubeconfig")
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: ").map(str::to_string))
        .expect("token in the kubeconfig");
    let host = c.addr.to_string();
    let post = |path: &str, body: serde_json::Value| {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json"
        );
        let body = body.to_string();
        let c = &c;
        async move { raw(c, &head, body.as_bytes()).await }
    };
    let sar = |spec: serde_json::Value| json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec});

    // The bootstrap cluster-admin binding answers for system:masters; an unknown user is denied.
    let r = post(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        sar(json!({"user": "root", "groups": ["system:masters"],
                   "resourceAttributes": {"verb": "delete", "resource": "nodes"}})),
    )
    .await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(r.json()["status"]["allowed"], true);
    let r = post(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        sar(json!({"user": "mallory", "resourceAttributes": {"verb": "get", "resource": "secrets", "namespace": "default"}})),
    )
    .await;
    assert_eq!(
        (r.code, r.json()["status"]["allowed"].clone()),
        (201, json!(false)),
        "{}",
        r.body
    );
    let r = post(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        sar(json!({"groups": ["system:authenticated"], "nonResourceAttributes": {"verb": "get", "path": "/apis/apps"}})),
    )
    .await;
    assert_eq!(r.json()["status"]["allowed"], true, "{}", r.body);
    assert!(r.json()["status"]["reason"]
        .as_str()
        .is_some_and(|s| s.contains("system:discovery")));

    // Malformed questions: clear Status errors.
    for (body, code, needle) in [
        (
            sar(json!({"user": "a"})),
            422,
            "exactly one of nonResourceAttributes or resourceAttributes",
        ),
        (
            sar(
                json!({"user": "a", "resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"verb": "get", "path": "/"}}),
            ),
            422,
            "in combination",
        ),
        (
            sar(json!({"resourceAttributes": {"verb": "get"}})),
            422,
            "at least one of user or group",
        ),
        (json!(["not", "an", "object"]), 400, "JSON object"),
        (
            json!({"apiVersion": "v1", "kind": "ConfigMap", "spec": {}}),
            400,
            "the body is a ConfigMap",
        ),
    ] {
        let r = post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            body.clone(),
        )
        .await;
        assert_eq!(r.code, code, "{body}: {}", r.body);
        assert_eq!(r.json()["kind"], "Status");
        assert!(r.body.contains(needle), "{body}: {}", r.body);
    }
    // A LocalSubjectAccessReview must ask about its own namespace.
    let r = post(
        "/apis/authorization.k8s.io/v1/namespaces/demo/localsubjectaccessreviews",
        json!({"kind": "LocalSubjectAccessReview", "spec": {"user": "a",
               "resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "other"}}}),
    )
    .await;
    assert_eq!(r.code, 422, "{}", r.body);

    // Reviews are questions: no GET, no list, nothing stored.
    let r = raw(
        &c,
        &format!("GET /apis/authorization.k8s.io/v1/subjectaccessreviews HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}"),
        b"",
    )
    .await;
    assert_eq!(r.code, 405, "{}", r.body);
    // Impersonating a group without a user is refused before anything runs.
    let r = raw(
        &c,
        &format!("GET /api/v1/namespaces HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nImpersonate-Group: system:masters"),
        b"",
    )
    .await;
    assert_eq!(r.code, 400, "{}", r.body);
    // TokenReview tells the cluster's token from any other.
    let r = post(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        json!({"kind": "TokenReview", "spec": {"token": "not-the-token"}}),
    )
    .await;
    assert_eq!(r.json()["status"]["authenticated"], false, "{}", r.body);
    let r = post(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        json!({"kind": "TokenReview", "spec": {"token": token}}),
    )
    .await;
    assert_eq!(
        r.json()["status"]["user"]["username"],
        "kubernetes-admin",
        "{}",
        r.body
    );
}
