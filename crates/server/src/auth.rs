//! Local accounts, API tokens and the failed-authentication limiter (pure: no I/O).
//!
//! * **Accounts** are configured as in Argo CD's `argocd-cm`, in the `mooring-cm`
//!   ConfigMap: `accounts.NAME: apiKey, login`, `accounts.NAME.enabled: "false"`, plus
//!   `accounts.NAME.groups: a, b` (Mooring's addition: local accounts get groups, which
//!   the RBAC policy and project roles bind). `admin` always exists (`admin.enabled:
//!   "false"` disables it) and belongs to `role:admin` through the built-in policy.
//! * **No passwords.** Every credential is an API token; there is no default password to
//!   leak or brute-force. The first admin token is generated when Mooring starts for the
//!   first time and shown once.
//! * **Tokens** are 256 random bits (`mrg_` + base64url). Only their SHA-256 is stored:
//!   for a secret with 256 bits of entropy a fast hash is right (there is nothing to
//!   guess, so a slow password hash like argon2 would only cost CPU per request). Each
//!   record has an id (to list and revoke), a subject — an account name or a project
//!   role `proj:PROJECT:ROLE` — an issue time and an optional expiry. Revoking deletes
//!   the record, so a revoked token is indistinguishable from one never issued.
//! * **Brute force** ([`FailureLimiter`]): a presented token is always checked first, so
//!   a valid token is never refused because of anybody's failures. Failures are counted
//!   in token buckets per subject (an expired token or a disabled account counts against
//!   that account) and in one bucket for every token that names nobody (missing,
//!   malformed, unknown, revoked) — never per client IP: every client of a loopback
//!   server is 127.0.0.1, and a per-IP bucket let ten bad tokens lock the admin out. An
//!   empty bucket answers 429 with `Retry-After`, held back by a delay that doubles with
//!   each refusal in a row (at most [`MAX_BACKOFF`]), so a flood waits on itself. Tokens
//!   carry 256 random bits: guessing is hopeless anyway; the limiter keeps a flood cheap
//!   for the server and slow for the flooder.

use base64::Engine as _;
use mooring_core::time;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How long expired token records are kept (seconds).
const EXPIRED_KEPT_SECS: i64 = 7 * 86400;

