//! Simulated resource usage of Pods and nodes: what metrics-server would report.
//!
//! The metrics API ([`crate::metrics_api`], for `kubectl top`) and the HPA controller
//! ([`super::hpa`]) must agree with each other and with the Prometheus metrics of
//! [`super::metrics`], so usage is one pure function of a Pod's spec and annotations, as
//! the request counters are:
//!
//! | annotation | meaning | default |
//! |---|---|---|
//! | `sim.mooring.dev/cpu-utilization` | CPU used, in percent of each container's CPU request | derived from the request rate |
//! | `sim.mooring.dev/memory-utilization` | memory used, in percent of each container's memory request | 40 % of the request, or 32 MiB |
//!
//! Without `cpu-utilization`, a container uses 2 millicores plus 1.5 millicores per
//! request per second of `sim.mooring.dev/request-rate` (default 10 req/s → 17m), split
//! evenly between the Pod's containers. Usage never exceeds a container's limit (CPU is
//! throttled, memory is capped just under the limit instead of simulating an OOM kill), and
//! each Pod gets a small deterministic offset (±3 %, from its name) so that a
//! Deployment's Pods do not report identical figures, as real ones never do. Nothing
//! varies with time, so an HPA reading these figures does not flap.
//!
//! The HPA's Pods metric [`REQUESTS_PER_SECOND_METRIC`] is the Pod's request rate
//! (`sim.mooring.dev/request-rate`), the same figure `http_requests_total` grows by.
//!
//! A node uses the sum of its Running Pods plus a base (the kubelet and system daemons:
//! 120m CPU, 600 MiB), like metrics-server's node figures, which include everything on
//! the node.

use super::util::{annotation, str_at};
use serde_json::Value;

pub const CPU_UTILIZATION: &str = "sim.mooring.dev/cpu-utilization";
pub const MEMORY_UTILIZATION: &str = "sim.mooring.dev/memory-utilization";

/// Name of the Pods metric the HPA controller serves from the simulated request rate.
pub const REQUESTS_PER_SECOND_METRIC: &str = "http_requests_per_second";

/// Node overhead beyond its Pods.
pub const NODE_BASE_CPU_NANOS: u64 = 120_000_000;
pub const NODE_BASE_MEMORY_BYTES: u64 = 600 * 1024 * 1024;

const DEFAULT_MEMORY_BYTES: f64 = 32.0 * 1024.0 * 1024.0;

/// Usage of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerUsage {
    pub name: String,
    /// CPU in nanocores.
    pub cpu_nanos: u64,
    pub memory_bytes: u64,
}

fn resource(container: &Value, kind: &str, name: &str) -> Option<f64> {
    container
        .pointer(&format!("/resources/{kind}/{name}"))
        .and_then(|v| match v {
            Value::String(s) => crate::quantity::parse(s),
            Value::Number(n) => n.as_f64(),
            _ => None,
        })
        .filter(|v| *v >= 0.0)
}

/// The containers' resource requests (CPU in cores, memory in bytes), `None` when unset.
pub fn requests(pod: &Value, name: &str) -> Vec<Option<f64>> {
    containers(pod)
        .iter()
        .map(|c| resource(c, "requests", name).or_else(|| resource(c, "limits", name)))
        .collect()
}

fn containers(pod: &Value) -> Vec<Value> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn ann_f64(pod: &Value, key: &str, max: f64) -> Option<f64> {
    annotation(pod, key)
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .map(|v| v.clamp(0.0, max))
}

/// The Pod's simulated request rate (requests per second).
pub fn request_rate(pod: &Value) -> f64 {
    ann_f64(pod, super::metrics::REQUEST_RATE, 1.0e6).unwrap_or(10.0)
}

/// A deterministic factor in [0.97, 1.03] from the Pod's name.
fn jitter(pod: &Value) -> f64 {
    let name = str_at(pod, "/metadata/name").unwrap_or_default();
    // FNV-1a: stable across runs and platforms, unlike `DefaultHasher`.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    0.97 + (h % 61) as f64 / 1000.0
}

