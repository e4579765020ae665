//! Traffic routing for canary rollouts: the edits Argo Rollouts makes to the objects of a
//! service mesh or gateway, as pure functions of the live object.
//!
//! The rollout controller reads the router object, calls one of these functions and
//! writes the result back (an update guarded by the object's resourceVersion), so what
//! ends up in the cluster is exactly what Argo Rollouts would have written and a
//! malformed object is reported before anything is changed. Supported routers, with
//! Argo Rollouts' semantics:
//!
//! # Istio, host-level splitting
//!
//! `spec.strategy.canary.trafficRouting.istio.virtualService` (or `virtualServices: […]`)
//! names a `VirtualService` and its `routes` (names of `spec.http` routes), `tlsRoutes`
//! (`{port, sniHosts}` matched against `spec.tls[].match`) and `tcpRoutes` (`{port}`
//! matched against `spec.tcp[].match`). With none of them given, the VirtualService must
//! have exactly one HTTP route, and that one is used. In every selected route the
//! destination whose `host` is the stable Service gets weight `100 − w`, the canary
//! Service's gets `w`; other destinations are left alone. A host matches a Service by its
//! short name or any longer form of it (`svc.ns`, `svc.ns.svc`,
//! `svc.ns.svc.cluster.local`); when both name a namespace, the namespaces must agree.
//!
//! # Istio, subset-level splitting
//!
//! With `istio.destinationRule {name, canarySubsetName, stableSubsetName}`, the route's
//! destinations are told apart by `subset` instead of host ([`Destination::subset`]), and
//! the DestinationRule's two subsets select the pods of each version through the
//! `rollouts-pod-template-hash` label ([`set_destination_rule_subsets`]).
//!
//! # Gateway API
//!
//! The `argoproj-labs/gatewayAPI` traffic-router plugin
//! (`trafficRouting.plugins["argoproj-labs/gatewayAPI"]` with `httpRoute: NAME` or
//! `httpRoutes: [{name}]`, and an optional `namespace`): in every rule of the `HTTPRoute`
//! whose `backendRefs` name the stable or canary Service, the stable backend gets weight
//! `100 − w` and the canary backend `w`. A rule that names one of the two Services must
//! name both.
//!
//! Weights are percentages: anything outside `0..=100` is refused, as are objects that
//! are not objects, routes that are not there and destinations that are missing. On
//! error the input is untouched (the functions return a new value).

use serde_json::{json, Value};

use mooring_core::rollout::POD_TEMPLATE_HASH_LABEL;

/// Why a router object could not be edited.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrafficError {
    #[error("{kind} {name:?} is not a JSON object")]
    NotAnObject { kind: &'static str, name: String },
    #[error("weight {0} is outside 0..=100")]
    Weight(i32),
    #[error("VirtualService {vs:?} has no HTTP routes")]
    NoHttpRoutes { vs: String },
    #[error("VirtualService {vs:?} has {count} HTTP routes: name the ones to use in trafficRouting.istio.virtualService.routes")]
    AmbiguousRoutes { vs: String, count: usize },
    #[error("{kind} {vs:?} has no {route} route matching {wanted} (routes there: {available})")]
    RouteNotFound {
        kind: &'static str,
        vs: String,
        route: &'static str,
        wanted: String,
        available: String,
    },
    #[error("{kind} {object:?}, route {route}: no destination for the {role} {what} {wanted:?}")]
    DestinationMissing {
        kind: &'static str,
        object: String,
        route: String,
        role: &'static str,
        what: &'static str,
        wanted: String,
    },
    #[error("DestinationRule {dr:?} has no subset {subset:?} (subsets there: {available})")]
    SubsetNotFound {
        dr: String,
        subset: String,
        available: String,
    },
    #[error("HTTPRoute {route:?} has no rule with backendRefs to {stable:?} and {canary:?}")]
    NoBackends {
        route: String,
        stable: String,
        canary: String,
    },
    #[error("{field} of {object:?} is malformed: {message}")]
    Malformed {
        object: String,
        field: String,
        message: String,
    },
}

/// A destination of a route: a Service (`host`), and with subset-level splitting the
/// DestinationRule subset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Destination {
    pub host: String,
    pub subset: Option<String>,
}

impl Destination {
    pub fn host(host: impl Into<String>) -> Self {
        Destination {
            host: host.into(),
            subset: None,
        }
    }

    pub fn subset(host: impl Into<String>, subset: impl Into<String>) -> Self {
        Destination {
            host: host.into(),
            subset: Some(subset.into()),
        }
    }

    fn describe(&self) -> (&'static str, String) {
        match &self.subset {
            Some(s) => ("subset", s.clone()),
            None => ("host", self.host.clone()),
        }
    }

