//! Authorization: who may do what, and the review APIs that ask.
//!
//! kind and k3s users expect `kubectl auth can-i`, `kubectl auth whoami`, `--as` (impersonation)
//! and `kubectl auth can-i --list` to answer as a real cluster does, and tools (Mooring's own
//! permission checks among them) ask the cluster with `SubjectAccessReview` whether an identity
//! may act. So the embedded cluster evaluates RBAC the way Kubernetes' RBAC authorizer does:
//!
//! - **Identities.** The cluster authenticates one credential, the bearer token of its
//!   kubeconfig ([`crate::access`]); its holder is the cluster administrator,
//!   [`ADMIN_USER`] in the group `system:masters`, as kind's admin kubeconfig is. Members of
//!   `system:masters` may do anything (Kubernetes' privileged group, which RBAC never
//!   restricts) — including impersonation: with `Impersonate-User`, `Impersonate-Group`,
//!   `Impersonate-Uid` and `Impersonate-Extra-*` (kubectl `--as`, `--as-group`), the request
//!   is made *as that identity* and authorized with RBAC like any other.
//! - **RBAC.** Roles, ClusterRoles (with `aggregationRule`, aggregated as the cluster-role
//!   aggregation controller does), RoleBindings and ClusterRoleBindings are read from the
//!   store at each decision; rules match verbs, API groups, resources, `resource/subresource`,
//!   `*/subresource`, resource names and non-resource URLs (with a trailing `*` prefix), and
//!   subjects match users, groups and service accounts (`system:serviceaccount:NS:NAME`, in
//!   groups `system:serviceaccounts` and `system:serviceaccounts:NS`).
//! - **Reviews** ([`review`]): `SelfSubjectAccessReview`, `SelfSubjectRulesReview`,
//!   `SubjectAccessReview`, `LocalSubjectAccessReview`, `SelfSubjectReview` (`kubectl auth
//!   whoami`) and `TokenReview`. They are questions: the answer is the request with a
//!   `status`, and nothing is stored.
//! - **Bootstrap roles** ([`bootstrap_objects`]): the default ClusterRoles a real cluster starts
//!   with (`cluster-admin`, the aggregated `admin`/`edit`/`view`, `system:basic-user`,
//!   `system:discovery`, `system:public-info-viewer`) and their bindings, so that "may this
//!   service account list pods?" has the answer users know.
//!
//! The evaluation ([`Rbac::authorize`], [`Rbac::rules_for`], [`request_attributes`]) is pure,
//! over a snapshot of the RBAC objects; only [`Rbac::load`] and [`review`] touch the store.

use crate::api::{Api, ListOptions};
use crate::error::ApiError;
use crate::registry::ResourceType;
use crate::selector::LabelSelector;
use axum::http::{HeaderMap, Method};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The user the cluster's token authenticates, as kind's admin kubeconfig names it.
pub const ADMIN_USER: &str = "kubernetes-admin";

/// Kubernetes' privileged group: never restricted by RBAC.
pub const MASTERS_GROUP: &str = "system:masters";

const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// Label the bootstrap RBAC objects carry in a real cluster.
const BOOTSTRAP_LABEL: &str = "kubernetes.io/bootstrapping";

/// An authenticated (or impersonated) identity: Kubernetes' `user.Info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The holder of the cluster's token.
    pub fn admin() -> Self {
        UserInfo {
            username: ADMIN_USER.into(),
            uid: String::new(),
            groups: vec![MASTERS_GROUP.into(), AUTHENTICATED_GROUP.into()],
            extra: BTreeMap::new(),
        }
    }

    /// Whether RBAC is bypassed (`system:masters`).
    pub fn is_privileged(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS_GROUP)
    }

    fn to_json(&self) -> Value {
        let mut v = json!({"username": self.username, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }
}

/// The identity a request acts as: the administrator, or whom it impersonates.
///
/// As in Kubernetes, impersonated groups are exactly the `Impersonate-Group` values plus
/// `system:authenticated`; a service account user also gets its two service-account
/// groups. Impersonating groups, a UID or extras without a user is a bad request.
pub fn identity(headers: &HeaderMap) -> Result<UserInfo, ApiError> {
    let values = |name: &str| -> Result<Vec<String>, ApiError> {
        headers
            .get_all(name)
            .iter()
            .map(|v| {
                v.to_str().map(str::to_string).map_err(|_| {
                    ApiError::BadRequest(format!("the {name} header is not valid text"))
                })
            })
            .collect()
    };
    let users = values("impersonate-user")?;
    let groups = values("impersonate-group")?;
    let uids = values("impersonate-uid")?;
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix("impersonate-extra-") {
            let value = value.to_str().map_err(|_| {
                ApiError::BadRequest(format!("the {name} header is not valid text"))
            })?;
            let key = percent_decode(key);
            extra.entry(key).or_default().push(value.to_string());
        }
    }
    let Some(username) = users.first() else {
        if !groups.is_empty() || !uids.is_empty() || !extra.is_empty() {
            return Err(ApiError::BadRequest(
                "requested impersonation of groups, a UID or extra fields without impersonating a user (Impersonate-User)".into(),
            ));
        }
        return Ok(UserInfo::admin());
    };
    if users.len() > 1 || uids.len() > 1 {
        return Err(ApiError::BadRequest(
            "only one Impersonate-User and one Impersonate-Uid may be given".into(),
        ));
    }
    if username.is_empty() {
        return Err(ApiError::BadRequest(
            "Impersonate-User must name a user".into(),
        ));
    }
    Ok(impersonated(
        username,
        uids.first().cloned().unwrap_or_default(),
        groups,
        extra,
    ))
}

