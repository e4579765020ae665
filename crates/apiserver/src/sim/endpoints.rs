//! The endpoints controller: an `Endpoints` object per Service with a selector, listing
//! the IPs of matching Pods — Ready ones under `addresses`, the others under
//! `notReadyAddresses` — with the Service's ports resolved against the Pods' container
//! ports (named `targetPort`s included). Services without a selector are left alone:
//! their Endpoints are managed by the user.

use super::util::{self, pod, str_at};
use super::{res, Controller, Ctx};
use crate::api::Subresource;
use crate::error::ApiError;
use crate::store::{Event, ObjKey};
use serde_json::{json, Map, Value};
use std::time::Duration;

pub struct EndpointsController;

impl Controller for EndpointsController {
    fn name(&self) -> &'static str {
        "endpoints"
    }

    fn keys_for(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<ObjKey>) {
        let k = &ev.object.key;
        match k.resource.as_str() {
            res::SERVICES => out.push(k.clone()),
            res::ENDPOINTS => out.push(ObjKey::new(res::SERVICES, &k.namespace, &k.name)),
            res::PODS => {
                let (svcs, _) = ctx.api.store.list(res::SERVICES, Some(&k.namespace));
                out.extend(svcs.iter().map(|s| s.key.clone()));
            }
            _ => {}
        }
    }

    fn all_keys(&mut self, ctx: &Ctx) -> Vec<ObjKey> {
        util::all_keys(ctx, res::SERVICES)
    }

    fn reconcile(&mut self, ctx: &Ctx, key: &ObjKey) -> Result<Option<Duration>, ApiError> {
        let Some(svc) = util::get(ctx, key)? else {
            return Ok(None);
        };
        let Some(selector) = svc
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .filter(|s| !s.is_empty())
            .cloned()
        else {
            return Ok(None);
        };
        if util::is_deleting(&svc) || str_at(&svc, "/spec/type") == Some("ExternalName") {
            return Ok(None);
        }
        let publish_not_ready = svc
            .pointer("/spec/publishNotReadyAddresses")
            .and_then(Value::as_bool)
            == Some(true);
        let (pods, _) = ctx.api.store.list(res::PODS, Some(&key.namespace));
        let mut ready = Vec::new();
        let mut not_ready = Vec::new();
        let mut ports: Option<Vec<Value>> = None;
        for s in pods {
            if !selector.iter().all(|(k, v)| s.labels.get(k) == Some(v)) {
                continue;
            }
            let Ok(p) = s.value() else { continue };
            if !pod::is_active(&p) {
                continue;
            }
            let Some(ip) = str_at(&p, "/status/podIP") else {
                continue;
            };
            let mut addr = json!({"ip": ip});
            if let Some(n) = str_at(&p, "/spec/nodeName") {
                addr["nodeName"] = json!(n);
            }
            addr["targetRef"] = json!({"kind": "Pod", "namespace": key.namespace,
                "name": util::name_of(&p), "uid": str_at(&p, "/metadata/uid")});
            if ports.is_none() {
                ports = Some(resolve_ports(&svc, &p));
            }
            if pod::is_ready(&p) || publish_not_ready {
                ready.push(addr);
            } else {
                not_ready.push(addr);
            }
        }
        let by_ip = |a: &Value| {
            a.get("ip")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        ready.sort_by_key(by_ip);
        not_ready.sort_by_key(by_ip);
        let mut subset = Map::new();
        if !ready.is_empty() {
            subset.insert("addresses".into(), json!(ready));
        }
        if !not_ready.is_empty() {
            subset.insert("notReadyAddresses".into(), json!(not_ready));
        }
        let ports = ports.unwrap_or_default();
        if !ports.is_empty() {
            subset.insert("ports".into(), json!(ports));
        }
        let subsets = if ready.is_empty() && not_ready.is_empty() {
            None
        } else {
            Some(json!([subset]))
        };
        let slice_endpoints: Vec<Value> = ready
            .iter()
            .map(|a| (a, true))
            .chain(not_ready.iter().map(|a| (a, false)))
            .map(|(a, is_ready)| {
                let mut e = json!({
                    "addresses": [a["ip"].clone()],
                    "conditions": {"ready": is_ready, "serving": is_ready, "terminating": false},
                    "targetRef": a["targetRef"].clone(),
                });
                if let Some(n) = a.get("nodeName") {
                    e["nodeName"] = n.clone();
                }
                e
            })
            .collect();
        write_slice(ctx, &svc, key, slice_endpoints, ports.clone())?;
        let ns = Some(key.namespace.as_str());
        match ctx.api.get(&ctx.endpoints, ns, &key.name) {
            Err(ApiError::NotFound { .. }) => {
                let mut ep = json!({
                    "apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": key.name, "namespace": key.namespace,
                                 "labels": util::labels(&svc),
                                 "ownerReferences": [util::owner_ref(&svc)]},
                });
                if let Some(s) = subsets {
                    ep["subsets"] = s;
                }
                ctx.api.create(&ctx.endpoints, ns, ep, &ctx.wo)?;
            }
            Err(e) => return Err(e),
            Ok(cur) => {
                if cur.get("subsets") != subsets.as_ref() {
                    let mut new = cur.clone();
                    match subsets {
                        Some(s) => new["subsets"] = s,
                        None => {
                            if let Some(o) = new.as_object_mut() {
                                o.remove("subsets");
                            }
                        }
                    }
                    ctx.api.update(
                        &ctx.endpoints,
                        ns,
                        &key.name,
                        new,
                        Subresource::Main,
                        &ctx.wo,
                    )?;
                }
            }
        }
        Ok(None)
    }
}

