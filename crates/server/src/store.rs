//! Where accounts, policy, tokens and projects live: objects in the management cluster,
//! as Argo CD keeps them (the I/O edge of [`crate::rbac`] and [`crate::auth`]).
//!
//! | object | keys |
//! |---|---|
//! | ConfigMap `mooring-cm` | `accounts.NAME`, `accounts.NAME.enabled`, `accounts.NAME.groups`, `admin.enabled` |
//! | ConfigMap `mooring-rbac-cm` | `policy.csv`, `policy.*.csv`, `policy.default`, `scopes` |
//! | Secret `mooring-secret` | `tokens.json`: the hashes of issued tokens ([`TokenStore`]); `webhook.github.secret`, `webhook.gitlab.secret` (as in Argo CD's `argocd-secret`) |
//! | `AppProject` objects | `spec.roles` (read as JSON, whatever typed model the project has) |
//!
//! Everything is read per request (a handful of GETs against the API server), so a
//! policy or account change applies at once. Token writes use the Secret's
//! resourceVersion and retry on conflict, so concurrent issues never lose a token.

use crate::auth::{Account, TokenRecord, TokenStore};
use crate::rbac::{Project, Rbac, RbacError, Subject};
use mooring_k8s::k8s_openapi::api::core::v1::{ConfigMap, Secret};
use mooring_k8s::k8s_openapi::ByteString;
use mooring_k8s::kube;
use mooring_k8s::kube::api::{Api, DynamicObject, PostParams};
use std::collections::BTreeMap;
use std::time::Duration;

pub use mooring_core::app::SETTINGS_CONFIGMAP;
pub const RBAC_CONFIGMAP: &str = "mooring-rbac-cm";
pub const SECRET: &str = "mooring-secret";
const TOKENS_KEY: &str = "tokens.json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("ConfigMap {RBAC_CONFIGMAP}: {0}")]
    Policy(#[from] RbacError),
    #[error("Secret {SECRET} key {TOKENS_KEY} is not valid JSON: {0}")]
    Tokens(serde_json::Error),
    #[error("Secret {SECRET} changed concurrently too often; try again")]
    Conflict,
}

fn kube_err(what: &str) -> impl FnOnce(kube::Error) -> StoreError + '_ {
    move |source| StoreError::Kube {
        what: what.to_string(),
        source,
    }
}

/// Handle on the management cluster's settings objects in one namespace.
#[derive(Clone)]
pub struct Store {
    pub client: kube::Client,
    pub namespace: String,
}

/// A 404 (object or kind not served) reads as "absent".
fn absent<T>(r: Result<T, kube::Error>) -> Result<Option<T>, kube::Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

