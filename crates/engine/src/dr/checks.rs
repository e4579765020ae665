//! The pure rules of a plan's validation checks: a check is exactly one kind with a
//! complete target ([`check_kind`]: plan validation rejects a plan breaking it, and the
//! checks runner, `mooring_controller::dr::checks`, reports such a check as failed), a
//! PromQL check's default condition, a TCP address's `HOST:PORT`.

use mooring_core::dr::CheckSpec;

/// A check spec that does not say one thing to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckSpecError {
    #[error("check {name:?} names no kind: give one of applications, http, tcp, prometheus")]
    NoKind { name: String },
    #[error("check {name:?} names several kinds ({kinds}): give exactly one")]
    SeveralKinds { name: String, kinds: String },
    #[error("check {name:?}: {reason}")]
    Invalid { name: String, reason: String },
}

/// The one kind of a check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CheckKind<'a> {
    Applications(&'a mooring_core::dr::AppsCheck),
    Http(&'a mooring_core::dr::HttpCheck),
    Tcp(&'a mooring_core::dr::TcpCheck),
    Prometheus(&'a mooring_core::dr::PromCheck),
}

impl CheckKind<'_> {
    /// `applications`, `http`, `tcp` or `prometheus`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Applications(_) => "applications",
            CheckKind::Http(_) => "http",
            CheckKind::Tcp(_) => "tcp",
            CheckKind::Prometheus(_) => "prometheus",
        }
    }
}

/// The rule "a check is exactly one kind, and its target is complete": the plan's
/// validation rejects a plan breaking it upfront, and the checks runner reports such a
/// check as failed (naming it) if one reaches it anyway. A condition that does not
/// compile is refused here too.
pub fn check_kind(check: &CheckSpec) -> Result<CheckKind<'_>, CheckSpecError> {
    let name = check.name.clone();
    let mut kinds = Vec::new();
    if let Some(a) = &check.applications {
        kinds.push(("applications", CheckKind::Applications(a)));
    }
    if let Some(h) = &check.http {
        kinds.push(("http", CheckKind::Http(h)));
    }
    if let Some(t) = &check.tcp {
        kinds.push(("tcp", CheckKind::Tcp(t)));
    }
    if let Some(p) = &check.prometheus {
        kinds.push(("prometheus", CheckKind::Prometheus(p)));
    }
    let kind = match kinds.as_slice() {
        [] => return Err(CheckSpecError::NoKind { name }),
        [(_, k)] => *k,
        many => {
            return Err(CheckSpecError::SeveralKinds {
                name,
                kinds: many.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            })
        }
    };
    let invalid = |reason: String| CheckSpecError::Invalid {
        name: check.name.clone(),
        reason,
    };
    match kind {
        CheckKind::Applications(_) => {}
        CheckKind::Http(h) => match (&h.url, &h.service) {
            (Some(_), Some(_)) => return Err(invalid("http gives both url and service".into())),
            (None, None) => return Err(invalid("http gives neither url nor service".into())),
            (Some(url), None) => {
                let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
                if !matches!(scheme.as_deref(), Some("http" | "https")) {
                    return Err(invalid(format!(
                        "http url {url:?} is not http:// or https://"
                    )));
                }
            }
            (None, Some(_)) => {}
        },
        CheckKind::Tcp(t) => match (&t.address, &t.service) {
            (Some(_), Some(_)) => return Err(invalid("tcp gives both address and service".into())),
            (None, None) => return Err(invalid("tcp gives neither address nor service".into())),
            (Some(a), None) => {
                split_host_port(a).map_err(invalid)?;
            }
            (None, Some(_)) => {}
        },
        CheckKind::Prometheus(p) => {
            if p.query.trim().is_empty() {
                return Err(invalid("prometheus query is empty".into()));
            }
            crate::analysis::expr::check_condition(prom_condition(p))
                .map_err(|e| invalid(e.to_string()))?;
        }
    }
    Ok(kind)
}

/// A PromQL check's condition (default `result > 0`).
pub fn prom_condition(p: &mooring_core::dr::PromCheck) -> &str {
    p.condition
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or("result > 0")
}

/// `HOST:PORT` (`[v6]:PORT` for IPv6) of a TCP check's literal address.
pub fn split_host_port(address: &str) -> Result<(String, u16), String> {
    let bad = |why: &str| format!("tcp address {address:?} {why}");
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| bad("is not HOST:PORT"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err(bad("has no valid host"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("has no valid port (1-65535)"))?;
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_check_is_exactly_one_complete_kind() {
        let spec =
            |v: serde_json::Value| -> CheckSpec { serde_json::from_value(v).expect("check") };
        assert!(matches!(
            check_kind(&spec(json!({"name": "apps", "applications": {}}))),
            Ok(CheckKind::Applications(_))
        ));
        let cases = [
            (json!({"name": "none"}), "check \"none\" names no kind"),
            (
                json!({"name": "two", "http": {"url": "http://a/"}, "tcp": {"address": "a:1"}}),
                "check \"two\" names several kinds (http, tcp)",
            ),
            (
                json!({"name": "ftp", "http": {"url": "ftp://files.example.com/health"}}),
                "http url \"ftp://files.example.com/health\" is not http:// or https://",
            ),
            (
                json!({"name": "both", "http": {"url": "http://a/", "service": {"namespace": "a", "name": "b"}}}),
                "http gives both url and service",
            ),
            (
                json!({"name": "t", "tcp": {}}),
                "tcp gives neither address nor service",
            ),
            (
                json!({"name": "t", "tcp": {"address": "redis"}}),
                "is not HOST:PORT",
            ),
            (
                json!({"name": "t", "tcp": {"address": "redis:0"}}),
                "no valid port",
            ),
            (
                json!({"name": "p", "prometheus": {"query": " "}}),
                "prometheus query is empty",
            ),
            (
                json!({"name": "p", "prometheus": {"query": "up", "condition": "result >"}}),
                "check \"p\"",
            ),
        ];
        for (v, want) in cases {
            let e = check_kind(&spec(v.clone())).expect_err(&v.to_string());
            assert!(e.to_string().contains(want), "{v}: {e}");
        }
        assert_eq!(split_host_port("[::1]:6379"), Ok(("::1".to_string(), 6379)));
    }
}
