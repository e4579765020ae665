//! Load-balancer listeners: the addresses [`super::loadbalancer`] hands out answer.
//!
//! A disaster-recovery validation curls the standby's model endpoint (`curl
//! http://EXTERNAL-IP/health`) and probes the feature store's TCP port before it switches
//! DNS; a drill cuts the primary and checks that its endpoint stops answering. On the
//! embedded cluster there are no containers, so the cluster itself stands in for
//! kube-proxy and the Pods behind a Service: it listens on the Service's address and
//! answers according to the Service's **ready endpoints** (the `Endpoints` object
//! [`super::endpoints`] maintains).
//!
//! # What listens
//!
//! - **LoadBalancer Services** with an IPv4 address in `status.loadBalancer.ingress`:
//!   `ADDRESS:PORT` for each TCP port of `spec.ports` (UDP and SCTP ports are not listened
//!   on: the simulation has nothing to answer them with).
//! - **Ingresses**: the shared first address of the range, port [`INGRESS_PORT`] (80),
//!   routed like ingress-nginx: the rule whose `host` matches the request's `Host`
//!   (exactly, or a `*.` wildcard for one label; a rule without host matches every host),
//!   then the longest matching path (`Exact`, `Prefix` by path elements,
//!   `ImplementationSpecific` as a string prefix), else `spec.defaultBackend`; nothing
//!   matching is a 404.
//! - Hostname mode (`--load-balancer-hostname`) hands out no addresses, so nothing listens.
//!
//! # How a connection is answered
//!
//! Every listener speaks HTTP to a client that speaks HTTP and plain TCP to the others: the
//! first bytes are parsed as an HTTP/1 request head ([`httparse`]).
//!
//! - **HTTP** (any method and path: the seed's validation script curls `/health`): **200**
//!   while the Service has ready endpoints, **503** when it has none, with a small JSON body
//!   naming the Service, the ready count and (on 200) the Pod that "answered". One request
//!   per connection (`Connection: close`). Each 200 counts one request on the answering
//!   Pod ([`super::traffic`]; least-served ready Pod first), visible in its metrics.
//! - **Plain TCP** (the client sends something else, or nothing within half a second, as a
//!   Redis or database client waiting for the server might): with ready endpoints the
//!   connection is accepted and held open (input is read and discarded) until the client
//!   closes it; it counts as one request on a ready Pod.
//!
//! Hostile clients: a request head over 16 KiB gets 431, one that stalls mid-head is closed
//! after five seconds, and a listener holds at most [`MAX_CONNECTIONS`] connections (more
//! are reset).
//!
//! # No ready endpoints: refused
//!
//! A port whose name says HTTP (`http`, `http-*`) or whose `appProtocol` is plain-text
//! HTTP (`http`, `kubernetes.io/h2c`, `kubernetes.io/ws`; TLS is not spoken) keeps listening to answer 503. Any other port is **closed** while
//! the Service has no ready endpoints, so a client sees "connection refused" at once, as
//! with a real Service whose Pods are all gone (kube-proxy rejects). A non-HTTP client
//! reaching an HTTP port without ready endpoints (or a client that reached a port just
//! before it closed) is reset (`SO_LINGER` 0): "connection reset by peer".
//!
//! # Lifetime and failures
//!
//! Listeners follow the addresses: they open when an address is allocated, close when it
//! is released or withheld, when the Service or Ingress is deleted, while the cluster is
//! partitioned ([`crate::partition`]: every listener closes and open connections are
//! cut), and when the cluster stops (closing a listener aborts its connections).
//!
//! Binding can fail: ports below 1024 need root (or `CAP_NET_BIND_SERVICE`), an address
//! outside loopback must exist on a local interface, and another process — another
//! embedded cluster using the same range — may hold the address and port. The cluster never
//! crashes for it: a Warning Event `ListenFailed` on the Service (or Ingress) names
//! `ADDRESS:PORT` and the error, and the bind is retried every two seconds. Two embedded
//! clusters in one process or on one machine must therefore use distinct ranges
//! ([`crate::ClusterOptions::with_load_balancer_range`]).

use super::res;
use super::traffic::Traffic;
use super::util::{self, str_at};
use crate::api::{Api, WriteOptions};
use crate::partition::Partition;
use crate::store::ObjKey;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The port Ingresses answer on.
pub const INGRESS_PORT: u16 = 80;