    /// Whether a route destination (`{host, subset, port}`) is this one.
    fn matches(&self, dest: &Value) -> bool {
        let host = dest.get("host").and_then(Value::as_str).unwrap_or("");
        match &self.subset {
            Some(subset) => {
                dest.get("subset").and_then(Value::as_str) == Some(subset.as_str())
                    && (self.host.is_empty() || host_matches(host, &self.host))
            }
            None => host_matches(host, &self.host),
        }
    }
}

/// Whether the host of a route names the Service `service` (short or qualified names).
pub fn host_matches(host: &str, service: &str) -> bool {
    fn split(h: &str) -> Option<(&str, Option<&str>)> {
        let mut parts = h.splitn(3, '.');
        let name = parts.next().filter(|n| !n.is_empty())?;
        let ns = parts.next();
        match parts.next() {
            None => {}
            Some(rest) if rest == "svc" || rest.starts_with("svc.") => {}
            Some(_) => return None,
        }
        Some((name, ns))
    }
    match (split(host), split(service)) {
        (Some((hn, hns)), Some((sn, sns))) => {
            hn == sn
                && match (hns, sns) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        }
        _ => false,
    }
}

/// A TLS route of a VirtualService, as a Rollout names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsRoute {
    pub port: Option<i64>,
    pub sni_hosts: Vec<String>,
}

/// A TCP route of a VirtualService, as a Rollout names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcpRoute {
    pub port: Option<i64>,
}

/// The routes of one VirtualService a Rollout manages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VirtualServiceRef {
    /// `name` or `name.namespace`, as written in the Rollout.
    pub name: String,
    pub http: Vec<String>,
    pub tls: Vec<TlsRoute>,
    pub tcp: Vec<TcpRoute>,
}

impl VirtualServiceRef {
    /// The VirtualService's name and namespace (`default_ns` when the reference has none).
    pub fn name_namespace<'a>(&'a self, default_ns: &'a str) -> (&'a str, &'a str) {
        match self.name.split_once('.') {
            Some((n, ns)) => (n, ns),
            None => (&self.name, default_ns),
        }
    }
}

/// The DestinationRule of subset-level splitting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DestinationRuleRef {
    pub name: String,
    pub canary_subset: String,
    pub stable_subset: String,
}

/// A Rollout's `trafficRouting.istio`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IstioRouting {
    pub virtual_services: Vec<VirtualServiceRef>,
    pub destination_rule: Option<DestinationRuleRef>,
}

/// A Rollout's Gateway API plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatewayApiRouting {
    pub http_routes: Vec<String>,
    pub namespace: Option<String>,
}

/// The name of Argo's Gateway API traffic-router plugin.
pub const GATEWAY_API_PLUGIN: &str = "argoproj-labs/gatewayAPI";

fn malformed(object: &str, field: &str, message: impl Into<String>) -> TrafficError {
    TrafficError::Malformed {
        object: object.to_string(),
        field: field.to_string(),
        message: message.into(),
    }
}

fn name_of(v: &Value) -> String {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn strings(v: Option<&Value>, object: &str, field: &str) -> Result<Vec<String>, TrafficError> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| malformed(object, field, format!("{x} is not a string")))
            })
            .collect(),
        Some(other) => Err(malformed(object, field, format!("{other} is not a list"))),
    }
}

/// `trafficRouting.istio` of a Rollout, if it has one.
pub fn istio_routing(rollout: &Value) -> Result<Option<IstioRouting>, TrafficError> {
    let obj = name_of(rollout);
    let Some(istio) = rollout
        .pointer("/spec/strategy/canary/trafficRouting/istio")
        .filter(|v| !v.is_null())
    else {
        return Ok(None);
    };
    let vs_ref = |v: &Value, field: &str| -> Result<VirtualServiceRef, TrafficError> {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| malformed(&obj, field, "a virtualService needs a name"))?;
        let port = |r: &Value| r.get("port").and_then(Value::as_i64);
        Ok(VirtualServiceRef {
            name: name.to_string(),
            http: strings(v.get("routes"), &obj, &format!("{field}.routes"))?,
            tls: v
                .get("tlsRoutes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            Ok(TlsRoute {
                                port: port(r),
                                sni_hosts: strings(
                                    r.get("sniHosts"),
                                    &obj,
                                    &format!("{field}.tlsRoutes.sniHosts"),
                                )?,
                            })
                        })
                        .collect::<Result<Vec<_>, TrafficError>>()
                })
                .transpose()?
                .unwrap_or_default(),
            tcp: v
                .get("tcpRoutes")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|r| TcpRoute { port: port(r) }).collect())
                .unwrap_or_default(),
        })
    };
    let mut virtual_services = Vec::new();
    if let Some(v) = istio.get("virtualService").filter(|v| !v.is_null()) {
        virtual_services.push(vs_ref(v, "istio.virtualService")?);
    }
    if let Some(list) = istio.get("virtualServices").filter(|v| !v.is_null()) {
        let list = list
            .as_array()
            .ok_or_else(|| malformed(&obj, "istio.virtualServices", "not a list"))?;
        for v in list {
            virtual_services.push(vs_ref(v, "istio.virtualServices")?);
        }
    }
    let destination_rule = match istio.get("destinationRule").filter(|v| !v.is_null()) {
        None => None,
        Some(dr) => {
            let field = |k: &str| {
                dr.get(k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        malformed(&obj, &format!("istio.destinationRule.{k}"), "missing")
                    })
            };
            Some(DestinationRuleRef {
                name: field("name")?,
                canary_subset: field("canarySubsetName")?,
                stable_subset: field("stableSubsetName")?,
            })
        }
    };
    if virtual_services.is_empty() {
        return Err(malformed(
            &obj,
            "trafficRouting.istio",
            "names no virtualService",
        ));
    }
    Ok(Some(IstioRouting {
        virtual_services,
        destination_rule,
    }))
}