/// The label naming a slice's Service, and the one naming its manager.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// Keep the Service's one `discovery.k8s.io/v1` EndpointSlice (`{service}-{suffix}`) in
/// line with its endpoints, as the EndpointSlice controller does (one slice suffices
/// below its 100-endpoint default).
fn write_slice(
    ctx: &Ctx,
    svc: &Value,
    key: &ObjKey,
    endpoints: Vec<Value>,
    ports: Vec<Value>,
) -> Result<(), ApiError> {
    let Some(rt) = ctx
        .api
        .registry
        .get("discovery.k8s.io", "v1", "endpointslices")
    else {
        return Ok(());
    };
    let ns = Some(key.namespace.as_str());
    let uid = str_at(svc, "/metadata/uid").unwrap_or_default();
    let (existing, _) = ctx.api.store.list(&rt.storage_key(), ns);
    let current = existing
        .iter()
        .filter(|s| s.owners.iter().any(|o| o == uid))
        .filter_map(|s| s.value().ok())
        .find(|v| {
            v.pointer("/metadata/labels")
                .and_then(|l| l.get(MANAGED_BY_LABEL))
                .and_then(Value::as_str)
                == Some(MANAGED_BY)
        });
    let mut labels = util::labels(svc);
    labels.insert(SERVICE_NAME_LABEL.into(), json!(key.name));
    labels.insert(MANAGED_BY_LABEL.into(), json!(MANAGED_BY));
    let body = |mut v: Value| {
        v["addressType"] = json!("IPv4");
        v["endpoints"] = json!(endpoints);
        v["ports"] = json!(ports);
        v["metadata"]["labels"] = json!(labels);
        v
    };
    match current {
        None => {
            let slice = body(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"generateName": format!("{}-", key.name), "namespace": key.namespace,
                             "ownerReferences": [util::owner_ref(svc)]},
            }));
            ctx.api.create(&rt, ns, slice, &ctx.wo)?;
        }
        Some(cur) => {
            let new = body(cur.clone());
            if new != cur {
                ctx.api.update(
                    &rt,
                    ns,
                    util::name_of(&cur),
                    new,
                    Subresource::Main,
                    &ctx.wo,
                )?;
            }
        }
    }
    Ok(())
}

/// The Service's ports as Endpoints ports of this Pod (`targetPort` names resolved).
fn resolve_ports(svc: &Value, p: &Value) -> Vec<Value> {
    let sports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let containers = p
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for sp in sports {
        let proto = sp.get("protocol").cloned().unwrap_or(json!("TCP"));
        let port = match sp.get("targetPort").or(sp.get("port")) {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(name)) => name.parse::<i64>().ok().or_else(|| {
                containers
                    .iter()
                    .flat_map(|c| {
                        c.get("ports")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default()
                    })
                    .find(|cp| cp.get("name").and_then(Value::as_str) == Some(name.as_str()))
                    .and_then(|cp| cp.get("containerPort").and_then(Value::as_i64))
            }),
            _ => None,
        };
        let Some(port) = port else { continue };
        let mut e = json!({});
        if let Some(n) = sp
            .get("name")
            .filter(|n| n.as_str().is_some_and(|s| !s.is_empty()))
        {
            e["name"] = n.clone();
        }
        e["port"] = json!(port);
        e["protocol"] = proto;
        if let Some(a) = sp.get("appProtocol") {
            e["appProtocol"] = a.clone();
        }
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_target_ports_resolve() {
        let svc = json!({"spec": {"ports": [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
                                            {"port": 9090, "targetPort": 9091}]}});
        let p = json!({"spec": {"containers": [{"name": "c", "ports": [{"name": "web", "containerPort": 8080}]}]}});
        let ports = resolve_ports(&svc, &p);
        assert_eq!(ports[0]["port"], 8080);
        assert_eq!(ports[0]["name"], "http");
        assert_eq!(ports[1]["port"], 9091);
    }
}