/// Reported as the source of this module's Events (the load balancer's).
const COMPONENT: &str = "mooring-sim-load-balancer";

/// How long a client may stay silent before it is taken for a plain TCP client.
const SNIFF_TIMEOUT: Duration = Duration::from_millis(500);

/// How long an HTTP client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest HTTP request head read (a larger one gets 431).
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Connections one listener holds at once; more are reset (plain TCP connections stay
/// open until the client closes them, so a hostile client could otherwise pile them up).
pub const MAX_CONNECTIONS: usize = 1024;

/// How often a failed bind is retried.
const RETRY: Duration = Duration::from_secs(2);

/// What a listener answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A LoadBalancer Service's port; `http`: the port's name or appProtocol says HTTP.
    Service { key: ObjKey, http: bool },
    /// The shared Ingress address: routed by Host and path.
    Ingress,
}

/// One listener the cluster should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub addr: SocketAddr,
    pub target: Target,
    /// The object a `ListenFailed` Event goes to.
    pub owner: ObjKey,
}

/// Whether a Service port is meant for HTTP (by its name or appProtocol).
pub fn is_http_port(port: &Value) -> bool {
    let name = port.get("name").and_then(Value::as_str).unwrap_or_default();
    let proto = port
        .get("appProtocol")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let proto = proto.rsplit('/').next().unwrap_or_default();
    name == "http" || name.starts_with("http-") || matches!(proto, "http" | "h2c" | "ws")
}

fn status_ips(obj: &Value) -> Vec<Ipv4Addr> {
    obj.pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| i.get("ip").and_then(Value::as_str)?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The listeners `services` and `ingresses` ask for; `ready(namespace, service)` counts a
/// Service's ready endpoints (a non-HTTP port without any is not listened on).
pub fn wanted(
    services: &[Value],
    ingresses: &[Value],
    ready: &dyn Fn(&str, &str) -> usize,
) -> Vec<Wanted> {
    let mut out = Vec::new();
    for svc in services {
        if str_at(svc, "/spec/type") != Some("LoadBalancer") {
            continue;
        }
        let ns = str_at(svc, "/metadata/namespace").unwrap_or("default");
        let name = util::name_of(svc);
        let key = ObjKey::new(res::SERVICES, ns, name);
        let ips = status_ips(svc);
        if ips.is_empty() {
            continue;
        }
        let ports = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut has_ready = None;
        for p in &ports {
            if p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") != "TCP" {
                continue;
            }
            let Some(port) = p
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
            else {
                continue;
            };
            let http = is_http_port(p);
            if !http && !*has_ready.get_or_insert_with(|| ready(ns, name) > 0) {
                continue;
            }
            for ip in &ips {
                out.push(Wanted {
                    addr: SocketAddr::from((*ip, port)),
                    target: Target::Service {
                        key: key.clone(),
                        http,
                    },
                    owner: key.clone(),
                });
            }
        }
    }
    for ing in ingresses {
        let ns = str_at(ing, "/metadata/namespace").unwrap_or("default");
        let key = ObjKey::new(res::INGRESSES, ns, util::name_of(ing));
        for ip in status_ips(ing) {
            out.push(Wanted {
                addr: SocketAddr::from((ip, INGRESS_PORT)),
                target: Target::Ingress,
                owner: key.clone(),
            });
        }
    }
    out
}

/// The Service (namespace, name) an Ingress request for `host` and `path` goes to.
pub fn route_ingress(
    ingresses: &[Value],
    host: Option<&str>,
    path: &str,
) -> Option<(String, String)> {
    // `Host` may carry a port; names compare case-insensitively.
    let host = host.map(|h| {
        let h = h.trim();
        let h = match h.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => h,
        };
        h.to_ascii_lowercase()
    });
    let path = path.split(['?', '#']).next().unwrap_or("/");
    // (host-specific rule, matched path length) → backend; the best wins.
    let mut best: Option<((bool, usize), (String, String))> = None;
    let served: Vec<&Value> = ingresses
        .iter()
        .filter(|i| !status_ips(i).is_empty())
        .collect();
    for ing in &served {
        let ns = str_at(ing, "/metadata/namespace").unwrap_or("default");
        let rules = ing
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for rule in &rules {
            let rule_host = rule.get("host").and_then(Value::as_str);
            if let Some(rh) = rule_host {
                if !host.as_deref().is_some_and(|h| host_matches(rh, h)) {
                    continue;
                }
            }
            let paths = rule
                .pointer("/http/paths")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for p in &paths {
                let want = p.get("path").and_then(Value::as_str).unwrap_or("/");
                let kind = p
                    .get("pathType")
                    .and_then(Value::as_str)
                    .unwrap_or("ImplementationSpecific");
                if !path_matches(kind, want, path) {
                    continue;
                }
                let Some(svc) = str_at(p, "/backend/service/name") else {
                    continue;
                };
                let score = (rule_host.is_some(), want.len());
                if best.as_ref().is_none_or(|(s, _)| score > *s) {
                    best = Some((score, (ns.to_string(), svc.to_string())));
                }
            }
        }
    }
    best.map(|(_, b)| b).or_else(|| {
        served.iter().find_map(|ing| {
            let ns = str_at(ing, "/metadata/namespace").unwrap_or("default");
            str_at(ing, "/spec/defaultBackend/service/name")
                .map(|s| (ns.to_string(), s.to_string()))
        })
    })
}