/// The identity Kubernetes builds for an impersonated (or reviewed) user.
fn impersonated(
    username: &str,
    uid: String,
    mut groups: Vec<String>,
    extra: BTreeMap<String, Vec<String>>,
) -> UserInfo {
    if let Some((ns, _)) = service_account_of(username) {
        for g in [
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
        ] {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
    }
    if username != "system:anonymous" && !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        groups.push(AUTHENTICATED_GROUP.into());
    }
    UserInfo {
        username: username.to_string(),
        uid,
        groups,
        extra,
    }
}

/// `(namespace, name)` of a `system:serviceaccount:NS:NAME` user.
fn service_account_of(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("k={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// What a request asks to do: Kubernetes' authorizer attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    /// Whether this is a resource request (else `path` is a non-resource URL).
    pub resource_request: bool,
    pub namespace: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub path: String,
}

/// The attributes of an HTTP request, as Kubernetes' request-info factory derives them.
pub fn request_attributes(method: &Method, path: &str, query_watch: bool) -> Attributes {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let non_resource = || Attributes {
        verb: method.as_str().to_ascii_lowercase(),
        path: path.to_string(),
        ..Default::default()
    };
    let (group, version, mut rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return non_resource(),
    };
    if rest.is_empty() {
        return non_resource();
    }
    let mut a = Attributes {
        resource_request: true,
        api_group: group.to_string(),
        api_version: version.to_string(),
        path: path.to_string(),
        ..Default::default()
    };
    let mut watch = false;
    if rest.first() == Some(&"watch") {
        watch = true;
        rest = &rest[1..];
    }
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        a.namespace = rest[1].to_string();
        // `namespaces/{name}/status|finalize` are the namespace's own subresources.
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    a.resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
    a.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
    a.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
    // `/api/v1/namespaces/{name}` names a namespace; its namespace is itself, as Kubernetes
    // records it.
    if a.resource == "namespaces" && !a.namespace.is_empty() && rest.len() <= 3 {
        if let ["namespaces", ns, tail @ ..] = rest {
            a.name = ns.to_string();
            a.subresource = tail.first().map(|s| s.to_string()).unwrap_or_default();
        }
    }
    a.verb = match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if a.name.is_empty() => "deletecollection",
        Method::DELETE => "delete",
        Method::GET | Method::HEAD if watch || (query_watch && a.name.is_empty()) => "watch",
        Method::GET | Method::HEAD if a.name.is_empty() => "list",
        Method::GET | Method::HEAD => "get",
        _ => "",
    }
    .to_string();
    if a.verb.is_empty() {
        a.verb = method.as_str().to_ascii_lowercase();
    }
    a
}

/// The answer to "may this identity do that?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Why, as Kubernetes' RBAC authorizer words it (empty when denied without reason).
    pub reason: String,
}