/// The Gateway API plugin configuration of a Rollout, if it has one.
pub fn gateway_api_routing(rollout: &Value) -> Result<Option<GatewayApiRouting>, TrafficError> {
    let obj = name_of(rollout);
    let Some(cfg) = rollout
        .pointer("/spec/strategy/canary/trafficRouting/plugins")
        .and_then(|p| p.get(GATEWAY_API_PLUGIN))
        .filter(|v| !v.is_null())
    else {
        return Ok(None);
    };
    let mut http_routes = Vec::new();
    if let Some(r) = cfg.get("httpRoute").filter(|v| !v.is_null()) {
        http_routes.push(
            r.as_str()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| malformed(&obj, "gatewayAPI.httpRoute", "not a name"))?
                .to_string(),
        );
    }
    if let Some(list) = cfg.get("httpRoutes").filter(|v| !v.is_null()) {
        for r in list
            .as_array()
            .ok_or_else(|| malformed(&obj, "gatewayAPI.httpRoutes", "not a list"))?
        {
            http_routes.push(
                r.get("name")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        malformed(&obj, "gatewayAPI.httpRoutes", "an entry has no name")
                    })?
                    .to_string(),
            );
        }
    }
    if http_routes.is_empty() {
        return Err(malformed(&obj, "gatewayAPI", "names no httpRoute"));
    }
    Ok(Some(GatewayApiRouting {
        http_routes,
        namespace: cfg
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string),
    }))
}

fn check_weight(w: i32) -> Result<(), TrafficError> {
    if (0..=100).contains(&w) {
        Ok(())
    } else {
        Err(TrafficError::Weight(w))
    }
}

/// Sets the weights of the stable and canary destinations of the VirtualService's HTTP
/// `routes` (by name; empty: its only HTTP route).
pub fn set_virtual_service_weights(
    vs: &Value,
    routes: &[String],
    stable: &Destination,
    canary: &Destination,
    canary_weight: i32,
) -> Result<Value, TrafficError> {
    let r = VirtualServiceRef {
        name: name_of(vs),
        http: routes.to_vec(),
        ..Default::default()
    };
    set_virtual_service_route_weights(vs, &r, stable, canary, canary_weight)
}

/// Sets the weights of the stable and canary destinations in every HTTP, TLS and TCP
/// route `routes` selects (none selected: the VirtualService's only HTTP route).
pub fn set_virtual_service_route_weights(
    vs: &Value,
    routes: &VirtualServiceRef,
    stable: &Destination,
    canary: &Destination,
    canary_weight: i32,
) -> Result<Value, TrafficError> {
    check_weight(canary_weight)?;
    let name = name_of(vs);
    if !vs.is_object() {
        return Err(TrafficError::NotAnObject {
            kind: "VirtualService",
            name,
        });
    }
    let mut out = vs.clone();
    let selected = select_routes(vs, routes)?;
    for (list, idx, label) in selected {
        let route = out
            .pointer_mut(&format!("/spec/{list}/{idx}/route"))
            .and_then(Value::as_array_mut)
            .ok_or_else(|| malformed(&name, &format!("spec.{list}[{idx}].route"), "not a list"))?;
        let weights = [
            (stable, 100 - canary_weight, "stable"),
            (canary, canary_weight, "canary"),
        ];
        for (dest, weight, role) in weights {
            let mut found = false;
            for d in route.iter_mut() {
                if d.get("destination").is_some_and(|x| dest.matches(x)) {
                    found = true;
                    d["weight"] = json!(weight);
                }
            }
            if !found {
                let (what, wanted) = dest.describe();
                return Err(TrafficError::DestinationMissing {
                    kind: "VirtualService",
                    object: name,
                    route: label,
                    role,
                    what,
                    wanted,
                });
            }
        }
    }
    Ok(out)
}