fn host_matches(rule: &str, host: &str) -> bool {
    let rule = rule.to_ascii_lowercase();
    match rule.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
        None => rule == host,
    }
}

fn path_matches(kind: &str, want: &str, path: &str) -> bool {
    match kind {
        "Exact" => want == path,
        "Prefix" => {
            let want = want.trim_end_matches('/');
            if want.is_empty() {
                return true;
            }
            path == want || path.strip_prefix(want).is_some_and(|r| r.starts_with('/'))
        }
        _ => path.starts_with(want),
    }
}

/// Names of the ready Pods behind Service `namespace/name` (from its Endpoints; the
/// address IP when an address names no Pod).
pub fn ready_pods(api: &Api, namespace: &str, name: &str) -> Vec<String> {
    let Some(ep) = api
        .store
        .get(&ObjKey::new(res::ENDPOINTS, namespace, name))
        .and_then(|s| s.value().ok())
    else {
        return vec![];
    };
    ep.get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("addresses").and_then(Value::as_array))
        .flatten()
        .filter_map(|a| {
            str_at(a, "/targetRef/name")
                .or_else(|| str_at(a, "/ip"))
                .map(str::to_string)
        })
        .collect()
}

/// Aborts its task when dropped (a closed listener takes its connections with it).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Running {
    target: watch::Sender<Target>,
    _task: AbortOnDrop,
}

/// What every connection needs.
struct ConnCtx {
    api: Api,
    traffic: Traffic,
}

/// Run the listeners of a cluster until it stops.
pub fn start(api: Api, partition: Partition, traffic: Traffic) -> JoinHandle<()> {
    tokio::spawn(manage(api, partition, traffic))
}

fn relevant(resource: &str) -> bool {
    matches!(resource, res::SERVICES | res::INGRESSES | res::ENDPOINTS)
}

