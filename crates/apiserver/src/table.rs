//! Server-side printing: the `meta.k8s.io/v1` `Table` that `kubectl get` asks for.
//!
//! kubectl requests `application/json;as=Table;g=meta.k8s.io;v=v1` and prints whatever
//! columns the server returns, so the familiar READY / UP-TO-DATE / AVAILABLE columns come
//! from here. Custom resources use their `additionalPrinterColumns`.

use crate::registry::ResourceType;
use mooring_core::time::{self, age};
use serde_json::{json, Value};

struct Col {
    name: &'static str,
    type_: &'static str,
    format: &'static str,
}

const fn col(name: &'static str) -> Col {
    Col {
        name,
        type_: "string",
        format: "",
    }
}

fn columns(rt: &ResourceType) -> Vec<Col> {
    let name = Col {
        name: "Name",
        type_: "string",
        format: "name",
    };
    let mut cols = vec![name];
    if rt.crd.is_none() {
        match (rt.group.as_str(), rt.kind.as_str()) {
            ("", "Namespace") => cols.push(col("Status")),
            ("", "Pod") => cols.extend([col("Ready"), col("Status"), col("Restarts")]),
            ("", "Node") => cols.extend([col("Status"), col("Roles"), col("Version")]),
            ("", "Service") => cols.extend([
                col("Type"),
                col("Cluster-IP"),
                col("External-IP"),
                col("Port(s)"),
            ]),
            ("", "ConfigMap") => cols.push(col("Data")),
            ("", "Secret") => cols.extend([col("Type"), col("Data")]),
            ("", "PersistentVolumeClaim") => cols.extend([
                col("Status"),
                col("Volume"),
                col("Capacity"),
                col("Access Modes"),
                col("StorageClass"),
            ]),
            ("apps", "Deployment") => {
                cols.extend([col("Ready"), col("Up-to-date"), col("Available")])
            }
            ("apps", "ReplicaSet") => cols.extend([col("Desired"), col("Current"), col("Ready")]),
            ("apps", "StatefulSet") => cols.push(col("Ready")),
            ("apps", "DaemonSet") => cols.extend([
                col("Desired"),
                col("Current"),
                col("Ready"),
                col("Up-to-date"),
                col("Available"),
            ]),
            ("" | "events.k8s.io", "Event") => cols.extend([
                col("Last Seen"),
                col("Type"),
                col("Reason"),
                col("Object"),
                col("Message"),
            ]),
            ("discovery.k8s.io", "EndpointSlice") => {
                cols.extend([col("AddressType"), col("Ports"), col("Endpoints")])
            }
            ("batch", "Job") => cols.extend([col("Status"), col("Completions")]),
            ("batch", "CronJob") => cols.extend([col("Schedule"), col("Suspend"), col("Active")]),
            ("autoscaling", "HorizontalPodAutoscaler") => cols.extend([
                col("Reference"),
                col("Targets"),
                col("MinPods"),
                col("MaxPods"),
                col("Replicas"),
            ]),
            ("networking.k8s.io", "Ingress") => {
                cols.extend([col("Class"), col("Hosts"), col("Address"), col("Ports")])
            }
            _ => {}
        }
    }
    cols
}

