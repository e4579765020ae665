//! Requests actually answered through load-balancer listeners, per simulated Pod.
//!
//! The simulated Pods' metrics ([`super::metrics`]) are a closed-form function of time; a
//! request someone really sends to a Service's address ([`super::listeners`]) must show up
//! on top of that, so that Prometheus scraping the embedded cluster sees traffic after a
//! `curl`. The listeners record here, the metrics handler adds these counts to
//! `http_requests_total{code="200"}` (and to the latency histogram's count, as
//! near-instant requests). Counts live in memory, per Pod name, for the cluster's
//! lifetime (like a real Pod's counters they start from zero after a cluster restart).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Shared per-Pod counters of answered requests.
#[derive(Clone, Default)]
pub struct Traffic {
    served: Arc<Mutex<HashMap<(String, String), u64>>>,
    /// Where answered requests are also logged, as lines of the Pod's containers.
    logs: Option<super::logs::PodLogs>,
}

impl Traffic {
    /// Counters whose requests are also written to the Pods' logs.
    pub fn with_logs(logs: super::logs::PodLogs) -> Self {
        Traffic {
            served: Arc::default(),
            logs: Some(logs),
        }
    }

    /// Count one answered request on Pod `namespace/pod`.
    pub fn record(&self, namespace: &str, pod: &str) {
        {
            let mut m = self.served.lock().expect("traffic lock is never poisoned");
            *m.entry((namespace.to_string(), pod.to_string()))
                .or_default() += 1;
        }
        if let Some(logs) = &self.logs {
            logs.append(
                namespace,
                pod,
                "level=info msg=\"request served\" via=load-balancer status=200",
            );
        }
    }

    /// Requests answered by Pod `namespace/pod` so far.
    pub fn served(&self, namespace: &str, pod: &str) -> u64 {
        let m = self.served.lock().expect("traffic lock is never poisoned");
        m.get(&(namespace.to_string(), pod.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Of `pods`, the one that served the fewest requests (first on ties): the simulated
    /// kube-proxy's balancing, deterministic for tests.
    pub fn least_served<'a>(&self, namespace: &str, pods: &'a [String]) -> Option<&'a String> {
        pods.iter().min_by_key(|p| self.served(namespace, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_balances() {
        let t = Traffic::default();
        let pods = vec!["a".to_string(), "b".to_string()];
        for _ in 0..4 {
            let p = t.least_served("ns", &pods).expect("a pod").clone();
            t.record("ns", &p);
        }
        assert_eq!((t.served("ns", "a"), t.served("ns", "b")), (2, 2));
        assert_eq!(t.served("other", "a"), 0);
        assert_eq!(t.least_served("ns", &[]), None);
    }
}