/// The routes `r` selects in `vs`: (list, index, label for messages).
fn select_routes(
    vs: &Value,
    r: &VirtualServiceRef,
) -> Result<Vec<(&'static str, usize, String)>, TrafficError> {
    let name = name_of(vs);
    let list = |key: &str| -> Result<Vec<Value>, TrafficError> {
        match vs.pointer(&format!("/spec/{key}")) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(a)) => Ok(a.clone()),
            Some(other) => Err(malformed(
                &name,
                &format!("spec.{key}"),
                format!("{other} is not a list"),
            )),
        }
    };
    let http = list("http")?;
    let mut out = Vec::new();
    if r.http.is_empty() && r.tls.is_empty() && r.tcp.is_empty() {
        return match http.len() {
            0 => Err(TrafficError::NoHttpRoutes { vs: name }),
            1 => Ok(vec![("http", 0, route_label(&http[0], 0))]),
            count => Err(TrafficError::AmbiguousRoutes { vs: name, count }),
        };
    }
    let available = |routes: &[Value]| {
        let names: Vec<String> = routes
            .iter()
            .enumerate()
            .map(|(i, r)| route_label(r, i))
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    for wanted in &r.http {
        let idx = http
            .iter()
            .position(|h| h.get("name").and_then(Value::as_str) == Some(wanted.as_str()))
            .ok_or_else(|| TrafficError::RouteNotFound {
                kind: "VirtualService",
                vs: name.clone(),
                route: "HTTP",
                wanted: wanted.clone(),
                available: available(&http),
            })?;
        out.push(("http", idx, wanted.clone()));
    }
    let matches_of = |route: &Value| -> Vec<Value> {
        route
            .get("match")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if !r.tls.is_empty() {
        let tls = list("tls")?;
        for wanted in &r.tls {
            let hit: Vec<usize> = tls
                .iter()
                .enumerate()
                .filter(|(_, t)| {
                    matches_of(t).iter().any(|m| {
                        wanted
                            .port
                            .is_none_or(|p| m.get("port").and_then(Value::as_i64) == Some(p))
                            && wanted.sni_hosts.iter().all(|h| {
                                m.get("sniHosts")
                                    .and_then(Value::as_array)
                                    .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(h)))
                            })
                    })
                })
                .map(|(i, _)| i)
                .collect();
            if hit.is_empty() {
                return Err(TrafficError::RouteNotFound {
                    kind: "VirtualService",
                    vs: name,
                    route: "TLS",
                    wanted: format!("port {:?}, sniHosts {:?}", wanted.port, wanted.sni_hosts),
                    available: available(&tls),
                });
            }
            out.extend(hit.into_iter().map(|i| ("tls", i, format!("tls[{i}]"))));
        }
    }
    if !r.tcp.is_empty() {
        let tcp = list("tcp")?;
        for wanted in &r.tcp {
            let hit: Vec<usize> = tcp
                .iter()
                .enumerate()
                .filter(|(_, t)| {
                    matches_of(t).iter().any(|m| {
                        wanted
                            .port
                            .is_none_or(|p| m.get("port").and_then(Value::as_i64) == Some(p))
                    })
                })
                .map(|(i, _)| i)
                .collect();
            if hit.is_empty() {
                return Err(TrafficError::RouteNotFound {
                    kind: "VirtualService",
                    vs: name,
                    route: "TCP",
                    wanted: format!("port {:?}", wanted.port),
                    available: available(&tcp),
                });
            }
            out.extend(hit.into_iter().map(|i| ("tcp", i, format!("tcp[{i}]"))));
        }
    }
    out.dedup();
    Ok(out)
}

fn route_label(route: &Value, idx: usize) -> String {
    match route.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => format!("#{idx} (unnamed)"),
    }
}

/// Points the DestinationRule's canary and stable subsets at the pods of each version
/// (label `rollouts-pod-template-hash`).
pub fn set_destination_rule_subsets(
    dr: &Value,
    stable_subset: &str,
    stable_hash: &str,
    canary_subset: &str,
    canary_hash: &str,
) -> Result<Value, TrafficError> {
    let name = name_of(dr);
    if !dr.is_object() {
        return Err(TrafficError::NotAnObject {
            kind: "DestinationRule",
            name,
        });
    }
    let mut out = dr.clone();
    let subsets = out
        .pointer_mut("/spec/subsets")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| TrafficError::SubsetNotFound {
            dr: name.clone(),
            subset: canary_subset.to_string(),
            available: "none".into(),
        })?;
    let available = subsets
        .iter()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(", ");
    for (subset, hash) in [(stable_subset, stable_hash), (canary_subset, canary_hash)] {
        let s = subsets
            .iter_mut()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(subset))
            .ok_or_else(|| TrafficError::SubsetNotFound {
                dr: name.clone(),
                subset: subset.to_string(),
                available: if available.is_empty() {
                    "none".into()
                } else {
                    available.clone()
                },
            })?;
        let obj = s
            .as_object_mut()
            .ok_or_else(|| malformed(&name, "spec.subsets", "a subset is not an object"))?;
        let labels = obj.entry("labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        labels[POD_TEMPLATE_HASH_LABEL] = json!(hash);
    }
    Ok(out)
}