/// A snapshot of the cluster's RBAC objects, with aggregated ClusterRoles resolved.
#[derive(Debug, Clone, Default)]
pub struct Rbac {
    roles: Vec<Value>,
    cluster_roles: Vec<Value>,
    role_bindings: Vec<Value>,
    cluster_role_bindings: Vec<Value>,
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn namespace_of(v: &Value) -> &str {
    v.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn string_list(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

impl Rbac {
    /// Build a snapshot from the four kinds' objects; aggregated ClusterRoles get the rules
    /// of the ClusterRoles their selectors match, repeated to a fixed point (aggregates of
    /// aggregates), as the aggregation controller converges.
    pub fn new(
        roles: Vec<Value>,
        mut cluster_roles: Vec<Value>,
        role_bindings: Vec<Value>,
        cluster_role_bindings: Vec<Value>,
    ) -> Self {
        for _ in 0..8 {
            let mut changed = false;
            for i in 0..cluster_roles.len() {
                let Some(selectors) = cluster_roles[i]
                    .pointer("/aggregationRule/clusterRoleSelectors")
                    .and_then(Value::as_array)
                    .cloned()
                else {
                    continue;
                };
                let selectors: Vec<LabelSelector> = selectors
                    .iter()
                    .filter_map(|s| LabelSelector::from_label_selector_json(s).ok())
                    .collect();
                let mut rules: Vec<Value> = Vec::new();
                for (j, other) in cluster_roles.iter().enumerate() {
                    if j == i {
                        continue;
                    }
                    let labels = other
                        .pointer("/metadata/labels")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    if selectors.iter().any(|s| s.matches(&labels)) {
                        for r in other
                            .get("rules")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            if !rules.contains(r) {
                                rules.push(r.clone());
                            }
                        }
                    }
                }
                if cluster_roles[i].get("rules") != Some(&json!(rules)) {
                    cluster_roles[i]["rules"] = json!(rules);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        Rbac {
            roles,
            cluster_roles,
            role_bindings,
            cluster_role_bindings,
        }
    }

    /// Read the RBAC objects from the cluster.
    pub fn load(api: &Api) -> Result<Self, ApiError> {
        let all = |plural: &str| -> Result<Vec<Value>, ApiError> {
            let rt = api
                .registry
                .get("rbac.authorization.k8s.io", "v1", plural)
                .ok_or_else(|| ApiError::Internal(format!("{plural} are not registered")))?;
            let res = api.list(&rt, None, &ListOptions::default())?;
            res.items.iter().map(|s| Api::present(&rt, s)).collect()
        };
        Ok(Rbac::new(
            all("roles")?,
            all("clusterroles")?,
            all("rolebindings")?,
            all("clusterrolebindings")?,
        ))
    }

    fn cluster_role(&self, name: &str) -> Option<&Value> {
        self.cluster_roles.iter().find(|r| name_of(r) == name)
    }

    fn role(&self, namespace: &str, name: &str) -> Option<&Value> {
        self.roles
            .iter()
            .find(|r| name_of(r) == name && namespace_of(r) == namespace)
    }

    /// The rules of a binding's role, with the words of the reason ("ClusterRole \"x\"").
    fn role_rules(&self, binding: &Value, binding_ns: &str) -> Option<(String, &[Value])> {
        let kind = binding.pointer("/roleRef/kind").and_then(Value::as_str)?;
        let name = binding.pointer("/roleRef/name").and_then(Value::as_str)?;
        let role = match kind {
            "ClusterRole" => self.cluster_role(name)?,
            "Role" if !binding_ns.is_empty() => self.role(binding_ns, name)?,
            _ => return None,
        };
        let rules = role.get("rules").and_then(Value::as_array)?;
        Some((format!("{kind} {name:?}"), rules.as_slice()))
    }

    /// The bindings that apply to `user` in `namespace` (cluster-wide ones first), each with
    /// the subject that matched and the binding's words for a reason.
    fn applicable<'a>(
        &'a self,
        user: &'a UserInfo,
        namespace: &'a str,
    ) -> impl Iterator<Item = (String, String, &'a [Value])> + 'a {
        let cluster = self.cluster_role_bindings.iter().filter_map(move |b| {
            let subject = matching_subject(b, user, "")?;
            let (role, rules) = self.role_rules(b, "")?;
            Some((
                format!("ClusterRoleBinding {:?} of {role} to {subject}", name_of(b)),
                String::new(),
                rules,
            ))
        });
        let local = self
            .role_bindings
            .iter()
            .filter(move |b| !namespace.is_empty() && namespace_of(b) == namespace)
            .filter_map(move |b| {
                let subject = matching_subject(b, user, namespace)?;
                let (role, rules) = self.role_rules(b, namespace)?;
                Some((
                    format!(
                        "RoleBinding {:?} of {role} to {subject}",
                        format!("{namespace}/{}", name_of(b))
                    ),
                    namespace.to_string(),
                    rules,
                ))
            });
        cluster.chain(local)
    }

    /// Kubernetes' RBAC decision (with the privileged group first).
    pub fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision {
        if user.is_privileged() {
            return Decision {
                allowed: true,
                reason: format!("user is in the privileged group {MASTERS_GROUP:?}"),
            };
        }
        let namespace = if a.resource_request {
            a.namespace.as_str()
        } else {
            ""
        };
        for (words, _, rules) in self.applicable(user, namespace) {
            if rules.iter().any(|r| rule_allows(r, a)) {
                return Decision {
                    allowed: true,
                    reason: format!("RBAC: allowed by {words}"),
                };
            }
        }
        Decision {
            allowed: false,
            reason: String::new(),
        }
    }

    /// The rules `user` has in `namespace` (cluster-wide and local), as
    /// `SelfSubjectRulesReview` lists them: `(resourceRules, nonResourceRules)`.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<Value>, Vec<Value>) {
        let mut resource_rules = Vec::new();
        let mut non_resource = Vec::new();
        if user.is_privileged() {
            resource_rules.push(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
            non_resource.push(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
            return (resource_rules, non_resource);
        }
        for (_, _, rules) in self.applicable(user, namespace) {
            for r in rules {
                let verbs = string_list(r.get("verbs"));
                let urls = string_list(r.get("nonResourceURLs"));
                if !urls.is_empty() {
                    let v = json!({"verbs": verbs, "nonResourceURLs": urls});
                    if !non_resource.contains(&v) {
                        non_resource.push(v);
                    }
                    continue;
                }
                let mut v = json!({"verbs": verbs, "apiGroups": string_list(r.get("apiGroups")),
                    "resources": string_list(r.get("resources"))});
                let names = string_list(r.get("resourceNames"));
                if !names.is_empty() {
                    v["resourceNames"] = json!(names);
                }
                if !resource_rules.contains(&v) {
                    resource_rules.push(v);
                }
            }
        }
        (resource_rules, non_resource)
    }
}

/// The subject of `binding` that `user` is, in Kubernetes' words (`User "bob"`), if any.
/// A service-account subject without a namespace takes the binding's.
fn matching_subject(binding: &Value, user: &UserInfo, binding_ns: &str) -> Option<String> {
    binding
        .get("subjects")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|s| {
            let kind = s.get("kind").and_then(Value::as_str)?;
            let name = s.get("name").and_then(Value::as_str)?;
            let hit = match kind {
                "User" => user.username == name,
                "Group" => user.groups.iter().any(|g| g == name),
                "ServiceAccount" => {
                    let ns = s
                        .get("namespace")
                        .and_then(Value::as_str)
                        .filter(|n| !n.is_empty())
                        .unwrap_or(binding_ns);
                    !ns.is_empty() && user.username == format!("system:serviceaccount:{ns}:{name}")
                }
                _ => false,
            };
            hit.then(|| format!("{kind} {name:?}"))
        })
}

fn has(list: &[&str], want: &str) -> bool {
    list.iter().any(|x| *x == "*" || *x == want)
}

/// Whether one PolicyRule allows the request, as Kubernetes' `RuleAllows`.
pub fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let verbs = string_list(rule.get("verbs"));
    if !has(&verbs, &a.verb) {
        return false;
    }
    if !a.resource_request {
        return string_list(rule.get("nonResourceURLs")).iter().any(|u| {
            *u == "*"
                || *u == a.path
                || u.strip_suffix('*')
                    .is_some_and(|prefix| a.path.starts_with(prefix))
        });
    }
    if !has(&string_list(rule.get("apiGroups")), &a.api_group) {
        return false;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resources = string_list(rule.get("resources"));
    let resource_ok = resources.iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && *r == format!("*/{}", a.subresource))
    });
    if !resource_ok {
        return false;
    }
    let names = string_list(rule.get("resourceNames"));
    names.is_empty() || (!a.name.is_empty() && names.contains(&a.name.as_str()))
}

/// The Forbidden error Kubernetes returns for a denied request.
pub fn forbidden(user: &UserInfo, a: &Attributes) -> ApiError {
    if !a.resource_request {
        return ApiError::Forbidden(format!(
            "forbidden: User {:?} cannot {} path {:?}",
            user.username, a.verb, a.path
        ));
    }
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let qualified = if a.api_group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.api_group)
    };
    let object = if a.name.is_empty() {
        qualified
    } else {
        format!("{qualified} {:?}", a.name)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", a.namespace)
    };
    ApiError::Forbidden(format!(
        "{object} is forbidden: User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        user.username, a.verb, a.api_group
    ))
}

