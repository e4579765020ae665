//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`: container logs, as `kubectl logs` reads
//! them.
//!
//! The checks and the error messages are the real API server's and kubelet's (a missing
//! container name when the Pod has several, `previous` with no terminated container, a
//! container still waiting to start, `PodLogOptions` validation as a 422), because
//! scripts and people match on them. The lines come from the simulated kubelet
//! ([`crate::sim::logs`]): the instance the Pod's status names (the running container, or
//! the last terminated one while it waits in `CrashLoopBackOff`; with `previous`, the one
//! `lastState.terminated` describes).
//!
//! `follow=true` streams (chunked) until the container instance ends, the Pod goes or the
//! client disconnects. A follower polls the log store on its own clock and owns no buffer
//! beyond the chunk it is writing: a slow client slows only itself, and lines it was too
//! slow for leave the window (they are dropped, not queued). Query parameters the
//! simulation has no use for are answered with a `Warning` header naming them.

use crate::api::Api;
use crate::error::ApiError;
use crate::sim::logs::{rfc3339_nano, Cursor, InstanceRef, Nanos, PodLogs, Poll};
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// How often a follower looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(50);
/// How long a follower waits for a just-started container's first lines.
const FOLLOW_GRACE: Duration = Duration::from_secs(2);

/// Query parameters of `pods/log` the server understands.
const KNOWN: &[&str] = &[
    "container",
    "follow",
    "previous",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "tailLines",
    "limitBytes",
    "insecureSkipTLSVerifyBackend",
    "pretty",
];

/// Parsed `PodLogOptions`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LogOptions {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub since_seconds: Option<i64>,
    pub since_time: Option<String>,
    pub timestamps: bool,
    pub tail_lines: Option<i64>,
    pub limit_bytes: Option<i64>,
}

/// Go's `strconv.ParseBool`, as the query parameter codec reads booleans.
fn parse_bool(k: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ApiError::BadRequest(format!(
            "{k}: strconv.ParseBool: parsing {v:?}: invalid syntax"
        ))),
    }
}

fn parse_int(k: &str, v: &str) -> Result<i64, ApiError> {
    v.parse::<i64>().map_err(|e| {
        let why = if matches!(
            e.kind(),
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
        ) {
            "value out of range"
        } else {
            "invalid syntax"
        };
        ApiError::BadRequest(format!("{k}: strconv.ParseInt: parsing {v:?}: {why}"))
    })
}

/// Parse and validate the query (`ValidatePodLogOptions`); unknown parameters are
/// returned for the Warning header.
pub fn parse_options(
    pod: &str,
    q: &HashMap<String, String>,
) -> Result<(LogOptions, Vec<String>), ApiError> {
    let mut o = LogOptions::default();
    let mut unknown = Vec::new();
    for (k, v) in q {
        match k.as_str() {
            "container" => o.container = Some(v.clone()).filter(|c| !c.is_empty()),
            "follow" => o.follow = parse_bool(k, v)?,
            "previous" => o.previous = parse_bool(k, v)?,
            "timestamps" => o.timestamps = parse_bool(k, v)?,
            "sinceSeconds" => o.since_seconds = Some(parse_int(k, v)?),
            "tailLines" => o.tail_lines = Some(parse_int(k, v)?),
            "limitBytes" => o.limit_bytes = Some(parse_int(k, v)?),
            "sinceTime" => {
                mooring_core::time::parse(v).map_err(|_| {
                    ApiError::BadRequest(format!(
                        "sinceTime: parsing time {v:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse"
                    ))
                })?;
                o.since_time = Some(v.clone());
            }
            other if KNOWN.contains(&other) => {}
            other => unknown.push(other.to_string()),
        }
    }
    unknown.sort();
    let mut causes = Vec::new();
    if let Some(t) = o.tail_lines.filter(|t| *t < 0) {
        causes.push(format!(
            "tailLines: Invalid value: {t}: must be greater than or equal to 0"
        ));
    }
    if let Some(b) = o.limit_bytes.filter(|b| *b < 1) {
        causes.push(format!(
            "limitBytes: Invalid value: {b}: must be greater than 0"
        ));
    }
    match (o.since_seconds, &o.since_time) {
        (Some(_), Some(_)) => causes.push(
            ": Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
        ),
        (Some(s), None) if s < 1 => causes.push(format!(
            "sinceSeconds: Invalid value: {s}: must be greater than 0"
        )),
        _ => {}
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(("PodLogOptions", ""), pod, causes));
    }
    Ok((o, unknown))
}

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