/// Prefix of every Mooring API token.
pub const TOKEN_PREFIX: &str = "mrg_";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("no credentials: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("malformed token: expected `mrg_` followed by 43 base64url characters")]
    Malformed,
    #[error("invalid or revoked token")]
    Unknown,
    #[error("token {id} expired at {at}")]
    Expired { id: String, at: String },
    #[error("account {0:?} does not exist or is disabled")]
    AccountDisabled(String),
    #[error("account {0:?} cannot use API keys (add `apiKey` to accounts.{0} in mooring-cm)")]
    NoApiKey(String),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DurationError {
    #[error("bad duration {0:?}: use a number with s, m, h or d (e.g. 90d, 24h); 0 means never")]
    Bad(String),
}

/// A fresh token: 32 bytes from the OS-seeded CSPRNG.
pub fn generate_token() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Hex SHA-256 of a token, as stored.
pub fn hash_token(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `token` has the shape of one of ours (checked before any lookup).
pub fn well_formed(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// `90d`, `24h`, `30m`, `45s`, or a bare number of seconds; `0` → `None` (never expires).
pub fn parse_duration(s: &str) -> Result<Option<Duration>, DurationError> {
    let secs = mooring_core::time::parse_whole_seconds(s, mooring_core::time::UP_TO_DAYS)
        .ok_or_else(|| DurationError::Bad(s.trim().to_string()))?;
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

/// One issued token, as stored (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub id: String,
    /// An account name or `proj:PROJECT:ROLE`.
    pub subject: String,
    pub hash: String,
    /// Unix seconds.
    pub issued_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// Every issued token (the `tokens.json` key of the `mooring-secret` Secret).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenStore {
    #[serde(default)]
    pub tokens: Vec<TokenRecord>,
}

impl TokenStore {
    /// Issue a token for `subject`; returns the token (to show once) and its record.
    pub fn issue(
        &mut self,
        subject: &str,
        now: i64,
        expires_in: Option<Duration>,
    ) -> (String, TokenRecord) {
        // Forget tokens expired over a week ago, so the Secret does not grow forever
        // (a week of "expired" answers before they read as unknown).
        self.tokens.retain(|t| {
            t.expires_at
                .is_none_or(|e| e > now.saturating_sub(EXPIRED_KEPT_SECS))
        });
        let token = generate_token();
        let rec = TokenRecord {
            id: uuid::Uuid::new_v4().to_string(),
            subject: subject.to_string(),
            hash: hash_token(&token),
            issued_at: now,
            expires_at: expires_in.map(|d| now.saturating_add(d.as_secs() as i64)),
        };
        self.tokens.push(rec.clone());
        (token, rec)
    }

    /// Revoke `subject`'s token `id`; false when there is none.
    pub fn revoke(&mut self, subject: &str, id: &str) -> bool {
        let before = self.tokens.len();
        self.tokens
            .retain(|t| !(t.subject == subject && t.id == id));
        before != self.tokens.len()
    }

    /// The record of a presented token, if valid at `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<&TokenRecord, AuthError> {
        if !well_formed(token) {
            return Err(AuthError::Malformed);
        }
        let h = hash_token(token);
        let rec = self
            .tokens
            .iter()
            .find(|t| t.hash == h)
            .ok_or(AuthError::Unknown)?;
        match rec.expires_at {
            Some(exp) if exp <= now => Err(AuthError::Expired {
                id: rec.id.clone(),
                // An out-of-range expiry is still reported, as raw Unix seconds.
                at: time::from_unix(exp)
                    .map(time::format)
                    .unwrap_or_else(|_| exp.to_string()),
            }),
            _ => Ok(rec),
        }
    }

    /// Whether `subject` holds a token valid at `now`.
    pub fn has_valid(&self, subject: &str, now: i64) -> bool {
        self.tokens
            .iter()
            .any(|t| t.subject == subject && t.expires_at.is_none_or(|e| e > now))
    }
}

/// A local account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    pub name: String,
    pub enabled: bool,
    pub capabilities: Vec<String>,
    pub groups: Vec<String>,
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Accounts configured in `mooring-cm` (plus `admin`).
pub fn accounts(data: &BTreeMap<String, String>) -> Vec<Account> {
    let mut out = vec![Account {
        name: "admin".into(),
        enabled: data
            .get("admin.enabled")
            .is_none_or(|v| v.trim() != "false"),
        capabilities: vec!["apiKey".into(), "login".into()],
        groups: data
            .get("admin.groups")
            .map(|g| list(g))
            .unwrap_or_default(),
    }];
    for (k, v) in data {
        let Some(name) = k.strip_prefix("accounts.") else {
            continue;
        };
        if name.contains('.') || name.is_empty() || name == "admin" {
            continue;
        }
        out.push(Account {
            name: name.to_string(),
            enabled: data
                .get(&format!("accounts.{name}.enabled"))
                .is_none_or(|v| v.trim() != "false"),
            capabilities: list(v),
            groups: data
                .get(&format!("accounts.{name}.groups"))
                .map(|g| list(g))
                .unwrap_or_default(),
        });
    }
    out
}

/// The account behind a token subject, if it may use API keys.
pub fn account_for<'a>(accounts: &'a [Account], name: &str) -> Result<&'a Account, AuthError> {
    let a = accounts
        .iter()
        .find(|a| a.name == name && a.enabled)
        .ok_or_else(|| AuthError::AccountDisabled(name.to_string()))?;
    if !a.capabilities.iter().any(|c| c == "apiKey") {
        return Err(AuthError::NoApiKey(name.to_string()));
    }
    Ok(a)
}