fn invalid(kind: &str, field: &str, message: &str) -> ApiError {
    ApiError::Invalid {
        message: format!(
            "{kind}.{} \"\" is invalid: {field}: {message}",
            group_of(kind)
        ),
        details: Default::default(),
        causes: vec![format!("{field}: {message}")],
    }
}

fn group_of(kind: &str) -> &'static str {
    match kind {
        "SelfSubjectReview" | "TokenReview" => "authentication.k8s.io",
        _ => "authorization.k8s.io",
    }
}

/// The attributes a review's `spec` asks about (`resourceAttributes` xor
/// `nonResourceAttributes`).
fn review_attributes(kind: &str, spec: &Value) -> Result<Attributes, ApiError> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match (
        spec.get("resourceAttributes").filter(|v| !v.is_null()),
        spec.get("nonResourceAttributes").filter(|v| !v.is_null()),
    ) {
        (Some(r), None) => {
            if !r.is_object() {
                return Err(invalid(
                    kind,
                    "spec.resourceAttributes",
                    "Invalid value: must be an object",
                ));
            }
            Ok(Attributes {
                verb: s(r, "verb"),
                resource_request: true,
                namespace: s(r, "namespace"),
                api_group: s(r, "group"),
                api_version: s(r, "version"),
                resource: s(r, "resource"),
                subresource: s(r, "subresource"),
                name: s(r, "name"),
                path: String::new(),
            })
        }
        (None, Some(n)) => Ok(Attributes {
            verb: s(n, "verb"),
            path: s(n, "path"),
            ..Default::default()
        }),
        (Some(_), Some(_)) => Err(invalid(
            kind,
            "spec",
            "Invalid value: \"\": cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => Err(invalid(
            kind,
            "spec.resourceAttributes",
            "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

/// Answer a review: `body` is the request object of kind `rt`, `namespace` the URL's (for
/// `LocalSubjectAccessReview`), `requester` who asks. Returns the object with its `status`.
pub fn review(
    api: &Api,
    rt: &ResourceType,
    namespace: Option<&str>,
    body: Value,
    requester: &UserInfo,
    token_matches: impl Fn(&str) -> bool,
) -> Result<Value, ApiError> {
    let kind = rt.kind.as_str();
    let Value::Object(mut obj) = body else {
        return Err(ApiError::BadRequest(format!(
            "a {kind} must be a JSON object"
        )));
    };
    if let Some(k) = obj.get("kind").and_then(Value::as_str) {
        if k != kind {
            return Err(ApiError::BadRequest(format!(
                "the body is a {k}, but the request is for a {kind}"
            )));
        }
    }
    obj.insert("apiVersion".into(), json!(rt.api_version()));
    obj.insert("kind".into(), json!(kind));
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    if !(spec.is_object() || spec.is_null()) {
        return Err(invalid(kind, "spec", "Invalid value: must be an object"));
    }
    let status = match kind {
        "SelfSubjectReview" => json!({"userInfo": requester.to_json()}),
        "TokenReview" => {
            let token = spec.get("token").and_then(Value::as_str).unwrap_or("");
            if token.is_empty() {
                return Err(invalid(kind, "spec.token", "Required value"));
            }
            if token_matches(token) {
                json!({"authenticated": true, "user": UserInfo::admin().to_json(),
                       "audiences": ["https://kubernetes.default.svc.cluster.local"]})
            } else {
                json!({"authenticated": false, "error": "invalid bearer token"})
            }
        }
        "SelfSubjectRulesReview" => {
            let ns = spec.get("namespace").and_then(Value::as_str).unwrap_or("");
            let (resource_rules, non_resource_rules) = Rbac::load(api)?.rules_for(requester, ns);
            json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                   "incomplete": false})
        }
        "SelfSubjectAccessReview" | "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            let attrs = review_attributes(kind, &spec)?;
            let subject = if kind == "SelfSubjectAccessReview" {
                requester.clone()
            } else {
                let user = spec.get("user").and_then(Value::as_str).unwrap_or("");
                let groups: Vec<String> = string_list(spec.get("groups"))
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                if user.is_empty() && groups.is_empty() {
                    return Err(invalid(
                        kind,
                        "spec.user",
                        "Invalid value: \"\": at least one of user or group must be specified",
                    ));
                }
                let extra: BTreeMap<String, Vec<String>> = spec
                    .get("extra")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    string_list(Some(v))
                                        .into_iter()
                                        .map(str::to_string)
                                        .collect(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                // A review names the identity exactly: no groups are added.
                UserInfo {
                    username: user.to_string(),
                    uid: spec
                        .get("uid")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    groups,
                    extra,
                }
            };
            if kind == "LocalSubjectAccessReview" {
                let url_ns = namespace.unwrap_or("");
                if !attrs.resource_request || attrs.namespace != url_ns {
                    return Err(invalid(
                        kind,
                        "spec.resourceAttributes.namespace",
                        &format!(
                            "Invalid value: {:?}: must match metadata.namespace",
                            attrs.namespace
                        ),
                    ));
                }
            }
            let d = Rbac::load(api)?.authorize(&subject, &attrs);
            let mut status = Map::new();
            status.insert("allowed".into(), json!(d.allowed));
            if !d.reason.is_empty() {
                status.insert("reason".into(), json!(d.reason));
            }
            Value::Object(status)
        }
        other => {
            return Err(ApiError::NotFound {
                message: format!("{other} is not a review this server answers"),
                details: Default::default(),
            })
        }
    };
    obj.insert("status".into(), status);
    obj.entry("metadata").or_insert_with(|| json!({}));
    Ok(Value::Object(obj))
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

/// The default ClusterRoles and ClusterRoleBindings of a Kubernetes cluster (the RBAC
/// bootstrap policy, reduced to the workload APIs this cluster serves).
pub fn bootstrap_objects() -> Vec<Value> {
    let labels = |extra: &[(&str, &str)]| {
        let mut m = Map::new();
        m.insert(BOOTSTRAP_LABEL.into(), json!("rbac-defaults"));
        for (k, v) in extra {
            m.insert(k.to_string(), json!(v));
        }
        Value::Object(m)
    };
    let cluster_role = |name: &str, l: Value, rules: Vec<Value>| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": name, "labels": l,
                            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
               "rules": rules})
    };
    let aggregated = |name: &str, to: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": name, "labels": labels(&[]),
                            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
               "aggregationRule": {"clusterRoleSelectors": [
                   {"matchLabels": {format!("rbac.authorization.k8s.io/aggregate-to-{to}"): "true"}}]},
               "rules": []})
    };
    let binding = |name: &str, role: &str, group: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": name, "labels": labels(&[]),
                            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]})
    };
    let core_read = [
        "pods",
        "pods/log",
        "pods/status",
        "services",
        "services/status",
        "endpoints",
        "configmaps",
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "replicationcontrollers",
        "replicationcontrollers/scale",
        "serviceaccounts",
        "events",
        "limitranges",
        "resourcequotas",
        "namespaces/status",
    ];
    let apps = [
        "deployments",
        "deployments/scale",
        "deployments/status",
        "replicasets",
        "replicasets/scale",
        "replicasets/status",
        "statefulsets",
        "statefulsets/scale",
        "statefulsets/status",
        "daemonsets",
        "daemonsets/status",
        "controllerrevisions",
    ];
    let view_rules = vec![
        rule(READ, &[""], &core_read),
        rule(READ, &[""], &["namespaces"]),
        rule(READ, &["apps"], &apps),
        rule(
            READ,
            &["batch"],
            &["jobs", "jobs/status", "cronjobs", "cronjobs/status"],
        ),
        rule(
            READ,
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
        rule(
            READ,
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
        ),
        rule(
            READ,
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
        rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
        rule(READ, &["events.k8s.io"], &["events"]),
        rule(READ, &["metrics.k8s.io"], &["pods", "nodes"]),
    ];
    let edit_rules = vec![
        rule(
            WRITE,
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "services",
                "services/proxy",
                "endpoints",
                "configmaps",
                "secrets",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
            ],
        ),
        rule(READ, &[""], &["secrets"]),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(
            WRITE,
            &["apps"],
            &[
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
                "daemonsets",
            ],
        ),
        rule(WRITE, &["batch"], &["jobs", "cronjobs"]),
        rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
        rule(
            WRITE,
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
        ),
        rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
    ];
    let admin_rules = vec![
        rule(
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ],
            &["rbac.authorization.k8s.io"],
            &["roles", "rolebindings"],
        ),
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews"],
        ),
    ];
    vec![
        cluster_role(
            "cluster-admin",
            labels(&[]),
            vec![
                rule(&["*"], &["*"], &["*"]),
                json!({"verbs": ["*"], "nonResourceURLs": ["*"]}),
            ],
        ),
        aggregated("admin", "admin"),
        aggregated("edit", "edit"),
        aggregated("view", "view"),
        cluster_role(
            "system:aggregate-to-admin",
            labels(&[("rbac.authorization.k8s.io/aggregate-to-admin", "true")]),
            admin_rules,
        ),
        cluster_role(
            "system:aggregate-to-edit",
            labels(&[
                ("rbac.authorization.k8s.io/aggregate-to-admin", "true"),
                ("rbac.authorization.k8s.io/aggregate-to-edit", "true"),
            ]),
            edit_rules,
        ),
        cluster_role(
            "system:aggregate-to-view",
            labels(&[
                ("rbac.authorization.k8s.io/aggregate-to-admin", "true"),
                ("rbac.authorization.k8s.io/aggregate-to-edit", "true"),
                ("rbac.authorization.k8s.io/aggregate-to-view", "true"),
            ]),
            view_rules,
        ),
        cluster_role(
            "system:basic-user",
            labels(&[]),
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:discovery",
            labels(&[]),
            vec![json!({"verbs": ["get"], "nonResourceURLs": [
                "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                "/openapi/*", "/readyz", "/version", "/version/"]})],
        ),
        cluster_role(
            "system:public-info-viewer",
            labels(&[]),
            vec![json!({"verbs": ["get"], "nonResourceURLs": [
                "/healthz", "/livez", "/readyz", "/version", "/version/"]})],
        ),
        binding("cluster-admin", "cluster-admin", MASTERS_GROUP),
        binding(
            "system:basic-user",
            "system:basic-user",
            AUTHENTICATED_GROUP,
        ),
        binding("system:discovery", "system:discovery", AUTHENTICATED_GROUP),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            AUTHENTICATED_GROUP,
        ),
    ]
}

/// The kinds' plurals, for storing [`bootstrap_objects`].
pub fn bootstrap_plural(kind: &str) -> &'static str {
    match kind {
        "ClusterRoleBinding" => "clusterrolebindings",
        _ => "clusterroles",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(ns: &str, name: &str) -> UserInfo {
        impersonated(
            &format!("system:serviceaccount:{ns}:{name}"),
            String::new(),
            vec![],
            BTreeMap::new(),
        )
    }

    fn attrs(verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            namespace: ns.into(),
            api_group: group.into(),
            resource: resource.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    fn rbac_with(extra: Vec<Value>) -> Rbac {
        let mut roles = vec![];
        let mut crs = vec![];
        let mut rbs = vec![];
        let mut crbs = vec![];
        for o in bootstrap_objects().into_iter().chain(extra) {
            match o["kind"].as_str() {
                Some("Role") => roles.push(o),
                Some("ClusterRole") => crs.push(o),
                Some("RoleBinding") => rbs.push(o),
                Some("ClusterRoleBinding") => crbs.push(o),
                _ => {}
            }
        }
        Rbac::new(roles, crs, rbs, crbs)
    }

    #[test]
    fn request_attributes_follow_kubernetes_request_info() {
        let a = request_attributes(
            &Method::GET,
            "/api/v1/namespaces/demo/pods/web-1/log",
            false,
        );
        assert_eq!(
            (
                a.verb.as_str(),
                a.namespace.as_str(),
                a.resource.as_str(),
                a.name.as_str(),
                a.subresource.as_str()
            ),
            ("get", "demo", "pods", "web-1", "log")
        );
        let a = request_attributes(&Method::GET, "/apis/apps/v1/deployments", true);
        assert_eq!((a.verb.as_str(), a.api_group.as_str()), ("watch", "apps"));
        let a = request_attributes(&Method::GET, "/api/v1/watch/namespaces/demo/pods", false);
        assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("watch", "demo"));
        let a = request_attributes(&Method::DELETE, "/api/v1/namespaces/demo/configmaps", false);
        assert_eq!(a.verb, "deletecollection");
        let a = request_attributes(&Method::GET, "/api/v1/namespaces/demo", false);
        assert_eq!(
            (a.resource.as_str(), a.name.as_str(), a.namespace.as_str()),
            ("namespaces", "demo", "demo")
        );
        let a = request_attributes(&Method::PUT, "/api/v1/namespaces/demo/finalize", false);
        assert_eq!(
            (a.resource.as_str(), a.name.as_str(), a.subresource.as_str()),
            ("namespaces", "demo", "finalize")
        );
        let a = request_attributes(&Method::GET, "/healthz", false);
        assert!(!a.resource_request);
        assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", "/healthz"));
    }

    #[test]
    fn masters_may_do_anything_and_others_only_what_rbac_grants() {
        let rbac = rbac_with(vec![]);
        assert!(
            rbac.authorize(&UserInfo::admin(), &attrs("delete", "", "nodes", "", "n1"))
                .allowed
        );
        let bob = impersonated("bob", String::new(), vec![], BTreeMap::new());
        assert!(
            !rbac
                .authorize(&bob, &attrs("list", "", "pods", "demo", ""))
                .allowed
        );
        // Discovery and self-reviews are every authenticated user's.
        let discovery = Attributes {
            verb: "get".into(),
            path: "/apis/apps".into(),
            ..Default::default()
        };
        assert!(rbac.authorize(&bob, &discovery).allowed);
        assert!(
            rbac.authorize(
                &bob,
                &attrs(
                    "create",
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews",
                    "",
                    ""
                )
            )
            .allowed
        );
    }

    #[test]
    fn role_bindings_grant_within_their_namespace_only() {
        let rbac = rbac_with(vec![
            json!({"kind": "Role", "metadata": {"name": "reader", "namespace": "demo"},
                   "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "ci-reads", "namespace": "demo"},
                   "roleRef": {"kind": "Role", "name": "reader"},
                   "subjects": [{"kind": "ServiceAccount", "name": "ci"}]}),
        ]);
        let ci = sa("demo", "ci");
        let d = rbac.authorize(&ci, &attrs("list", "", "pods", "demo", ""));
        assert!(d.allowed);
        assert_eq!(d.reason, "RBAC: allowed by RoleBinding \"demo/ci-reads\" of Role \"reader\" to ServiceAccount \"ci\"");
        let mut log = attrs("get", "", "pods", "demo", "web");
        log.subresource = "log".into();
        assert!(rbac.authorize(&ci, &log).allowed);
        assert!(
            !rbac
                .authorize(&ci, &attrs("list", "", "pods", "other", ""))
                .allowed
        );
        assert!(
            !rbac
                .authorize(&ci, &attrs("delete", "", "pods", "demo", "web"))
                .allowed
        );
        assert!(
            !rbac
                .authorize(&sa("other", "ci"), &attrs("list", "", "pods", "demo", ""))
                .allowed
        );
    }

    #[test]
    fn aggregated_roles_resource_names_and_wildcards() {
        let rbac = rbac_with(vec![
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "viewers"},
                   "roleRef": {"kind": "ClusterRole", "name": "view"},
                   "subjects": [{"kind": "Group", "name": "auditors"}]}),
            json!({"kind": "ClusterRole", "metadata": {"name": "one-cm"},
                   "rules": [{"verbs": ["get", "update"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"]},
                             {"verbs": ["get"], "apiGroups": ["*"], "resources": ["*/scale"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "demo"},
                   "roleRef": {"kind": "ClusterRole", "name": "one-cm"},
                   "subjects": [{"kind": "User", "name": "carol"}]}),
        ]);
        let auditor = impersonated(
            "ann",
            String::new(),
            vec!["auditors".into()],
            BTreeMap::new(),
        );
        // `view` aggregates system:aggregate-to-view's rules.
        assert!(
            rbac.authorize(&auditor, &attrs("list", "apps", "deployments", "x", ""))
                .allowed
        );
        assert!(
            !rbac
                .authorize(&auditor, &attrs("get", "", "secrets", "x", "s"))
                .allowed
        );
        let carol = impersonated("carol", String::new(), vec![], BTreeMap::new());
        assert!(
            rbac.authorize(
                &carol,
                &attrs("update", "", "configmaps", "demo", "settings")
            )
            .allowed
        );
        assert!(
            !rbac
                .authorize(&carol, &attrs("update", "", "configmaps", "demo", "other"))
                .allowed
        );
        assert!(
            !rbac
                .authorize(&carol, &attrs("list", "", "configmaps", "demo", ""))
                .allowed
        );
        let mut scale = attrs("get", "apps", "deployments", "demo", "web");
        scale.subresource = "scale".into();
        assert!(rbac.authorize(&carol, &scale).allowed);
        let (rules, _) = rbac.rules_for(&carol, "demo");
        assert!(
            rules
                .iter()
                .any(|r| r["resourceNames"] == json!(["settings"])),
            "{rules:?}"
        );
    }

    #[test]
    fn impersonation_headers_build_the_identity() {
        let mut h = HeaderMap::new();
        assert_eq!(identity(&h).expect("admin"), UserInfo::admin());
        h.insert(
            "impersonate-user",
            "system:serviceaccount:demo:ci".parse().expect("v"),
        );
        h.append("impersonate-group", "team-a".parse().expect("v"));
        let u = identity(&h).expect("impersonated");
        assert!(!u.is_privileged());
        assert_eq!(
            u.groups,
            [
                "team-a",
                "system:serviceaccounts",
                "system:serviceaccounts:demo",
                "system:authenticated"
            ]
        );
        let mut only_group = HeaderMap::new();
        only_group.insert("impersonate-group", "system:masters".parse().expect("v"));
        assert!(matches!(
            identity(&only_group),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn forbidden_messages_read_like_kubernetes() {
        let bob = impersonated("bob", String::new(), vec![], BTreeMap::new());
        let e = forbidden(&bob, &attrs("list", "apps", "deployments", "demo", ""));
        assert_eq!(
            e.to_string(),
            "deployments.apps is forbidden: User \"bob\" cannot list resource \"deployments\" in API group \"apps\" in the namespace \"demo\""
        );
        let e = forbidden(&bob, &attrs("get", "", "nodes", "", "n1"));
        assert_eq!(
            e.to_string(),
            "nodes \"n1\" is forbidden: User \"bob\" cannot get resource \"nodes\" in API group \"\" at the cluster scope"
        );
    }
}