/// The TARGETS cell of an HPA (kubectl 1.32's printer): `cpu: 20%/50%` per resource
/// metric, `current/target` for Pods metrics, `<unknown>` before a first measurement,
/// and `+ N more...` beyond three metrics.
fn hpa_targets(v: &Value) -> String {
    let specs = v
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let current = v
        .pointer("/status/currentMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if specs.is_empty() {
        return "<none>".into();
    }
    let str_of = |v: Option<&Value>| match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let mut parts = Vec::new();
    for m in specs.iter().take(3) {
        let t = m.get("type").and_then(Value::as_str).unwrap_or_default();
        let part = match t {
            "Resource" => {
                let name = m
                    .pointer("/resource/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let cur = current.iter().find(|c| {
                    c.get("type").and_then(Value::as_str) == Some("Resource")
                        && c.pointer("/resource/name").and_then(Value::as_str) == Some(name)
                });
                if let Some(target) = m.pointer("/resource/target/averageUtilization") {
                    let now = cur
                        .and_then(|c| str_of(c.pointer("/resource/current/averageUtilization")))
                        .map_or("<unknown>".to_string(), |u| format!("{u}%"));
                    format!("{name}: {now}/{target}%")
                } else {
                    let target = str_of(m.pointer("/resource/target/averageValue"))
                        .or_else(|| str_of(m.pointer("/resource/target/value")))
                        .unwrap_or_default();
                    let now = cur
                        .and_then(|c| str_of(c.pointer("/resource/current/averageValue")))
                        .unwrap_or_else(|| "<unknown>".into());
                    format!("{name}: {now}/{target}")
                }
            }
            "Pods" => {
                let name = m
                    .pointer("/pods/metric/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let target = str_of(m.pointer("/pods/target/averageValue")).unwrap_or_default();
                let now = current
                    .iter()
                    .find(|c| c.pointer("/pods/metric/name").and_then(Value::as_str) == Some(name))
                    .and_then(|c| str_of(c.pointer("/pods/current/averageValue")))
                    .unwrap_or_else(|| "<unknown>".into());
                format!("{now}/{target}")
            }
            _ => "<unknown>/<unknown>".into(),
        };
        parts.push(part);
    }
    let mut out = parts.join(", ");
    if specs.len() > 3 {
        out.push_str(&format!(" + {} more...", specs.len() - 3));
    }
    out
}

/// kubectl's width of a load-balancer address cell (longer lists end in `...`).
const LOAD_BALANCER_WIDTH: usize = 16;

/// `status.loadBalancer.ingress` as kubectl prints it: each entry's IP (or hostname),
/// sorted and deduplicated, comma-separated, cut to 16 characters.
fn load_balancer_addresses(v: &Value) -> String {
    let mut addrs: Vec<&str> = v
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| {
                    let ip = i
                        .get("ip")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty());
                    ip.or_else(|| {
                        i.get("hostname")
                            .and_then(Value::as_str)
                            .filter(|s| !s.is_empty())
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    addrs.sort_unstable();
    addrs.dedup();
    let joined = addrs.join(",");
    if joined.len() > LOAD_BALANCER_WIDTH {
        let cut = (0..=LOAD_BALANCER_WIDTH - 3)
            .rev()
            .find(|i| joined.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}...", &joined[..cut])
    } else {
        joined
    }
}

/// kubectl's EXTERNAL-IP of a Service.
fn service_external_ip(v: &Value) -> String {
    let external: Vec<String> = v
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|x| s(Some(x))).collect())
        .unwrap_or_default();
    match v.pointer("/spec/type").and_then(Value::as_str) {
        Some("ClusterIP" | "NodePort") | None => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        Some("LoadBalancer") => {
            let lb = load_balancer_addresses(v);
            let mut all: Vec<String> = lb
                .split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect();
            all.extend(external);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        Some("ExternalName") => s(v.pointer("/spec/externalName")),
        Some(_) => "<unknown>".into(),
    }
}

/// kubectl's HOSTS of an Ingress: the rule hosts until three are listed, `*` when none.
fn ingress_hosts(v: &Value) -> String {
    const MAX: usize = 3;
    let rules = v
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for r in rules {
        if hosts.len() == MAX {
            more = true;
            break;
        }
        if let Some(h) = r
            .get("host")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
        {
            hosts.push(h);
        }
    }
    if hosts.is_empty() {
        "*".into()
    } else if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - MAX)
    } else {
        hosts.join(",")
    }
}