/// Whose failures a failed authentication counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailureKey {
    /// A real token of this subject (an account or `proj:PROJECT:ROLE`) that was refused:
    /// expired, or its account disabled or without `apiKey`.
    Subject(String),
    /// Everything that names nobody: no token, a malformed one, an unknown or revoked one.
    /// One bucket for all such clients, wherever they connect from.
    Anonymous,
}

impl std::fmt::Display for FailureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureKey::Subject(s) => write!(f, "for {s:?}"),
            FailureKey::Anonymous => f.write_str("with unknown or malformed tokens"),
        }
    }
}

/// The first tarpit delay of a refused (429) answer; it doubles with each refusal in a
/// row, up to [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(50);
/// The longest a refused answer is held.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Failed authentications per [`FailureKey`]: a token bucket of `burst` failures,
/// refilled at `per_second`. Successful requests cost nothing and are never refused:
/// the limiter is only consulted once a token has failed, so a valid token is served
/// whatever other clients do (on a loopback server every client is 127.0.0.1, so a
/// per-IP bucket would let a flood of bad tokens lock the admin out).
///
/// Once a bucket is empty its failures are answered 429 with `Retry-After`, after a
/// delay that doubles with each refusal in a row ([`FailureLimiter::refused`]): the flood
/// waits, not the valid clients.
#[derive(Debug)]
pub struct FailureLimiter {
    burst: f64,
    per_second: f64,
    /// key → (tokens left, when, refusals in a row).
    buckets: HashMap<FailureKey, (f64, Instant, u32)>,
}

/// Buckets kept at most; beyond it, full (idle) buckets are forgotten first.
const MAX_BUCKETS: usize = 10_000;

impl FailureLimiter {
    pub fn new(burst: u32, per_second: f64) -> Self {
        FailureLimiter {
            burst: f64::from(burst.max(1)),
            per_second: per_second.max(1e-6),
            buckets: HashMap::new(),
        }
    }

    fn level(&self, key: &FailureKey, now: Instant) -> f64 {
        match self.buckets.get(key) {
            None => self.burst,
            Some((tokens, at, _)) => (tokens
                + now.saturating_duration_since(*at).as_secs_f64() * self.per_second)
                .min(self.burst),
        }
    }