fn backend_is(b: &Value, service: &str) -> bool {
    let kind_ok = b
        .get("kind")
        .and_then(Value::as_str)
        .is_none_or(|k| k == "Service");
    let group_ok = b
        .get("group")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    kind_ok && group_ok && b.get("name").and_then(Value::as_str) == Some(service)
}

/// Sets the weights of the stable and canary `backendRefs` of an HTTPRoute.
pub fn set_http_route_weights(
    route: &Value,
    stable_service: &str,
    canary_service: &str,
    canary_weight: i32,
) -> Result<Value, TrafficError> {
    check_weight(canary_weight)?;
    let name = name_of(route);
    if !route.is_object() {
        return Err(TrafficError::NotAnObject {
            kind: "HTTPRoute",
            name,
        });
    }
    let mut out = route.clone();
    let rules = match out.pointer_mut("/spec/rules") {
        Some(Value::Array(r)) => r,
        None | Some(Value::Null) => &mut vec![],
        Some(other) => {
            return Err(malformed(
                &name,
                "spec.rules",
                format!("{other} is not a list"),
            ))
        }
    };
    let mut edited = 0;
    for (i, rule) in rules.iter_mut().enumerate() {
        let Some(refs) = rule.get_mut("backendRefs").and_then(Value::as_array_mut) else {
            continue;
        };
        let has = |svc: &str| refs.iter().any(|b| backend_is(b, svc));
        let (has_stable, has_canary) = (has(stable_service), has(canary_service));
        if !has_stable && !has_canary {
            continue;
        }
        for (present, role, svc) in [
            (has_stable, "stable", stable_service),
            (has_canary, "canary", canary_service),
        ] {
            if !present {
                return Err(TrafficError::DestinationMissing {
                    kind: "HTTPRoute",
                    object: name,
                    route: format!("rules[{i}]"),
                    role,
                    what: "Service",
                    wanted: svc.to_string(),
                });
            }
        }
        for b in refs.iter_mut() {
            if backend_is(b, stable_service) {
                b["weight"] = json!(100 - canary_weight);
            } else if backend_is(b, canary_service) {
                b["weight"] = json!(canary_weight);
            }
        }
        edited += 1;
    }
    if edited == 0 {
        return Err(TrafficError::NoBackends {
            route: name,
            stable: stable_service.to_string(),
            canary: canary_service.to_string(),
        });
    }
    Ok(out)
}