impl Store {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Store {
            client,
            namespace: namespace.to_string(),
        }
    }

    async fn configmap(&self, name: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        Ok(absent(api.get(name).await)
            .map_err(kube_err(name))?
            .and_then(|c| c.data)
            .unwrap_or_default())
    }

    pub async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        Ok(crate::auth::accounts(
            &self.configmap(SETTINGS_CONFIGMAP).await?,
        ))
    }

    pub async fn rbac(&self) -> Result<Rbac, StoreError> {
        Ok(Rbac::from_configmap(
            &self.configmap(RBAC_CONFIGMAP).await?,
        )?)
    }

    fn projects_api(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &mooring_k8s::resources::appproject_resource(),
        )
    }

    /// The AppProject `name`, as JSON; `None` when absent (or the kind is not served).
    pub async fn project_json(&self, name: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let p = absent(self.projects_api().get(name).await).map_err(kube_err("AppProject"))?;
        Ok(p.and_then(|p| serde_json::to_value(p).ok()))
    }

    pub async fn project(&self, name: &str) -> Result<Option<Project>, StoreError> {
        Ok(self
            .project_json(name)
            .await?
            .map(|v| Project::from_json(&v)))
    }

    pub async fn projects_json(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        let l = absent(self.projects_api().list(&Default::default()).await)
            .map_err(kube_err("AppProjects"))?;
        Ok(l.map(|l| {
            l.items
                .into_iter()
                .filter_map(|p| serde_json::to_value(p).ok())
                .collect()
        })
        .unwrap_or_default())
    }

    async fn secret(&self) -> Result<Option<Secret>, StoreError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        absent(api.get(SECRET).await).map_err(kube_err(SECRET))
    }

    fn tokens_of(secret: Option<&Secret>) -> Result<TokenStore, StoreError> {
        match secret
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(TOKENS_KEY))
        {
            Some(b) => serde_json::from_slice(&b.0).map_err(StoreError::Tokens),
            None => Ok(TokenStore::default()),
        }
    }

    /// The webhook secrets of `mooring-secret` (`webhook.github.secret`,
    /// `webhook.gitlab.secret`, as Argo CD's `argocd-secret`), empty values as absent.
    pub async fn webhook_secrets(&self) -> Result<(Option<String>, Option<String>), StoreError> {
        let secret = self.secret().await?;
        let key = |k: &str| data_key(secret.as_ref(), k);
        Ok((key("webhook.github.secret"), key("webhook.gitlab.secret")))
    }

    /// `webhook.registry.secret`: the bearer token of registry notifications.
    pub async fn registry_webhook_secret(&self) -> Result<Option<String>, StoreError> {
        let secret = self.secret().await?;
        Ok(data_key(secret.as_ref(), "webhook.registry.secret"))
    }

    pub async fn tokens(&self) -> Result<TokenStore, StoreError> {
        Self::tokens_of(self.secret().await?.as_ref())
    }

    /// Read-modify-write of the token store, retried on conflicting writes.
    pub async fn update_tokens<R>(
        &self,
        mut f: impl FnMut(&mut TokenStore) -> R,
    ) -> Result<R, StoreError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        for _ in 0..8 {
            let current = self.secret().await?;
            let mut store = Self::tokens_of(current.as_ref())?;
            let out = f(&mut store);
            let bytes = serde_json::to_vec(&store).map_err(StoreError::Tokens)?;
            let result = match current {
                Some(mut s) => {
                    s.data
                        .get_or_insert_with(Default::default)
                        .insert(TOKENS_KEY.into(), ByteString(bytes));
                    api.replace(SECRET, &PostParams::default(), &s).await
                }
                None => {
                    let s = Secret {
                        metadata: kube::api::ObjectMeta {
                            name: Some(SECRET.into()),
                            namespace: Some(self.namespace.clone()),
                            labels: Some(BTreeMap::from([(
                                "app.kubernetes.io/part-of".to_string(),
                                "mooring".to_string(),
                            )])),
                            ..Default::default()
                        },
                        data: Some(BTreeMap::from([(TOKENS_KEY.into(), ByteString(bytes))])),
                        ..Default::default()
                    };
                    api.create(&PostParams::default(), &s).await
                }
            };
            match result {
                Ok(_) => return Ok(out),
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(kube_err(SECRET)(e)),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Issue a token for `subject`; returns the token (show it once) and its record.
    pub async fn issue(
        &self,
        subject: &str,
        expires_in: Option<Duration>,
    ) -> Result<(String, TokenRecord), StoreError> {
        let now = mooring_core::time::now().as_second();
        self.update_tokens(|s| s.issue(subject, now, expires_in))
            .await
    }

    pub async fn revoke(&self, subject: &str, id: &str) -> Result<bool, StoreError> {
        self.update_tokens(|s| s.revoke(subject, id)).await
    }

    /// The first admin credential: a token is generated (and returned, to be shown once)
    /// only when `admin` has no valid token yet. There is no default password.
    pub async fn ensure_admin_token(&self) -> Result<Option<String>, StoreError> {
        let now = mooring_core::time::now().as_second();
        let issued = self
            .update_tokens(|s| {
                if s.has_valid("admin", now) {
                    None
                } else {
                    Some(s.issue("admin", now, None).0)
                }
            })
            .await?;
        Ok(issued)
    }

    /// The RBAC subject for `name`: a local account with its groups, a project role
    /// `proj:P:R`, or any other name (a role or group) as a bare subject.
    pub async fn subject(&self, name: &str) -> Result<Subject, StoreError> {
        let accounts = self.accounts().await?;
        Ok(match accounts.iter().find(|a| a.name == name) {
            Some(a) => Subject {
                name: a.name.clone(),
                groups: a.groups.clone(),
            },
            None => Subject {
                name: name.to_string(),
                groups: vec![],
            },
        })
    }

    /// May `subject` do `action` on `resource` `object`? The same evaluation the API
    /// runs (`mooring proj can-i` answers from here).
    pub async fn can_i(
        &self,
        subject: &Subject,
        action: &str,
        resource: &str,
        object: &str,
    ) -> Result<bool, StoreError> {
        let rbac = self.rbac().await?;
        let project = match crate::rbac::project_of(resource, object) {
            Some(p) => self.project(p).await?,
            None => None,
        };
        Ok(rbac.allowed(subject, resource, action, object, project.as_ref()))
    }
}

/// A non-empty key of a Secret's data, trimmed.
fn data_key(secret: Option<&Secret>, key: &str) -> Option<String> {
    secret
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
        .filter(|v| !v.is_empty())
}