    /// `Err(retry_after)` when `key` has used up its failures.
    pub fn check(&self, key: &FailureKey, now: Instant) -> Result<(), Duration> {
        let level = self.level(key, now);
        if level >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((1.0 - level) / self.per_second).ceil(),
            ))
        }
    }

    /// Record one failed authentication counted against `key` (refusals in a row reset).
    pub fn fail(&mut self, key: FailureKey, now: Instant) {
        let level = self.level(&key, now);
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(&key) {
            let (burst, rate) = (self.burst, self.per_second);
            self.buckets.retain(|_, (t, at, _)| {
                *t + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        self.buckets.insert(key, ((level - 1.0).max(0.0), now, 0));
    }

    /// Record a refusal (429) of `key` and return how long to hold the answer: 50 ms,
    /// doubling with each refusal in a row, at most [`MAX_BACKOFF`].
    pub fn refused(&mut self, key: &FailureKey, now: Instant) -> Duration {
        let level = self.level(key, now);
        let streak = match self.buckets.get_mut(key) {
            Some((tokens, at, streak)) => {
                *tokens = level;
                *at = now;
                *streak = streak.saturating_add(1);
                *streak
            }
            None => 0,
        };
        BASE_BACKOFF
            .saturating_mul(1u32 << streak.saturating_sub(1).min(16))
            .min(MAX_BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_well_formed_and_verified_by_hash() {
        let mut store = TokenStore::default();
        let (t1, r1) = store.issue("alice", 1000, None);
        let (t2, _) = store.issue("alice", 1000, Some(Duration::from_secs(60)));
        assert_ne!(t1, t2);
        assert!(well_formed(&t1), "{t1}");
        assert_eq!(t1.len(), 4 + 43);
        let json = serde_json::to_string(&store).expect("json");
        assert!(!json.contains(&t1) && !json.contains(&t2), "never stored");
        assert_eq!(store.verify(&t1, 5000).map(|r| r.id.clone()), Ok(r1.id));
        assert!(store.verify(&t2, 1059).is_ok());
        assert!(matches!(
            store.verify(&t2, 1060),
            Err(AuthError::Expired { .. })
        ));
        for bad in ["", "abc", "mrg_", "mrg_short", &format!("{t1}x"), &t1[1..]] {
            assert_eq!(store.verify(bad, 1000), Err(AuthError::Malformed), "{bad}");
        }
        assert_eq!(
            store.verify(&generate_token(), 1000),
            Err(AuthError::Unknown)
        );
        let id = store.tokens[0].id.clone();
        assert!(!store.revoke("bob", &id));
        assert!(store.revoke("alice", &id));
        assert_eq!(store.verify(&t1, 1000), Err(AuthError::Unknown));
        assert!(store.has_valid("alice", 1000));
        assert!(!store.has_valid("alice", 2000));
        // Issuing later forgets records expired for over a week.
        store.issue("bob", 1060 + EXPIRED_KEPT_SECS + 1, None);
        assert_eq!(store.tokens.len(), 1);
        assert_eq!(store.tokens[0].subject, "bob");
    }

    #[test]
    fn durations() {
        for (s, want) in [
            ("90d", Some(90 * 86400)),
            ("24h", Some(86400)),
            ("30m", Some(1800)),
            ("45s", Some(45)),
            ("120", Some(120)),
            ("0", None),
            ("0h", None),
        ] {
            assert_eq!(parse_duration(s), Ok(want.map(Duration::from_secs)), "{s}");
        }
        for s in ["", "h", "1y", "-1h", "99999999999999999999d"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn accounts_from_configmap() {
        let data: BTreeMap<String, String> = [
            ("accounts.alice", "apiKey, login"),
            ("accounts.alice.groups", "ml-engineers, oncall"),
            ("accounts.bob", "login"),
            ("accounts.carol", "apiKey"),
            ("accounts.carol.enabled", "false"),
            ("admin.enabled", "false"),
            ("url", "https://x"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let a = accounts(&data);
        let names: Vec<_> = a.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["admin", "alice", "bob", "carol"]);
        assert_eq!(
            account_for(&a, "alice").map(|a| a.groups.clone()),
            Ok(vec!["ml-engineers".to_string(), "oncall".to_string()])
        );
        assert_eq!(
            account_for(&a, "bob"),
            Err(AuthError::NoApiKey("bob".into()))
        );
        for name in ["carol", "admin", "nobody"] {
            assert_eq!(
                account_for(&a, name),
                Err(AuthError::AccountDisabled(name.into()))
            );
        }
        assert!(account_for(&accounts(&BTreeMap::new()), "admin").is_ok());
    }

    #[test]
    fn limiter_blocks_after_burst_and_refills() {
        let mut l = FailureLimiter::new(3, 0.5);
        let anon = FailureKey::Anonymous;
        let alice = FailureKey::Subject("alice".into());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check(&anon, t0).is_ok());
            l.fail(anon.clone(), t0);
        }
        assert_eq!(l.check(&anon, t0), Err(Duration::from_secs(2)));
        assert!(l.check(&alice, t0).is_ok(), "per subject");
        assert!(l.check(&anon, t0 + Duration::from_secs(2)).is_ok());
        // Refusals in a row are held back longer and longer, up to the cap.
        let delays: Vec<_> = (0..8).map(|_| l.refused(&anon, t0)).collect();
        assert_eq!(delays[0], Duration::from_millis(50));
        assert_eq!(delays[1], Duration::from_millis(100));
        assert_eq!(delays[7], MAX_BACKOFF);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        // A failure that is let through again resets the streak.
        l.fail(anon.clone(), t0 + Duration::from_secs(10));
        assert_eq!(
            l.refused(&anon, t0 + Duration::from_secs(10)),
            Duration::from_millis(50)
        );
    }
}
