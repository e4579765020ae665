//! Traffic routers told the canary weight: Istio `VirtualService` route weights (and the
//! `DestinationRule` subsets for subset-level routing) and Gateway API `HTTPRoute` backend
//! weights. The edits themselves are pure ([`mooring_engine::traffic`]); this module reads
//! the objects and writes them back (a replace carrying the object's `resourceVersion`, so
//! a concurrent edit is never lost) only when they change.

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use mooring_engine::rollout::TrafficPlan;
use mooring_engine::traffic::{self, Destination};
use mooring_k8s::{api_resource, kube};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("{kind} {namespace}/{name} not found; create it or fix the Rollout's trafficRouting")]
    NotFound {
        kind: String,
        namespace: String,
        name: String,
    },
    #[error(transparent)]
    Edit(#[from] traffic::TrafficError),
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "trafficRouting configures no router Mooring drives (istio, or the {} plugin)",
        traffic::GATEWAY_API_PLUGIN
    )]
    Unsupported,
}

fn istio(kind: &str, plural: &str) -> ApiResource {
    api_resource("networking.istio.io", "v1beta1", kind, plural)
}

fn http_route() -> ApiResource {
    api_resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")
}

/// Read `name`, edit it with `f`, write it back if it changed.
async fn edit(
    client: &kube::Client,
    ns: &str,
    res: &ApiResource,
    name: &str,
    f: impl FnOnce(&Value) -> Result<Value, traffic::TrafficError>,
) -> Result<(), TrafficError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, res);
    let what = format!("{} {ns}/{name}", res.kind);
    let cur = api
        .get_opt(name)
        .await
        .map_err(|source| TrafficError::Kube {
            what: what.clone(),
            source,
        })?
        .ok_or_else(|| TrafficError::NotFound {
            kind: res.kind.clone(),
            namespace: ns.into(),
            name: name.into(),
        })?;
    let cur = serde_json::to_value(&cur).unwrap_or(Value::Null);
    let new = f(&cur)?;
    if new == cur {
        return Ok(());
    }
    let obj: DynamicObject = serde_json::from_value(new).map_err(|e| TrafficError::Kube {
        what: what.clone(),
        source: kube::Error::SerdeError(e),
    })?;
    api.replace(name, &PostParams::default(), &obj)
        .await
        .map_err(|source| TrafficError::Kube { what, source })?;
    Ok(())
}

/// Tell every router the Rollout configures the plan's weight.
pub async fn apply(
    client: &kube::Client,
    rollout: &Value,
    plan: &TrafficPlan,
) -> Result<(), TrafficError> {
    let ns = rollout
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let canary = rollout.pointer("/spec/strategy/canary");
    let service = |key: &str| {
        canary
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (stable_svc, canary_svc) = (service("stableService"), service("canaryService"));
    let weight = i32::try_from(plan.canary_weight).unwrap_or(0);
    let mut handled = false;
    if let Some(i) = traffic::istio_routing(rollout)? {
        handled = true;
        let (stable, canary_dest) = match &i.destination_rule {
            Some(dr) => {
                edit(
                    client,
                    ns,
                    &istio("DestinationRule", "destinationrules"),
                    &dr.name,
                    |o| {
                        traffic::set_destination_rule_subsets(
                            o,
                            &dr.stable_subset,
                            &plan.stable_hash,
                            &dr.canary_subset,
                            &plan.canary_hash,
                        )
                    },
                )
                .await?;
                // Subset-level routing: one host, two subsets.
                (
                    Destination::subset(&stable_svc, &dr.stable_subset),
                    Destination::subset(&stable_svc, &dr.canary_subset),
                )
            }
            None => (
                Destination::host(&stable_svc),
                Destination::host(&canary_svc),
            ),
        };
        for vs in &i.virtual_services {
            let (name, vs_ns) = vs.name_namespace(ns);
            edit(
                client,
                vs_ns,
                &istio("VirtualService", "virtualservices"),
                name,
                |o| {
                    traffic::set_virtual_service_route_weights(o, vs, &stable, &canary_dest, weight)
                },
            )
            .await?;
        }
    }
    if let Some(g) = traffic::gateway_api_routing(rollout)? {
        handled = true;
        let route_ns = g.namespace.as_deref().unwrap_or(ns);
        for route in &g.http_routes {
            edit(client, route_ns, &http_route(), route, |o| {
                traffic::set_http_route_weights(o, &stable_svc, &canary_svc, weight)
            })
            .await?;
        }
    }
    if !handled {
        return Err(TrafficError::Unsupported);
    }
    Ok(())
}