/// The share of traffic (percent) the router object sends to `canary`, read back from a
/// VirtualService (its first route with that destination) or an HTTPRoute (its first
/// rule with that backend); `None` when the object does not route to it. Missing
/// weights count as Istio and the Gateway API define them: an Istio route's only
/// destination takes 100, a Gateway API backend weighs 1.
pub fn current_canary_weight(obj: &Value, canary: &Destination) -> Option<i32> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind == "HTTPRoute" {
        for rule in obj.pointer("/spec/rules")?.as_array()? {
            let Some(refs) = rule.get("backendRefs").and_then(Value::as_array) else {
                continue;
            };
            if !refs.iter().any(|b| backend_is(b, &canary.host)) {
                continue;
            }
            let w = |b: &Value| b.get("weight").and_then(Value::as_i64).unwrap_or(1);
            let total: i64 = refs.iter().map(w).sum();
            let mine: i64 = refs
                .iter()
                .filter(|b| backend_is(b, &canary.host))
                .map(w)
                .sum();
            return Some(if total > 0 {
                (mine * 100 / total) as i32
            } else {
                0
            });
        }
        return None;
    }
    for list in ["http", "tls", "tcp"] {
        let Some(routes) = obj
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for r in routes {
            let Some(dests) = r.get("route").and_then(Value::as_array) else {
                continue;
            };
            let single = dests.len() == 1;
            let w = |d: &Value| {
                d.get("weight")
                    .and_then(Value::as_i64)
                    .unwrap_or(if single { 100 } else { 0 })
            };
            let hit: Vec<&Value> = dests
                .iter()
                .filter(|d| d.get("destination").is_some_and(|x| canary.matches(x)))
                .collect();
            if hit.is_empty() {
                continue;
            }
            let total: i64 = dests.iter().map(w).sum();
            let mine: i64 = hit.into_iter().map(w).sum();
            return Some(if total > 0 {
                (mine * 100 / total) as i32
            } else {
                0
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs() -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
            "metadata": {"name": "ml-model-serving", "namespace": "ml"},
            "spec": {
                "hosts": ["models.example.com"],
                "http": [
                    {"name": "primary", "route": [
                        {"destination": {"host": "ml-model-serving", "port": {"number": 80}}, "weight": 100},
                        {"destination": {"host": "ml-model-serving-canary.ml.svc.cluster.local", "port": {"number": 80}}, "weight": 0},
                    ]},
                    {"name": "shadow", "route": [
                        {"destination": {"host": "other"}},
                    ]},
                ],
                "tls": [{"match": [{"port": 443, "sniHosts": ["models.example.com"]}], "route": [
                    {"destination": {"host": "ml-model-serving"}, "weight": 100},
                    {"destination": {"host": "ml-model-serving-canary"}, "weight": 0},
                ]}],
                "tcp": [{"match": [{"port": 9000}], "route": [
                    {"destination": {"host": "ml-model-serving.ml"}, "weight": 100},
                    {"destination": {"host": "ml-model-serving-canary.ml"}, "weight": 0},
                ]}],
            }
        })
    }

    fn weights(v: &Value, ptr: &str) -> Vec<i64> {
        v.pointer(ptr)
            .and_then(Value::as_array)
            .expect("route")
            .iter()
            .map(|d| d["weight"].as_i64().unwrap_or(-1))
            .collect()
    }

    fn stable() -> Destination {
        Destination::host("ml-model-serving")
    }
    fn canary() -> Destination {
        Destination::host("ml-model-serving-canary")
    }

    #[test]
    fn host_level_weights_follow_each_step() {
        for (w, want) in [
            (10, [90, 10]),
            (25, [75, 25]),
            (50, [50, 50]),
            (100, [0, 100]),
            (0, [100, 0]),
        ] {
            let out =
                set_virtual_service_weights(&vs(), &["primary".into()], &stable(), &canary(), w)
                    .expect("edited");
            assert_eq!(weights(&out, "/spec/http/0/route"), want, "weight {w}");
            assert_eq!(
                out["spec"]["http"][1],
                vs()["spec"]["http"][1],
                "other routes untouched"
            );
            assert_eq!(out["spec"]["tls"], vs()["spec"]["tls"]);
            assert_eq!(current_canary_weight(&out, &canary()), Some(w));
        }
    }

    #[test]
    fn tls_and_tcp_routes_are_selected_by_port_and_sni() {
        let r = VirtualServiceRef {
            name: "ml-model-serving".into(),
            http: vec![],
            tls: vec![TlsRoute {
                port: Some(443),
                sni_hosts: vec!["models.example.com".into()],
            }],
            tcp: vec![TcpRoute { port: Some(9000) }],
        };
        let out =
            set_virtual_service_route_weights(&vs(), &r, &stable(), &canary(), 25).expect("ok");
        assert_eq!(weights(&out, "/spec/tls/0/route"), [75, 25]);
        assert_eq!(weights(&out, "/spec/tcp/0/route"), [75, 25]);
        assert_eq!(
            weights(&out, "/spec/http/0/route"),
            [100, 0],
            "http not selected"
        );
        let wrong = VirtualServiceRef {
            tcp: vec![TcpRoute { port: Some(1) }],
            ..Default::default()
        };
        assert!(matches!(
            set_virtual_service_route_weights(&vs(), &wrong, &stable(), &canary(), 25),
            Err(TrafficError::RouteNotFound { route: "TCP", .. })
        ));
    }

    #[test]
    fn the_only_http_route_is_used_when_none_is_named() {
        let mut one = vs();
        one["spec"]["http"]
            .as_array_mut()
            .expect("http")
            .truncate(1);
        one["spec"]["http"][0]
            .as_object_mut()
            .expect("route")
            .remove("name");
        let out = set_virtual_service_weights(&one, &[], &stable(), &canary(), 10).expect("ok");
        assert_eq!(weights(&out, "/spec/http/0/route"), [90, 10]);
        let e = set_virtual_service_weights(&vs(), &[], &stable(), &canary(), 10)
            .expect_err("two routes");
        assert_eq!(
            e,
            TrafficError::AmbiguousRoutes {
                vs: "ml-model-serving".into(),
                count: 2
            }
        );
    }

    #[test]
    fn subset_level_splitting() {
        let vs = json!({"kind": "VirtualService", "metadata": {"name": "v"}, "spec": {"http": [{"route": [
            {"destination": {"host": "ml-model-serving", "subset": "stable"}, "weight": 100},
            {"destination": {"host": "ml-model-serving", "subset": "canary"}, "weight": 0},
        ]}]}});
        let (s, c) = (
            Destination::subset("", "stable"),
            Destination::subset("", "canary"),
        );
        let out = set_virtual_service_weights(&vs, &[], &s, &c, 50).expect("ok");
        assert_eq!(weights(&out, "/spec/http/0/route"), [50, 50]);
        assert_eq!(current_canary_weight(&out, &c), Some(50));
        // Host-level matching would hit both destinations: subsets tell them apart.
        let e = set_virtual_service_weights(&vs, &[], &s, &Destination::subset("", "preview"), 50)
            .expect_err("no such subset");
        assert!(e.to_string().contains("subset \"preview\""), "{e}");

        let dr = json!({"kind": "DestinationRule", "metadata": {"name": "ml-model-serving"}, "spec": {
            "host": "ml-model-serving",
            "subsets": [{"name": "canary", "labels": {"app": "m"}}, {"name": "stable"}],
        }});
        let out = set_destination_rule_subsets(&dr, "stable", "aaa", "canary", "bbb").expect("ok");
        assert_eq!(
            out["spec"]["subsets"][0]["labels"],
            json!({"app": "m", POD_TEMPLATE_HASH_LABEL: "bbb"})
        );
        assert_eq!(
            out["spec"]["subsets"][1]["labels"],
            json!({POD_TEMPLATE_HASH_LABEL: "aaa"})
        );
        let e = set_destination_rule_subsets(&dr, "stable", "a", "canary-v2", "b")
            .expect_err("missing");
        assert_eq!(
            e,
            TrafficError::SubsetNotFound {
                dr: "ml-model-serving".into(),
                subset: "canary-v2".into(),
                available: "canary, stable".into()
            }
        );
        assert!(set_destination_rule_subsets(
            &json!({"metadata": {"name": "x"}}),
            "s",
            "a",
            "c",
            "b"
        )
        .is_err());
        assert!(matches!(
            set_destination_rule_subsets(&json!("x"), "s", "a", "c", "b"),
            Err(TrafficError::NotAnObject { .. })
        ));
    }

    #[test]
    fn gateway_api_backend_weights() {
        let route = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "ml-model-serving"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [
            {"matches": [{"path": {"value": "/predict"}}], "backendRefs": [
                {"name": "ml-model-serving", "port": 80, "weight": 100},
                {"name": "ml-model-serving-canary", "port": 80, "weight": 0},
            ]},
            {"backendRefs": [{"name": "docs", "port": 80}]},
        ]}});
        let out = set_http_route_weights(&route, "ml-model-serving", "ml-model-serving-canary", 25)
            .expect("ok");
        assert_eq!(weights(&out, "/spec/rules/0/backendRefs"), [75, 25]);
        assert_eq!(out["spec"]["rules"][1], route["spec"]["rules"][1]);
        assert_eq!(current_canary_weight(&out, &canary()), Some(25));
        assert_eq!(
            current_canary_weight(&route, &Destination::host("nope")),
            None
        );
        // A rule with only one of the two Services is an error, not a half edit.
        let mut half = route.clone();
        half["spec"]["rules"][1]["backendRefs"][0]["name"] = json!("ml-model-serving");
        let e = set_http_route_weights(&half, "ml-model-serving", "ml-model-serving-canary", 25)
            .expect_err("half");
        assert!(
            e.to_string().contains("rules[1]") && e.to_string().contains("canary"),
            "{e}"
        );
        let e = set_http_route_weights(&route, "a", "b", 25).expect_err("no backends");
        assert!(matches!(e, TrafficError::NoBackends { .. }));
        // Only Services are backends of that name.
        let mut other_kind = route.clone();
        other_kind["spec"]["rules"][0]["backendRefs"][1]["kind"] = json!("ServiceImport");
        other_kind["spec"]["rules"][0]["backendRefs"][1]["group"] = json!("multicluster.x-k8s.io");
        assert!(set_http_route_weights(
            &other_kind,
            "ml-model-serving",
            "ml-model-serving-canary",
            25
        )
        .is_err());
        assert!(matches!(
            set_http_route_weights(&json!([1]), "a", "b", 1),
            Err(TrafficError::NotAnObject {
                kind: "HTTPRoute",
                ..
            })
        ));
        assert!(set_http_route_weights(&json!({"spec": {"rules": "x"}}), "a", "b", 1).is_err());
    }

    #[test]
    fn malformed_input_is_refused() {
        for w in [-1, 101, i32::MAX] {
            assert_eq!(
                set_virtual_service_weights(&vs(), &["primary".into()], &stable(), &canary(), w),
                Err(TrafficError::Weight(w))
            );
            assert_eq!(
                set_http_route_weights(&json!({}), "a", "b", w),
                Err(TrafficError::Weight(w))
            );
        }
        assert!(matches!(
            set_virtual_service_weights(&json!(null), &[], &stable(), &canary(), 1),
            Err(TrafficError::NotAnObject { .. })
        ));
        let none = json!({"metadata": {"name": "v"}, "spec": {"hosts": ["x"]}});
        assert_eq!(
            set_virtual_service_weights(&none, &[], &stable(), &canary(), 1),
            Err(TrafficError::NoHttpRoutes { vs: "v".into() })
        );
        let e =
            set_virtual_service_weights(&vs(), &["canary-route".into()], &stable(), &canary(), 1)
                .expect_err("route missing");
        assert!(
            e.to_string().contains("routes there: primary, shadow"),
            "{e}"
        );
        let e = set_virtual_service_weights(&vs(), &["shadow".into()], &stable(), &canary(), 1)
            .expect_err("destination missing");
        assert!(
            e.to_string().contains("stable host \"ml-model-serving\""),
            "{e}"
        );
        let bad = json!({"metadata": {"name": "v"}, "spec": {"http": {"name": "x"}}});
        assert!(matches!(
            set_virtual_service_weights(&bad, &[], &stable(), &canary(), 1),
            Err(TrafficError::Malformed { .. })
        ));
        let bad_route = json!({"metadata": {"name": "v"}, "spec": {"http": [{"route": 7}]}});
        assert!(set_virtual_service_weights(&bad_route, &[], &stable(), &canary(), 1).is_err());
    }

    #[test]
    fn hosts_match_short_and_qualified_names() {
        for (host, svc, want) in [
            ("ml", "ml", true),
            ("ml.serving", "ml", true),
            ("ml.serving.svc", "ml", true),
            ("ml.serving.svc.cluster.local", "ml", true),
            ("ml.serving.svc.cluster.local", "ml.serving", true),
            ("ml.other.svc.cluster.local", "ml.serving", false),
            ("ml-canary", "ml", false),
            ("ml.example.com", "ml", false),
            ("", "ml", false),
        ] {
            assert_eq!(host_matches(host, svc), want, "{host} vs {svc}");
        }
    }

    #[test]
    fn rollout_traffic_configuration_is_read() {
        let ro = json!({"metadata": {"name": "r"}, "spec": {"strategy": {"canary": {"trafficRouting": {
            "istio": {
                "virtualService": {"name": "vs1.mesh", "routes": ["primary"]},
                "virtualServices": [{"name": "vs2", "tlsRoutes": [{"port": 443, "sniHosts": ["a"]}], "tcpRoutes": [{"port": 9000}]}],
                "destinationRule": {"name": "dr", "canarySubsetName": "canary", "stableSubsetName": "stable"},
            },
            "plugins": {"argoproj-labs/gatewayAPI": {"httpRoutes": [{"name": "a"}, {"name": "b"}], "namespace": "gw"}},
        }}}}});
        let istio = istio_routing(&ro).expect("ok").expect("istio");
        assert_eq!(istio.virtual_services.len(), 2);
        assert_eq!(
            istio.virtual_services[0].name_namespace("ml"),
            ("vs1", "mesh")
        );
        assert_eq!(
            istio.virtual_services[1].name_namespace("ml"),
            ("vs2", "ml")
        );
        assert_eq!(
            istio.virtual_services[1].tcp,
            [TcpRoute { port: Some(9000) }]
        );
        assert_eq!(istio.destination_rule.expect("dr").canary_subset, "canary");
        let gw = gateway_api_routing(&ro).expect("ok").expect("gw");
        assert_eq!(gw.http_routes, ["a", "b"]);
        assert_eq!(gw.namespace.as_deref(), Some("gw"));
        assert_eq!(istio_routing(&json!({"spec": {}})), Ok(None));
        let bad = json!({"metadata": {"name": "r"}, "spec": {"strategy": {"canary": {"trafficRouting": {
            "istio": {"virtualService": {"routes": "primary"}}}}}}});
        assert!(matches!(
            istio_routing(&bad),
            Err(TrafficError::Malformed { .. })
        ));
        let bad = json!({"metadata": {"name": "r"}, "spec": {"strategy": {"canary": {"trafficRouting": {
            "istio": {"virtualService": {"name": "v", "routes": [1]}}}}}}});
        assert!(istio_routing(&bad).is_err());
        let bad = json!({"spec": {"strategy": {"canary": {"trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": {}}}}}}});
        assert!(gateway_api_routing(&bad).is_err());
    }
}