/// The container to read: the one named, or the only one.
fn pick_container(pod_name: &str, pod: &Value, wanted: Option<&str>) -> Result<String, ApiError> {
    let names = |ptr: &str| -> Vec<String> {
        pod.pointer(ptr)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("/spec/containers");
    let init = names("/spec/initContainers");
    match wanted {
        Some(c) if containers.iter().chain(&init).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(bad(format!(
            "container {c} is not valid for pod {pod_name}"
        ))),
        None => match containers.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(bad(format!(
                "a container name must be specified for pod {pod_name}"
            ))),
            many => {
                let mut msg = format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    many.join(" ")
                );
                if !init.is_empty() {
                    msg.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                Err(bad(msg))
            }
        },
    }
}

/// Which instance of the container to read, from the Pod's status (the kubelet's
/// `validateContainerLogStatus`).
pub fn pick_instance(
    pod_name: &str,
    pod: &Value,
    container: &str,
    previous: bool,
) -> Result<i64, ApiError> {
    let cs = ["/status/containerStatuses", "/status/initContainerStatuses"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(container))
        .ok_or_else(|| {
            bad(format!(
                "container {container:?} in pod {pod_name:?} is waiting to start: ContainerCreating"
            ))
        })?;
    let restarts = cs.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
    let last_terminated = cs.pointer("/lastState/terminated").is_some();
    let state = cs.get("state");
    if previous {
        if !last_terminated || restarts < 1 {
            return Err(bad(format!(
                "previous terminated container {container:?} in pod {pod_name:?} not found"
            )));
        }
        return Ok(restarts - 1);
    }
    if state.and_then(|s| s.get("running")).is_some()
        || state.and_then(|s| s.get("terminated")).is_some()
    {
        return Ok(restarts);
    }
    if last_terminated && restarts > 0 {
        return Ok(restarts - 1);
    }
    let reason = state
        .and_then(|s| s.pointer("/waiting/reason"))
        .and_then(Value::as_str)
        .unwrap_or("ContainerCreating");
    let why = match reason {
        "ErrImagePull" => "image can't be pulled",
        "ImagePullBackOff" => "trying and failing to pull image",
        other => other,
    };
    Err(bad(format!(
        "container {container:?} in pod {pod_name:?} is waiting to start: {why}"
    )))
}

/// Render lines (with `timestamps`), spending at most `budget` bytes; `None` budget is
/// unlimited. Returns the bytes and whether the budget ran out.
fn render(
    lines: &[(Nanos, String)],
    timestamps: bool,
    budget: &mut Option<u64>,
) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    for (ts, l) in lines {
        if timestamps {
            out.extend_from_slice(rfc3339_nano(*ts).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
        if let Some(b) = budget {
            if out.len() as u64 >= *b {
                out.truncate(usize::try_from(*b).unwrap_or(usize::MAX));
                *b = 0;
                return (out, true);
            }
        }
    }
    if let Some(b) = budget {
        *b -= out.len() as u64;
    }
    (out, false)
}

/// What identifies the followed container instance.
struct Target {
    logs: PodLogs,
    namespace: String,
    pod: String,
    uid: String,
    container: String,
    restart: i64,
}

impl Target {
    fn at(&self) -> InstanceRef<'_> {
        InstanceRef {
            namespace: &self.namespace,
            pod: &self.pod,
            uid: &self.uid,
            container: &self.container,
            restart: self.restart,
        }
    }
}