/// Usage of each container of a Pod (whether or not it runs: callers decide).
pub fn pod_usage(pod: &Value) -> Vec<ContainerUsage> {
    let cs = containers(pod);
    let n = cs.len().max(1) as f64;
    let j = jitter(pod);
    let cpu_pct = ann_f64(pod, CPU_UTILIZATION, 10_000.0);
    let mem_pct = ann_f64(pod, MEMORY_UTILIZATION, 10_000.0);
    let rate = request_rate(pod);
    cs.iter()
        .map(|c| {
            let cpu_req = resource(c, "requests", "cpu").or_else(|| resource(c, "limits", "cpu"));
            let cpu_lim = resource(c, "limits", "cpu");
            let mut cpu = match (cpu_pct, cpu_req) {
                (Some(p), Some(r)) => r * p / 100.0,
                // A utilisation without a request: of a notional 100m.
                (Some(p), None) => 0.1 * p / 100.0,
                (None, _) => (0.002 + 0.0015 * rate) / n,
            } * j;
            if let Some(l) = cpu_lim {
                cpu = cpu.min(l);
            }
            let mem_req =
                resource(c, "requests", "memory").or_else(|| resource(c, "limits", "memory"));
            let mem_lim = resource(c, "limits", "memory");
            let mut mem = match (mem_pct, mem_req) {
                (Some(p), Some(r)) => r * p / 100.0,
                (Some(p), None) => DEFAULT_MEMORY_BYTES * p / 40.0,
                (None, Some(r)) => r * 0.4,
                (None, None) => DEFAULT_MEMORY_BYTES,
            } * j;
            if let Some(l) = mem_lim {
                mem = mem.min(l * 0.99);
            }
            ContainerUsage {
                name: c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                cpu_nanos: (cpu * 1e9).clamp(0.0, 1e18) as u64,
                memory_bytes: mem.clamp(0.0, 1e18) as u64,
            }
        })
        .collect()
}

/// Whether a Pod reports metrics: Running with a started container (as the kubelet's
/// summary API only has figures for running containers).
pub fn has_metrics(pod: &Value) -> bool {
    str_at(pod, "/status/phase") == Some("Running")
        && pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c.pointer("/state/running").is_some()))
}

/// CPU as metrics-server formats it (`12345678n`).
pub fn format_cpu(nanos: u64) -> String {
    format!("{nanos}n")
}

/// Memory as metrics-server formats it (`123456Ki`).
pub fn format_memory(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ann: Value, resources: Value) -> Value {
        json!({"metadata": {"name": "web-1", "annotations": ann},
               "spec": {"containers": [{"name": "c", "resources": resources}]}})
    }

    #[test]
    fn utilization_follows_requests_and_limits() {
        let p = pod(
            json!({CPU_UTILIZATION: "80"}),
            json!({"requests": {"cpu": "500m", "memory": "100Mi"}}),
        );
        let u = &pod_usage(&p)[0];
        let cores = u.cpu_nanos as f64 / 1e9;
        assert!((0.38..=0.42).contains(&cores), "{cores}");
        let mem = u.memory_bytes as f64 / (100.0 * 1024.0 * 1024.0);
        assert!((0.38..=0.42).contains(&mem), "{mem}");
        // Throttled at the limit.
        let p = pod(
            json!({CPU_UTILIZATION: "500"}),
            json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "200m"}}),
        );
        assert_eq!(pod_usage(&p)[0].cpu_nanos, 200_000_000);
    }

    #[test]
    fn request_rate_drives_default_cpu() {
        let low = pod_usage(&pod(
            json!({"sim.mooring.dev/request-rate": "10"}),
            json!({}),
        ));
        let high = pod_usage(&pod(
            json!({"sim.mooring.dev/request-rate": "100"}),
            json!({}),
        ));
        assert!(high[0].cpu_nanos > 5 * low[0].cpu_nanos);
        // Absurd values are bounded, not overflowing.
        let absurd = pod_usage(&pod(json!({CPU_UTILIZATION: "1e300"}), json!({})));
        assert!(absurd[0].cpu_nanos > 0);
    }

    #[test]
    fn formats() {
        assert_eq!(format_cpu(12_345), "12345n");
        assert_eq!(format_memory(2048 * 1024), "2048Ki");
    }
}