fn s(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn n(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn cells(rt: &ResourceType, v: &Value, now: time::Timestamp) -> Vec<Value> {
    let mut out = vec![json!(s(v.pointer("/metadata/name")))];
    if rt.crd.is_none() {
        match (rt.group.as_str(), rt.kind.as_str()) {
            ("", "Namespace") => out.push(json!(s(v.pointer("/status/phase")))),
            ("", "Pod") => {
                let statuses = v
                    .pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let total = v
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let ready = statuses
                    .iter()
                    .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                    .count();
                let restarts: i64 = statuses
                    .iter()
                    .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                    .sum();
                let waiting = statuses.iter().find_map(|c| {
                    c.pointer("/state/waiting/reason")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
                let status = if v.pointer("/metadata/deletionTimestamp").is_some() {
                    "Terminating".to_string()
                } else {
                    waiting.unwrap_or_else(|| {
                        let p = s(v.pointer("/status/phase"));
                        if p.is_empty() {
                            "Pending".into()
                        } else {
                            p
                        }
                    })
                };
                out.extend([
                    json!(format!("{ready}/{total}")),
                    json!(status),
                    json!(restarts),
                ]);
            }
            ("", "Node") => out.extend([json!("Ready"), json!("<none>"), json!("v1.32.0-mooring")]),
            ("", "Service") => {
                let ports = v
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .map(|ps| {
                        ps.iter()
                            .map(|p| match p.get("nodePort").and_then(Value::as_i64) {
                                Some(np) if np > 0 => {
                                    format!("{}:{np}/{}", s(p.get("port")), s(p.get("protocol")))
                                }
                                _ => format!("{}/{}", s(p.get("port")), s(p.get("protocol"))),
                            })
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                out.extend([
                    json!(s(v.pointer("/spec/type"))),
                    json!(v
                        .pointer("/spec/clusterIPs/0")
                        .and_then(Value::as_str)
                        .unwrap_or("<none>")),
                    json!(service_external_ip(v)),
                    json!(if ports.is_empty() {
                        "<none>".into()
                    } else {
                        ports
                    }),
                ]);
            }
            ("", "ConfigMap") => {
                let count = v
                    .get("data")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
                    + v.get("binaryData")
                        .and_then(Value::as_object)
                        .map_or(0, |m| m.len());
                out.push(json!(count));
            }
            ("", "Secret") => {
                let count = v
                    .get("data")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
                out.extend([json!(s(v.get("type"))), json!(count)]);
            }
            ("", "PersistentVolumeClaim") => out.extend([
                json!(s(v.pointer("/status/phase"))),
                json!(s(v.pointer("/spec/volumeName"))),
                json!(s(v.pointer("/status/capacity/storage"))),
                json!(v
                    .pointer("/spec/accessModes")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(|m| s(Some(m))).collect::<Vec<_>>().join(","))
                    .unwrap_or_default()),
                json!(s(v.pointer("/spec/storageClassName"))),
            ]),
            ("apps", "Deployment") => out.extend([
                json!(format!(
                    "{}/{}",
                    n(v, "/status/readyReplicas"),
                    n(v, "/spec/replicas")
                )),
                json!(n(v, "/status/updatedReplicas")),
                json!(n(v, "/status/availableReplicas")),
            ]),
            ("apps", "ReplicaSet") => out.extend([
                json!(n(v, "/spec/replicas")),
                json!(n(v, "/status/replicas")),
                json!(n(v, "/status/readyReplicas")),
            ]),
            ("apps", "StatefulSet") => out.push(json!(format!(
                "{}/{}",
                n(v, "/status/readyReplicas"),
                n(v, "/spec/replicas")
            ))),
            ("apps", "DaemonSet") => out.extend([
                json!(n(v, "/status/desiredNumberScheduled")),
                json!(n(v, "/status/currentNumberScheduled")),
                json!(n(v, "/status/numberReady")),
                json!(n(v, "/status/updatedNumberScheduled")),
                json!(n(v, "/status/numberAvailable")),
            ]),
            ("discovery.k8s.io", "EndpointSlice") => {
                let ports: Vec<String> = v
                    .get("ports")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(|p| s(p.get("port"))).collect())
                    .unwrap_or_default();
                let addrs: Vec<String> = v
                    .get("endpoints")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .flat_map(|e| {
                                e.get("addresses")
                                    .and_then(Value::as_array)
                                    .cloned()
                                    .unwrap_or_default()
                            })
                            .map(|x| s(Some(&x)))
                            .collect()
                    })
                    .unwrap_or_default();
                // kubectl's printer: the first three, then "+ N more...".
                let endpoints = match addrs.len() {
                    0 => "<unset>".to_string(),
                    n if n > 3 => format!("{} + {} more...", addrs[..3].join(","), n - 3),
                    _ => addrs.join(","),
                };
                out.extend([
                    json!(s(v.get("addressType"))),
                    json!(if ports.is_empty() {
                        "<unset>".to_string()
                    } else {
                        ports.join(",")
                    }),
                    json!(endpoints),
                ]);
            }
            (g @ ("" | "events.k8s.io"), "Event") => {
                let core = g.is_empty();
                let pick = |a: &str, b: &str| v.pointer(if core { a } else { b });
                let obj = pick("/involvedObject", "/regarding")
                    .cloned()
                    .unwrap_or(json!({}));
                let last = pick("/lastTimestamp", "/deprecatedLastTimestamp")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .or_else(|| v.pointer("/eventTime").and_then(Value::as_str))
                    .or_else(|| {
                        v.pointer("/metadata/creationTimestamp")
                            .and_then(Value::as_str)
                    });
                out.extend([
                    json!(age(last, now)),
                    json!(s(v.get("type"))),
                    json!(s(v.get("reason"))),
                    json!(format!(
                        "{}/{}",
                        s(obj.get("kind")).to_lowercase(),
                        s(obj.get("name"))
                    )),
                    json!(s(pick("/message", "/note"))),
                ]);
            }
            ("batch", "Job") => {
                let conds = v
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let has = |t: &str| {
                    conds.iter().any(|c| {
                        c.get("type").and_then(Value::as_str) == Some(t)
                            && c.get("status").and_then(Value::as_str) == Some("True")
                    })
                };
                let status = if has("Complete") {
                    "Complete"
                } else if has("Failed") {
                    "Failed"
                } else {
                    "Running"
                };
                out.extend([
                    json!(status),
                    json!(format!(
                        "{}/{}",
                        n(v, "/status/succeeded"),
                        n(v, "/spec/completions").max(1)
                    )),
                ]);
            }
            ("networking.k8s.io", "Ingress") => out.extend([
                json!(v
                    .pointer("/spec/ingressClassName")
                    .and_then(Value::as_str)
                    .unwrap_or("<none>")),
                json!(ingress_hosts(v)),
                json!(load_balancer_addresses(v)),
                json!(if v
                    .pointer("/spec/tls")
                    .and_then(Value::as_array)
                    .is_some_and(|t| !t.is_empty())
                {
                    "80, 443"
                } else {
                    "80"
                }),
            ]),
            ("autoscaling", "HorizontalPodAutoscaler") => {
                // Rows are printed from the v2 form, whichever version was asked for.
                let v2 = crate::convert::to_storage(rt, v.clone());
                out.extend([
                    json!(format!(
                        "{}/{}",
                        s(v2.pointer("/spec/scaleTargetRef/kind")),
                        s(v2.pointer("/spec/scaleTargetRef/name"))
                    )),
                    json!(hpa_targets(&v2)),
                    v2.pointer("/spec/minReplicas")
                        .cloned()
                        .unwrap_or(json!("<unset>")),
                    v2.pointer("/spec/maxReplicas").cloned().unwrap_or(json!(0)),
                    v2.pointer("/status/currentReplicas")
                        .cloned()
                        .unwrap_or(json!(0)),
                ]);
            }
            ("batch", "CronJob") => out.extend([
                json!(s(v.pointer("/spec/schedule"))),
                json!(s(v.pointer("/spec/suspend"))),
                json!(v
                    .pointer("/status/active")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)),
            ]),
            _ => {}
        }
    }
    for c in &rt.printer_columns {
        if c.type_ == "date" {
            out.push(json!(age(
                crate::api::path_get(v, strip_braces(&c.json_path)).and_then(Value::as_str),
                now
            )));
        } else {
            out.push(
                crate::api::path_get(v, strip_braces(&c.json_path))
                    .cloned()
                    .unwrap_or(Value::Null),
            );
        }
    }
    if !rt
        .printer_columns
        .iter()
        .any(|c| c.name.eq_ignore_ascii_case("age"))
    {
        out.push(json!(age(
            v.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str),
            now
        )));
    }
    out
}