/// Serve `GET …/pods/{name}/log`.
pub async fn serve(
    api: &Api,
    logs: &PodLogs,
    q: &HashMap<String, String>,
    namespace: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let (opts, unknown) = parse_options(name, q)?;
    let pods = api
        .registry
        .get("", "v1", "pods")
        .ok_or_else(|| ApiError::Internal("pods are not registered".into()))?;
    let pod = api.get(&pods, Some(namespace), name)?;
    let container = pick_container(name, &pod, opts.container.as_deref())?;
    let mut resp_headers = vec![(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))];
    if !unknown.is_empty() {
        let w = format!(
            "299 - \"unknown query parameters ignored by pods/log: {}\"",
            unknown.join(", ")
        );
        if let Ok(v) = HeaderValue::from_str(&w) {
            resp_headers.push((header::WARNING, v));
        }
    }
    let respond = |body: Body, headers: Vec<(header::HeaderName, HeaderValue)>| {
        let mut r = (StatusCode::OK, body).into_response();
        for (k, v) in headers {
            r.headers_mut().append(k, v);
        }
        r
    };
    // Not scheduled yet: no kubelet to ask, an empty answer (as Kubernetes gives).
    if pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Ok(respond(Body::empty(), resp_headers));
    }
    let restart = pick_instance(name, &pod, &container, opts.previous)?;
    let since = match (&opts.since_time, opts.since_seconds) {
        (Some(t), _) => mooring_core::time::parse(t)
            .ok()
            .map(|t| i64::try_from(t.as_nanosecond()).unwrap_or(i64::MIN)),
        (None, Some(s)) => {
            Some(crate::sim::logs::now_nanos().saturating_sub(s.saturating_mul(1_000_000_000)))
        }
        _ => None,
    };
    let tail = opts.tail_lines.map(|t| u64::try_from(t).unwrap_or(0));
    let target = Target {
        logs: logs.clone(),
        namespace: namespace.to_string(),
        pod: name.to_string(),
        uid: pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        container,
        restart,
    };
    let mut budget = opts.limit_bytes.map(|b| u64::try_from(b).unwrap_or(0));
    let (first, cursor, grace) = match target.logs.read(&target.at(), since, tail) {
        Some((lines, cursor)) => {
            let (first, exhausted) = render(&lines, opts.timestamps, &mut budget);
            if !opts.follow || exhausted {
                return Ok(respond(Body::from(first), resp_headers));
            }
            (first, cursor, None)
        }
        None if !opts.follow => return Ok(respond(Body::empty(), resp_headers)),
        // The status says the container started, but the kubelet has not written its
        // first lines yet (a moment's race): wait for them a little.
        None => (
            Vec::new(),
            Cursor::default(),
            Some(tokio::time::Instant::now() + FOLLOW_GRACE),
        ),
    };
    let state = Follow {
        target,
        cursor,
        budget,
        timestamps: opts.timestamps,
        pending: Some(first),
        done: false,
        grace,
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        let chunk = s.next().await?;
        Some((Ok::<Bytes, std::io::Error>(Bytes::from(chunk)), s))
    });
    Ok(respond(Body::from_stream(stream), resp_headers))
}

/// A follower's state.
struct Follow {
    target: Target,
    cursor: Cursor,
    budget: Option<u64>,
    timestamps: bool,
    pending: Option<Vec<u8>>,
    done: bool,
    /// Until when a container instance without logs yet is waited for.
    grace: Option<tokio::time::Instant>,
}