async fn manage(api: Api, partition: Partition, traffic: Traffic) {
    let Ok((_, mut events)) = api.store.watch_from(api.store.revision()) else {
        return;
    };
    let mut part = partition.subscribe();
    let conn = Arc::new(ConnCtx {
        api: api.clone(),
        traffic,
    });
    let mut m = Manager {
        running: HashMap::new(),
        closed_at: HashMap::new(),
        reported: HashMap::new(),
    };
    loop {
        let want = if partition.is_partitioned() {
            vec![]
        } else {
            let (svcs, _) = api.store.list(res::SERVICES, None);
            let (ings, _) = api.store.list(res::INGRESSES, None);
            let values = |l: Vec<Arc<crate::store::Stored>>| -> Vec<Value> {
                l.iter().filter_map(|s| s.value().ok()).collect()
            };
            wanted(&values(svcs), &values(ings), &|ns, n| {
                ready_pods(&api, ns, n).len()
            })
        };
        let retry_in = m.converge(&api, &conn, want);
        let retry = async {
            match retry_in {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(retry);
        loop {
            tokio::select! {
                r = events.recv() => match r {
                    Ok(ev) if relevant(&ev.object.key.resource) => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                c = part.changed() => {
                    if c.is_err() {
                        return;
                    }
                    break;
                }
                () = &mut retry => break,
            }
        }
        // Take the rest of a burst at once.
        while !matches!(
            events.try_recv(),
            Err(tokio::sync::broadcast::error::TryRecvError::Empty
                | tokio::sync::broadcast::error::TryRecvError::Closed)
        ) {}
    }
}

struct Manager {
    running: HashMap<SocketAddr, Running>,
    /// When this manager closed an address (its socket may linger a moment after the
    /// abort, so an immediate re-bind is retried quietly).
    closed_at: HashMap<SocketAddr, Instant>,
    /// The last `ListenFailed` message reported per owner and address (reported once).
    reported: HashMap<(ObjKey, SocketAddr), String>,
}

impl Manager {
    /// Open and close listeners to match `want`; `Some(d)`: a bind failed, try again after `d`.
    fn converge(&mut self, api: &Api, conn: &Arc<ConnCtx>, want: Vec<Wanted>) -> Option<Duration> {
        let mut by_addr: HashMap<SocketAddr, Wanted> = HashMap::new();
        for w in want {
            by_addr.entry(w.addr).or_insert(w);
        }
        let now = Instant::now();
        let closed_at = &mut self.closed_at;
        self.running.retain(|addr, _| {
            let keep = by_addr.contains_key(addr);
            if !keep {
                tracing::debug!(%addr, "load-balancer listener closed");
                closed_at.insert(*addr, now);
            }
            keep
        });
        self.closed_at
            .retain(|_, t| now.duration_since(*t) < Duration::from_secs(5));
        self.reported
            .retain(|(owner, addr), _| by_addr.get(addr).is_some_and(|w| &w.owner == owner));
        let mut retry = None;
        for (addr, w) in by_addr {
            if let Some(r) = self.running.get(&addr) {
                r.target.send_if_modified(|t| {
                    let changed = *t != w.target;
                    *t = w.target.clone();
                    changed
                });
                continue;
            }
            match bind(addr) {
                Ok(listener) => {
                    tracing::debug!(%addr, "load-balancer listener open");
                    let (tx, rx) = watch::channel(w.target.clone());
                    let task = tokio::spawn(listen(listener, rx, conn.clone()));
                    self.running.insert(
                        addr,
                        Running {
                            target: tx,
                            _task: AbortOnDrop(task),
                        },
                    );
                    self.reported.remove(&(w.owner, addr));
                }
                Err(e) => {
                    let ours = e.kind() == std::io::ErrorKind::AddrInUse
                        && self.closed_at.contains_key(&addr);
                    if ours {
                        retry = Some(Duration::from_millis(50));
                        continue;
                    }
                    retry = retry.or(Some(RETRY));
                    let message = format!(
                        "cannot listen on {addr} for this load balancer: {e} (ports below 1024 need root; is another cluster using this address range? give each embedded cluster its own --load-balancer-range)"
                    );
                    if self.reported.get(&(w.owner.clone(), addr)) != Some(&message) {
                        tracing::warn!("{}: {message}", w.owner);
                        report_listen_failed(api, &w.owner, &message);
                        self.reported.insert((w.owner, addr), message);
                    }
                }
            }
        }
        retry
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    // std sets SO_REUSEADDR on Unix, so connections lingering in TIME_WAIT do not block a
    // re-open; a live listener elsewhere still does (EADDRINUSE).
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    TcpListener::from_std(l)
}

fn report_listen_failed(api: &Api, owner: &ObjKey, message: &str) {
    let Some(obj) = api.store.get(owner).and_then(|s| s.value().ok()) else {
        return;
    };
    let Some(events) = api.registry.get("", "v1", "events") else {
        tracing::warn!("events are not registered: {message}");
        return;
    };
    let mut object = obj;
    object["metadata"]["name"] = json!(owner.name);
    object["metadata"]["namespace"] = json!(owner.namespace);
    let event = mooring_core::event::event(
        &object,
        mooring_core::event::EventType::Warning,
        "ListenFailed",
        message,
        COMPONENT,
        &mooring_core::time::now_rfc3339(),
    );
    let wo = WriteOptions {
        field_manager: Some(COMPONENT.into()),
        ..Default::default()
    };
    if let Err(e) = api.create(&events, Some(&owner.namespace), event, &wo) {
        tracing::warn!("ListenFailed event for {owner}: {e}");
    }
}

async fn listen(listener: TcpListener, target: watch::Receiver<Target>, ctx: Arc<ConnCtx>) {
    // Dropped with the task: a closed listener cuts its connections.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            a = listener.accept() => match a {
                Ok((stream, peer)) => {
                    if conns.len() >= MAX_CONNECTIONS {
                        tracing::debug!(%peer, "load-balancer listener full: reset");
                        reset(stream);
                        continue;
                    }
                    let t = target.borrow().clone();
                    conns.spawn(serve(stream, t, ctx.clone()));
                }
                Err(e) => {
                    tracing::debug!("load-balancer accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// What the first bytes of a connection were.
enum Opening {
    /// A complete HTTP request head: method, path, Host.
    Http {
        method: String,
        path: String,
        host: Option<String>,
    },
    /// An HTTP head larger than [`MAX_HEAD_BYTES`].
    HeadTooLarge,
    /// Not HTTP (or nothing yet).
    Tcp,
    /// The client went away or stalled mid-head.
    Gone,
}

async fn read_opening(stream: &mut TcpStream) -> Opening {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let started = Instant::now();
    loop {
        let limit = if buf.is_empty() {
            SNIFF_TIMEOUT
        } else {
            HEAD_TIMEOUT
        };
        let Some(left) = limit.checked_sub(started.elapsed()) else {
            return if buf.is_empty() {
                Opening::Tcp
            } else {
                Opening::Gone
            };
        };
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Err(_) if buf.is_empty() => return Opening::Tcp,
            Err(_) | Ok(Err(_)) | Ok(Ok(0)) => return Opening::Gone,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let host = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("host"))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned());
                return Opening::Http {
                    method: req.method.unwrap_or("GET").to_string(),
                    path: req.path.unwrap_or("/").to_string(),
                    host,
                };
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                return Opening::HeadTooLarge
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Opening::HeadTooLarge,
            Err(_) => return Opening::Tcp,
        }
    }
}

/// Reset the connection (`SO_LINGER` 0): the client sees "connection reset by peer".
fn reset(stream: TcpStream) {
    if let Err(e) = stream.set_zero_linger() {
        tracing::debug!("load-balancer reset: {e}");
    }
    drop(stream);
}

async fn serve(mut stream: TcpStream, target: Target, ctx: Arc<ConnCtx>) {
    match read_opening(&mut stream).await {
        Opening::Gone => {}
        Opening::HeadTooLarge => {
            let body =
                json!({"message": format!("request head larger than {MAX_HEAD_BYTES} bytes")});
            respond(&mut stream, 431, "GET", &body).await;
        }
        Opening::Http { method, path, host } => {
            let (code, body) = answer_http(&ctx, &target, host.as_deref(), &path);
            respond(&mut stream, code, &method, &body).await;
        }
        Opening::Tcp => {
            let Target::Service { key, .. } = &target else {
                // The Ingress address speaks HTTP only.
                return reset(stream);
            };
            let pods = ready_pods(&ctx.api, &key.namespace, &key.name);
            let Some(pod) = ctx.traffic.least_served(&key.namespace, &pods) else {
                return reset(stream);
            };
            ctx.traffic.record(&key.namespace, pod);
            // Held open until the client closes (or the listener closes).
            let mut sink = [0u8; 4096];
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
    }
}

/// Status code and body for an HTTP request to `target`.
fn answer_http(ctx: &ConnCtx, target: &Target, host: Option<&str>, path: &str) -> (u16, Value) {
    let (ns, name) = match target {
        Target::Service { key, .. } => (key.namespace.clone(), key.name.clone()),
        Target::Ingress => {
            let (ings, _) = ctx.api.store.list(res::INGRESSES, None);
            let ings: Vec<Value> = ings.iter().filter_map(|s| s.value().ok()).collect();
            match route_ingress(&ings, host, path) {
                Some(b) => b,
                None => {
                    return (
                        404,
                        json!({"message": format!("no Ingress rule matches host {:?} and path {path:?}", host.unwrap_or_default())}),
                    )
                }
            }
        }
    };
    let pods = ready_pods(&ctx.api, &ns, &name);
    let service = format!("{ns}/{name}");
    match ctx.traffic.least_served(&ns, &pods) {
        Some(pod) => {
            ctx.traffic.record(&ns, pod);
            (
                200,
                json!({"status": "ok", "service": service, "ready": pods.len(), "pod": pod}),
            )
        }
        None => (
            503,
            json!({"status": "unavailable", "service": service, "ready": 0,
                   "message": format!("service {service} has no ready endpoints")}),
        ),
    }
}

async fn respond(stream: &mut TcpStream, code: u16, method: &str, body: &Value) {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let body = format!("{body}\n");
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        out.push_str(&body);
    }
    if let Err(e) = stream.write_all(out.as_bytes()).await {
        tracing::debug!("load-balancer response: {e}");
        return;
    }
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, ports: Value, ip: Option<&str>) -> Value {
        let mut s = json!({"metadata": {"name": name, "namespace": "ml"},
            "spec": {"type": "LoadBalancer", "ports": ports}, "status": {"loadBalancer": {}}});
        if let Some(ip) = ip {
            s["status"]["loadBalancer"] = json!({"ingress": [{"ip": ip}]});
        }
        s
    }

    fn ing(name: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "ml"}, "spec": spec,
               "status": {"loadBalancer": {"ingress": [{"ip": "127.0.101.1"}]}}})
    }

    #[test]
    fn http_ports_always_listen_tcp_ports_only_while_ready() {
        let services = vec![
            svc(
                "web",
                json!([{"name": "http", "port": 80}, {"name": "grpc", "port": 9000},
                       {"name": "dns", "port": 53, "protocol": "UDP"},
                       {"name": "metrics", "port": 9090, "appProtocol": "kubernetes.io/h2c"}]),
                Some("127.0.101.2"),
            ),
            svc("pending", json!([{"port": 80, "name": "http"}]), None),
            json!({"metadata": {"name": "c", "namespace": "ml"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}),
        ];
        let ports = |ready: usize| -> Vec<u16> {
            let mut p: Vec<u16> = wanted(&services, &[], &|_, _| ready)
                .iter()
                .map(|w| w.addr.port())
                .collect();
            p.sort();
            p
        };
        assert_eq!(ports(1), vec![80, 9000, 9090]);
        assert_eq!(ports(0), vec![80, 9090]);
        let w = wanted(&[], &[ing("a", json!({}))], &|_, _| 0);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].addr, "127.0.101.1:80".parse().expect("addr"));
        assert_eq!(w[0].target, Target::Ingress);
        assert_eq!(w[0].owner, ObjKey::new(res::INGRESSES, "ml", "a"));
    }

    #[test]
    fn ingress_routing_by_host_and_longest_path() {
        let backend = |s: &str| json!({"service": {"name": s, "port": {"number": 80}}});
        let ings = vec![
            ing(
                "a",
                json!({"rules": [
                    {"host": "model.example.com", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": backend("model")},
                        {"path": "/v2", "pathType": "Prefix", "backend": backend("model-v2")},
                        {"path": "/exact", "pathType": "Exact", "backend": backend("exact")}]}},
                    {"host": "*.wild.test", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend("wild")}]}},
                ]}),
            ),
            ing(
                "b",
                json!({"defaultBackend": backend("fallback"),
                       "rules": [{"http": {"paths": [{"path": "/any", "pathType": "ImplementationSpecific", "backend": backend("any")}]}}]}),
            ),
        ];
        let r = |h: Option<&str>, p: &str| route_ingress(&ings, h, p).map(|(_, s)| s);
        assert_eq!(
            r(Some("model.example.com"), "/health"),
            Some("model".into())
        );
        assert_eq!(
            r(Some("MODEL.example.com:80"), "/v2/predict"),
            Some("model-v2".into())
        );
        assert_eq!(r(Some("model.example.com"), "/v2x"), Some("model".into()));
        assert_eq!(r(Some("model.example.com"), "/exact"), Some("exact".into()));
        assert_eq!(r(Some("x.wild.test"), "/"), Some("wild".into()));
        assert_eq!(r(Some("x.y.wild.test"), "/"), Some("fallback".into()));
        assert_eq!(r(None, "/anything"), Some("any".into()));
        assert_eq!(r(Some("other"), "/health?x=1"), Some("fallback".into()));
        assert_eq!(route_ingress(&[], Some("h"), "/"), None);
    }

    #[test]
    fn http_port_names() {
        for (p, want) in [
            (json!({"name": "http"}), true),
            (json!({"name": "http-api"}), true),
            (json!({"name": "web", "appProtocol": "HTTP"}), true),
            (json!({"name": "redis"}), false),
            (json!({"name": "https"}), false),
            (json!({"name": "web", "appProtocol": "https"}), false),
            (
                json!({"name": "web", "appProtocol": "kubernetes.io/h2c"}),
                true,
            ),
            (json!({}), false),
        ] {
            assert_eq!(is_http_port(&p), want, "{p}");
        }
    }
}