fn strip_braces(p: &str) -> &str {
    p.trim().trim_start_matches('{').trim_end_matches('}')
}

fn partial_metadata(v: &Value) -> Value {
    let mut m = v.get("metadata").cloned().unwrap_or(json!({}));
    if let Some(o) = m.as_object_mut() {
        o.remove("managedFields");
    }
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": m})
}

/// A Table of `objects`.
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    resource_version: u64,
    cont: Option<&str>,
) -> Value {
    let now = time::now();
    let mut defs: Vec<Value> = columns(rt)
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.type_, "format": c.format, "description": "", "priority": 0})
        })
        .collect();
    for c in &rt.printer_columns {
        defs.push(json!({"name": c.name, "type": c.type_, "format": "", "description": "", "priority": 0}));
    }
    if !rt
        .printer_columns
        .iter()
        .any(|c| c.name.eq_ignore_ascii_case("age"))
    {
        defs.push(json!({"name": "Age", "type": "string", "format": "", "description": "", "priority": 0}));
    }
    if rt.kind == "Event" && rt.crd.is_none() {
        // As Kubernetes prints Events: the name and age only with `-o wide`.
        for d in defs.iter_mut() {
            if matches!(d["name"].as_str(), Some("Name" | "Age")) {
                d["priority"] = json!(1);
            }
        }
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| json!({"cells": cells(rt, o, now), "object": partial_metadata(o)}))
        .collect();
    let mut meta = json!({"resourceVersion": resource_version.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn deployment_row() {
        let r = Registry::with_builtins();
        let rt = r.get("apps", "v1", "deployments").expect("deploy");
        let d = json!({"metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"replicas": 3}, "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let t = table(&rt, &[d], 7, None);
        assert_eq!(t["rows"][0]["cells"][0], "web");
        assert_eq!(t["rows"][0]["cells"][1], "2/3");
        assert_eq!(t["columnDefinitions"].as_array().expect("defs").len(), 5);
    }

    #[test]
    fn service_external_ip_reads_like_kubectl() {
        let r = Registry::with_builtins();
        let rt = r.get("", "v1", "services").expect("svc");
        let row = |svc: Value| table(&rt, &[svc], 1, None)["rows"][0]["cells"].clone();
        let lb = json!({"metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
                     "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31234}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.100.2", "ipMode": "VIP"}]}}});
        let cells = row(lb.clone());
        assert_eq!(cells[1], "LoadBalancer");
        assert_eq!(cells[2], "10.96.0.9");
        assert_eq!(cells[3], "127.0.100.2");
        assert_eq!(cells[4], "80:31234/TCP");
        let mut pending = lb.clone();
        pending["status"] = json!({"loadBalancer": {}});
        assert_eq!(row(pending.clone())[3], "<pending>");
        pending["spec"]["externalIPs"] = json!(["192.0.2.1"]);
        assert_eq!(row(pending)[3], "192.0.2.1");
        let mut host = lb.clone();
        host["status"] =
            json!({"loadBalancer": {"ingress": [{"hostname": "a-very-long-hostname.example"}]}});
        assert_eq!(row(host)[3], "a-very-long-h...");
        assert_eq!(
            row(
                json!({"metadata": {"name": "c"}, "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}})
            )[3],
            "<none>"
        );
        assert_eq!(
            row(json!({"metadata": {"name": "x"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}}))
                .as_array()
                .expect("cells")[2..4],
            [json!("<none>"), json!("db.example.com")]
        );
    }

    #[test]
    fn ingress_row_reads_like_kubectl() {
        let r = Registry::with_builtins();
        let rt = r.get("networking.k8s.io", "v1", "ingresses").expect("ing");
        let ing = json!({"metadata": {"name": "web"},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.test"}, {"host": "b.test"}, {}, {"host": "d.test"}, {"host": "e.test"}],
                     "tls": [{"hosts": ["a.test"]}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.100.1"}]}}});
        let t = table(&rt, &[ing], 1, None);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .expect("defs")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["Name", "Class", "Hosts", "Address", "Ports", "Age"]);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[1], "nginx");
        assert_eq!(cells[2], "a.test,b.test,d.test + 2 more...");
        assert_eq!(cells[3], "127.0.100.1");
        assert_eq!(cells[4], "80, 443");
        let bare = table(&rt, &[json!({"metadata": {"name": "x"}})], 1, None);
        assert_eq!(
            bare["rows"][0]["cells"].as_array().expect("cells")[1..5],
            [json!("<none>"), json!("*"), json!(""), json!("80")]
        );
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = time::parse("2020-01-01T01:00:00Z").expect("ts");
        assert_eq!(age(Some("2020-01-01T00:59:15Z"), now), "45s");
        assert_eq!(age(Some("2020-01-01T00:55:00Z"), now), "5m0s");
        assert_eq!(age(None, now), "<unknown>");
    }
}