impl Follow {
    /// The next non-empty chunk; `None` at the end of the stream.
    async fn next(&mut self) -> Option<Vec<u8>> {
        if let Some(p) = self.pending.take().filter(|p| !p.is_empty()) {
            return Some(p);
        }
        loop {
            if self.done {
                return None;
            }
            match self.target.logs.poll(&self.target.at(), self.cursor) {
                Poll::Gone if self.grace.is_some_and(|g| tokio::time::Instant::now() < g) => {}
                Poll::Ended | Poll::Gone => return None,
                Poll::Lines(lines, next) => {
                    self.grace = None;
                    self.cursor = next;
                    if !lines.is_empty() {
                        let (out, exhausted) = render(&lines, self.timestamps, &mut self.budget);
                        self.done = exhausted;
                        return Some(out);
                    }
                }
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_are_validated_like_kubernetes() {
        let (o, unknown) = parse_options(
            "p",
            &q(&[("tailLines", "5"), ("follow", "true"), ("x", "1")]),
        )
        .expect("valid");
        assert_eq!(o.tail_lines, Some(5));
        assert!(o.follow);
        assert_eq!(unknown, vec!["x".to_string()]);
        let e = parse_options("p", &q(&[("tailLines", "-1")])).expect_err("negative");
        assert_eq!(e.code(), 422);
        assert_eq!(
            e.to_string(),
            "PodLogOptions \"p\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        let e = parse_options(
            "p",
            &q(&[("sinceSeconds", "5"), ("sinceTime", "2026-01-01T00:00:00Z")]),
        )
        .expect_err("both");
        assert!(e
            .to_string()
            .contains("at most one of `sinceTime` or `sinceSeconds`"));
        assert_eq!(
            parse_options("p", &q(&[("limitBytes", "0")]))
                .map(|_| ())
                .expect_err("zero")
                .code(),
            422
        );
        assert_eq!(
            parse_options("p", &q(&[("sinceSeconds", "0")]))
                .map(|_| ())
                .expect_err("zero")
                .code(),
            422
        );
        let e =
            parse_options("p", &q(&[("tailLines", "99999999999999999999")])).expect_err("overflow");
        assert_eq!(e.code(), 400);
        assert_eq!(
            parse_options("p", &q(&[("follow", "yes")]))
                .map(|_| ())
                .expect_err("bool")
                .code(),
            400
        );
        assert_eq!(
            parse_options("p", &q(&[("sinceTime", "yesterday")]))
                .map(|_| ())
                .expect_err("time")
                .code(),
            400
        );
        // Absurd but valid.
        assert!(parse_options("p", &q(&[("tailLines", "1000000000000")])).is_ok());
    }

    #[test]
    fn containers_and_instances_are_chosen_like_the_kubelet() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            pick_container("p", &pod, None)
                .expect_err("two")
                .to_string(),
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(pick_container("p", &pod, Some("b")).expect("b"), "b");
        assert_eq!(
            pick_container("p", &pod, Some("z"))
                .expect_err("z")
                .to_string(),
            "container z is not valid for pod p"
        );
        let st = |cs: Value| json!({"status": {"containerStatuses": [cs]}});
        let creating = st(
            json!({"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}, "restartCount": 0}),
        );
        assert_eq!(
            pick_instance("p", &creating, "a", false)
                .expect_err("waiting")
                .to_string(),
            "container \"a\" in pod \"p\" is waiting to start: ContainerCreating"
        );
        let running = st(json!({"name": "a", "state": {"running": {}}, "restartCount": 0}));
        assert_eq!(
            pick_instance("p", &running, "a", false).expect("running"),
            0
        );
        assert_eq!(
            pick_instance("p", &running, "a", true)
                .expect_err("no previous")
                .to_string(),
            "previous terminated container \"a\" in pod \"p\" not found"
        );
        let crash = st(
            json!({"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1}}, "restartCount": 3}),
        );
        assert_eq!(pick_instance("p", &crash, "a", false).expect("last run"), 2);
        assert_eq!(pick_instance("p", &crash, "a", true).expect("previous"), 2);
        let pull = st(
            json!({"name": "a", "state": {"waiting": {"reason": "ImagePullBackOff"}}, "restartCount": 0}),
        );
        assert!(pick_instance("p", &pull, "a", false)
            .expect_err("pull")
            .to_string()
            .ends_with("trying and failing to pull image"));
    }

    #[test]
    fn limit_bytes_cuts_the_output() {
        let lines = vec![(0, "hello".to_string()), (1, "world".to_string())];
        let mut budget = Some(8);
        let (out, exhausted) = render(&lines, false, &mut budget);
        assert_eq!(out, b"hello\nwo");
        assert!(exhausted);
        let mut none = None;
        let (out, _) = render(&lines, true, &mut none);
        assert!(String::from_utf8_lossy(&out).starts_with("1970-01-01T00:00:00Z hello\n"));
    }
}
