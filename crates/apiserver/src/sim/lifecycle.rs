//! What happened to a Pod's containers between two statuses the kubelet wrote.
//!
//! The simulated kubelet computes a Pod's status as a pure function of time
//! ([`super::pods::simulate`]) and may wake up late, so it never sees "a container
//! started" as such: it sees two statuses. [`changes`] turns their difference into the
//! container lifecycle steps a real kubelet performs one by one (started instance *k*,
//! instance *k* exited with code *c*, back-off, image pull failure), from which the
//! kubelet records its Events and writes container logs ([`super::logs`]). Skipped steps
//! (several restarts between two looks) come out in order, the oldest ones dropped
//! beyond the two instances anyone can still see (`current` and `previous`).

use serde_json::Value;

/// One lifecycle step of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Instance `restart` (0 for the first run) was created and started.
    Started { container: String, restart: i64 },
    /// Instance `restart` exited with `code`.
    Exited {
        container: String,
        restart: i64,
        code: i64,
    },
    /// The container waits in `CrashLoopBackOff`.
    BackOff { container: String },
    /// The image cannot be pulled (`ErrImagePull`, then `ImagePullBackOff`).
    PullFailed { container: String, image: String },
}

/// (highest instance started, highest instance exited, exit code) of a container status;
/// -1 for none.
fn progress(cs: Option<&Value>) -> (i64, i64, i64) {
    let Some(cs) = cs else {
        return (-1, -1, 0);
    };
    let restarts = cs.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
    let state = cs.get("state");
    if state.and_then(|s| s.get("running")).is_some() {
        return (restarts, restarts - 1, 1);
    }
    if let Some(t) = state.and_then(|s| s.get("terminated")) {
        let code = t.get("exitCode").and_then(Value::as_i64).unwrap_or(0);
        return (restarts, restarts, code);
    }
    let waiting = state
        .and_then(|s| s.pointer("/waiting/reason"))
        .and_then(Value::as_str);
    if waiting == Some("CrashLoopBackOff") {
        return (restarts - 1, restarts - 1, 1);
    }
    (-1, -1, 0)
}

fn waiting_reason(cs: Option<&Value>) -> Option<&str> {
    cs?.pointer("/state/waiting/reason").and_then(Value::as_str)
}

fn statuses(status: &Value) -> Vec<Value> {
    status
        .get("containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The lifecycle steps from `old` to `new` (Pod `status` objects), per container in
/// `new`'s order.
pub fn changes(old: &Value, new: &Value) -> Vec<Change> {
    let old_cs = statuses(old);
    let mut out = Vec::new();
    for cs in statuses(new) {
        let name = cs
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let before = old_cs
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name.as_str()));
        let (os, oe, _) = progress(before);
        let (ns, ne, code) = progress(Some(&cs));
        // Only the last two instances are visible to anyone: skip older ones.
        let from = (os.min(oe) + 1).max(ns.max(ne) - 1).max(0);
        for i in from..=ns.max(ne) {
            if i > os && i <= ns {
                out.push(Change::Started {
                    container: name.clone(),
                    restart: i,
                });
            }
            if i > oe && i <= ne {
                out.push(Change::Exited {
                    container: name.clone(),
                    restart: i,
                    // Only the newest exit's code is known; earlier ones crashed.
                    code: if i == ne { code } else { 1 },
                });
            }
        }
        let now = waiting_reason(Some(&cs));
        if now == Some("CrashLoopBackOff") && (waiting_reason(before) != now || ne > oe) {
            out.push(Change::BackOff {
                container: name.clone(),
            });
        }
        if matches!(now, Some("ImagePullBackOff" | "ErrImagePull")) && waiting_reason(before) != now
        {
            out.push(Change::PullFailed {
                container: name.clone(),
                image: cs
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn st(state: Value, restarts: i64) -> Value {
        json!({"containerStatuses": [{"name": "c", "image": "img", "state": state, "restartCount": restarts}]})
    }

    fn started(r: i64) -> Change {
        Change::Started {
            container: "c".into(),
            restart: r,
        }
    }

    fn exited(r: i64, code: i64) -> Change {
        Change::Exited {
            container: "c".into(),
            restart: r,
            code,
        }
    }

    #[test]
    fn a_container_starts_once() {
        let creating = st(json!({"waiting": {"reason": "ContainerCreating"}}), 0);
        let running = st(json!({"running": {}}), 0);
        assert_eq!(changes(&json!({}), &creating), vec![]);
        assert_eq!(changes(&creating, &running), vec![started(0)]);
        assert_eq!(changes(&running, &running), vec![]);
    }

    #[test]
    fn crash_loops_exit_back_off_and_restart() {
        let running0 = st(json!({"running": {}}), 0);
        let wait1 = st(json!({"waiting": {"reason": "CrashLoopBackOff"}}), 1);
        let running1 = st(json!({"running": {}}), 1);
        let back_off = Change::BackOff {
            container: "c".into(),
        };
        assert_eq!(
            changes(&running0, &wait1),
            vec![exited(0, 1), back_off.clone()]
        );
        assert_eq!(changes(&wait1, &running1), vec![started(1)]);
        // Woken up late: several restarts at once, only the visible ones reported.
        let wait5 = st(json!({"waiting": {"reason": "CrashLoopBackOff"}}), 5);
        // (Instance 1's exit is lost; the log store ends it when instance 3 starts.)
        assert_eq!(
            changes(&running1, &wait5),
            vec![started(3), exited(3, 1), started(4), exited(4, 1), back_off]
        );
    }

    #[test]
    fn jobs_terminate_and_pulls_fail() {
        let running = st(json!({"running": {}}), 0);
        let done = st(json!({"terminated": {"exitCode": 0}}), 0);
        assert_eq!(changes(&running, &done), vec![exited(0, 0)]);
        // Never seen running: started and exited.
        assert_eq!(changes(&json!({}), &done), vec![started(0), exited(0, 0)]);
        let pull = st(json!({"waiting": {"reason": "ImagePullBackOff"}}), 0);
        assert_eq!(
            changes(&json!({}), &pull),
            vec![Change::PullFailed {
                container: "c".into(),
                image: "img".into()
            }]
        );
        assert_eq!(changes(&pull, &pull), vec![]);
    }
}
