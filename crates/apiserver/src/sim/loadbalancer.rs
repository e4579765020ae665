//! The load-balancer controller: LoadBalancer Services and Ingresses get an address, as
//! MetalLB or cloud-provider-kind (with ingress-nginx) give them on a laptop.
//!
//! Argo CD calls a `type: LoadBalancer` Service and an Ingress Healthy only once
//! `status.loadBalancer.ingress` is non-empty. Without this controller every app with an
//! Ingress would stay Progressing forever on the embedded cluster, so demos and tests
//! could never show a Healthy web app. The addresses look and behave like real ones, and
//! they answer: [`super::listeners`] listens on them and answers by the Service's ready
//! endpoints (HTTP 200/503, TCP accepted/refused).
//!
//! # Where addresses come from
//!
//! [`LoadBalancerAddresses`] (`SimOptions::load_balancer`; `mooring cluster start` and
//! `mooring up` take `--load-balancer-range` / `--load-balancer-hostname`):
//!
//! - **a range of IPv4 addresses** (the default is [`DEFAULT_RANGE`], `127.0.100.0/24`:
//!   loopback, so nothing on the LAN is shadowed, and distinct from `127.0.0.1` where the
//!   API server listens). A CIDR means its host addresses (`127.0.100.1`–`127.0.100.254`
//!   for the default: the network and broadcast addresses are skipped up to /30, all of a
//!   /31 or /32 are used); `FIRST-LAST` is taken as written. Any IPv4 range is accepted —
//!   `172.18.255.200-172.18.255.250`, as kind's MetalLB guide uses, works too. IPv6 is not
//!   supported.
//! - **a hostname** (`--load-balancer-hostname localhost`): every LoadBalancer Service and
//!   Ingress gets `status.loadBalancer.ingress[0].hostname` = that name, as AWS-style load
//!   balancers report one. Nothing is allocated in this mode.
//!
//! # Services
//!
//! Like MetalLB: each `type: LoadBalancer` Service gets the **lowest free address** of the
//! range (`ingress[0].ip`, with `ipMode: VIP`) and a Normal `IPAllocated` Event. Addresses
//! are unique among live Services, kept for the Service's lifetime (the status is stored,
//! so they survive a restart of the cluster: at start the controller re-reads every
//! Service's status and keeps what is still valid; when two claim the same address the
//! older Service keeps it), and released when the Service is deleted, changes to another
//! type (its `status.loadBalancer` is cleared, as Kubernetes' service controller does) or
//! opts out. `spec.loadBalancerIP` is honoured when it lies in the range and is free.
//!
//! When no address can be given — the range is exhausted, or the requested
//! `spec.loadBalancerIP` is outside the range or taken — the Service stays `<pending>`
//! (Progressing) with a Warning `AllocationFailed` Event saying why, as MetalLB does.
//! Pending Services are retried, oldest first, as soon as an address is released. A change
//! of the range between restarts moves Services whose address is no longer in it.
//!
//! The range may be huge (a /8, even /0): the controller keeps only the addresses in use
//! (memory and time proportional to the number of LoadBalancer Services, never to the
//! size of the range).
//!
//! # Ingresses: one shared address
//!
//! On kind, ingress-nginx runs behind one LoadBalancer Service and publishes *that*
//! Service's address on every Ingress it serves, so all Ingresses share one address. The
//! embedded cluster does the same: the **first address of the range** belongs to the
//! simulated ingress controller, is never given to a Service, and is the address of every
//! Ingress (whatever its `ingressClassName`: the simulation stands in for every ingress
//! controller, as it stands in for every load-balancer implementation — a Service's
//! `spec.loadBalancerClass` is not consulted either). In hostname mode Ingresses get the
//! hostname.
//!
//! # Opting out
//!
//! The annotation `sim.mooring.dev/load-balancer: pending` on a Service or Ingress keeps it
//! without an address (so Argo CD health stays Progressing — useful to test exactly that);
//! an address it had is released and its status cleared, and a Normal `AddressWithheld`
//! Event says why. Any other value of the annotation is a Warning `InvalidAnnotation` Event
//! naming it, and the object stays without an address too.
//!
//! # Writes
//!
//! Only `status.loadBalancer` is written, through the status subresource (the path every
//! simulation controller uses), so spec writers — `kubectl apply`, server-side apply from
//! Mooring's controller — and this controller never overwrite each other. Events are
//! reported once per state change (not on every reconcile).

use super::util::{self, str_at};
use super::{res, Controller, Ctx};
use crate::error::ApiError;
use crate::store::{Event, ObjKey};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

/// The annotation that keeps a Service or Ingress without an address (value `pending`).
pub const LOAD_BALANCER_ANNOTATION: &str = "sim.mooring.dev/load-balancer";

/// The one value of [`LOAD_BALANCER_ANNOTATION`].
pub const WITHHOLD: &str = "pending";

/// The default address range: loopback addresses `127.0.100.1`–`127.0.100.254`.
pub const DEFAULT_RANGE: &str = "127.0.100.0/24";

/// Reported as the source of this controller's Events.
const COMPONENT: &str = "mooring-sim-load-balancer";

/// A bad `--load-balancer-range` or `--load-balancer-hostname`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadBalancerConfigError {
    #[error("load-balancer range {input:?}: expected a CIDR such as 127.0.100.0/24 or FIRST-LAST such as 127.0.100.10-127.0.100.50")]
    Syntax { input: String },
    #[error("load-balancer range {input:?}: {part:?} is not an IPv4 address")]
    Address { input: String, part: String },
    #[error("load-balancer range {input:?}: {reason}")]
    Cidr { input: String, reason: String },
    #[error("load-balancer range {input:?}: IPv6 ranges are not supported; use an IPv4 range such as 127.0.100.0/24")]
    Ipv6 { input: String },
    #[error("load-balancer range {input:?} has host bits set: the network is {network}")]
    HostBits { input: String, network: String },
    #[error("load-balancer range {input:?}: the first address is after the last")]
    Reversed { input: String },
    #[error("load-balancer hostname {input:?} is not a DNS-1123 subdomain: {reason}")]
    Hostname { input: String, reason: String },
}

/// An inclusive range of IPv4 addresses, parsed from a CIDR or `FIRST-LAST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRange {
    first: u32,
    last: u32,
    /// As the user wrote it (for messages).
    spec: String,
}

impl AddressRange {
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first)
    }

    pub fn last(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.last)
    }

    /// How many addresses the range holds (up to 2^32, hence `u64`).
    pub fn len(&self) -> u64 {
        u64::from(self.last) - u64::from(self.first) + 1
    }

    /// Never true (a range holds at least one address); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&u32::from(ip))
    }

    /// The `k`th range of the same shape after this one (`k = 0`: this one), for giving
    /// each embedded cluster of a fleet on one host its own addresses (they are listened
    /// on, see [`super::listeners`]): `127.0.100.0/24` shifted by 1 is
    /// `127.0.101.1-127.0.101.254`. `None` past the end of the address space.
    pub fn shifted(&self, k: u32) -> Option<AddressRange> {
        // By whole blocks (a CIDR's network size), so shifted CIDRs stay aligned.
        let by = self.len().next_power_of_two().checked_mul(u64::from(k))?;
        let by = u32::try_from(by).ok()?;
        let first = self.first.checked_add(by)?;
        let last = self.last.checked_add(by)?;
        if k == 0 {
            return Some(self.clone());
        }
        Some(AddressRange {
            first,
            last,
            spec: format!("{}-{}", Ipv4Addr::from(first), Ipv4Addr::from(last)),
        })
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

impl FromStr for AddressRange {
    type Err = LoadBalancerConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let input = s.trim();
        let err_input = || input.to_string();
        if input.contains(':') {
            return Err(LoadBalancerConfigError::Ipv6 { input: err_input() });
        }
        let addr = |part: &str| {
            part.trim()
                .parse::<Ipv4Addr>()
                .map_err(|_| LoadBalancerConfigError::Address {
                    input: err_input(),
                    part: part.trim().to_string(),
                })
        };
        let (first, last) = if let Some((ip, _)) = input.split_once('/') {
            addr(ip)?;
            let net: ipnet::Ipv4Net = input.parse().map_err(|e: ipnet::AddrParseError| {
                LoadBalancerConfigError::Cidr {
                    input: err_input(),
                    reason: format!("{e} (the prefix length is 0 to 32)"),
                }
            })?;
            if net.addr() != net.network() {
                return Err(LoadBalancerConfigError::HostBits {
                    input: err_input(),
                    network: net.trunc().to_string(),
                });
            }
            let (net_first, net_last) = (u32::from(net.network()), u32::from(net.broadcast()));
            if net.prefix_len() <= 30 {
                (net_first + 1, net_last - 1)
            } else {
                (net_first, net_last)
            }
        } else if let Some((a, b)) = input.split_once('-') {
            (u32::from(addr(a)?), u32::from(addr(b)?))
        } else {
            return Err(LoadBalancerConfigError::Syntax { input: err_input() });
        };
        if first > last {
            return Err(LoadBalancerConfigError::Reversed { input: err_input() });
        }
        Ok(AddressRange {
            first,
            last,
            spec: input.to_string(),
        })
    }
}

/// What the embedded cluster hands out as load-balancer addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadBalancerAddresses {
    /// IPv4 addresses from a range; the first is the shared Ingress address.
    Range(AddressRange),
    /// One hostname for every LoadBalancer Service and Ingress.
    Hostname(String),
}

impl LoadBalancerAddresses {
    /// Hostname mode, checking the name as Kubernetes validates
    /// `status.loadBalancer.ingress[].hostname` (a DNS-1123 subdomain).
    pub fn hostname(name: &str) -> Result<Self, LoadBalancerConfigError> {
        let errs = crate::validation::is_dns1123_subdomain(name);
        if !errs.is_empty() || name.parse::<std::net::IpAddr>().is_ok() {
            let reason = if errs.is_empty() {
                "an IP address is not a hostname (use --load-balancer-range)".to_string()
            } else {
                errs.join("; ")
            };
            return Err(LoadBalancerConfigError::Hostname {
                input: name.to_string(),
                reason,
            });
        }
        Ok(LoadBalancerAddresses::Hostname(name.to_string()))
    }
}

impl Default for LoadBalancerAddresses {
    fn default() -> Self {
        LoadBalancerAddresses::Range(DEFAULT_RANGE.parse().expect("the default range parses"))
    }
}

/// Why an address could not be claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimError {
    OutOfRange,
    /// The first address: every Ingress's.
    Reserved,
    InUse(ObjKey),
}

/// The addresses in use, for one range. Pure bookkeeping (no I/O), so it is tested with
/// plain unit tests; memory is proportional to the addresses in use, not to the range.
#[derive(Debug, Clone)]
pub struct Allocator {
    range: AddressRange,
    by_addr: BTreeMap<u32, ObjKey>,
    by_key: HashMap<ObjKey, u32>,
}

impl Allocator {
    pub fn new(range: AddressRange) -> Self {
        Allocator {
            range,
            by_addr: BTreeMap::new(),
            by_key: HashMap::new(),
        }
    }

    pub fn range(&self) -> &AddressRange {
        &self.range
    }

    /// The address every Ingress shares (never given to a Service).
    pub fn ingress_address(&self) -> Ipv4Addr {
        self.range.first()
    }

    /// How many addresses Services can get.
    pub fn capacity(&self) -> u64 {
        self.range.len() - 1
    }

    pub fn held(&self, key: &ObjKey) -> Option<Ipv4Addr> {
        self.by_key.get(key).map(|a| Ipv4Addr::from(*a))
    }

    pub fn in_use(&self) -> usize {
        self.by_addr.len()
    }

    /// Give `ip` to `key` (which must not hold another address).
    pub fn claim(&mut self, key: &ObjKey, ip: Ipv4Addr) -> Result<(), ClaimError> {
        let a = u32::from(ip);
        if !self.range.contains(ip) {
            return Err(ClaimError::OutOfRange);
        }
        if a == self.range.first {
            return Err(ClaimError::Reserved);
        }
        match self.by_addr.get(&a) {
            Some(k) if k == key => Ok(()),
            Some(k) => Err(ClaimError::InUse(k.clone())),
            None => {
                self.release(key);
                self.by_addr.insert(a, key.clone());
                self.by_key.insert(key.clone(), a);
                Ok(())
            }
        }
    }

    /// The address `key` holds, or the lowest free one (`None`: the range is exhausted).
    pub fn allocate(&mut self, key: &ObjKey) -> Option<Ipv4Addr> {
        if let Some(ip) = self.held(key) {
            return Some(ip);
        }
        let ip = Ipv4Addr::from(self.lowest_free()?);
        self.claim(key, ip).ok()?;
        Some(ip)
    }

    /// Walk the used addresses in order until the first gap: O(addresses in use).
    fn lowest_free(&self) -> Option<u32> {
        // The first address is the Ingresses'.
        let mut candidate = u64::from(self.range.first) + 1;
        let last = u64::from(self.range.last);
        for &used in self
            .by_addr
            .range(self.range.first..=self.range.last)
            .map(|(a, _)| a)
        {
            let used = u64::from(used);
            if used > candidate {
                break;
            }
            if used == candidate {
                candidate += 1;
            }
        }
        (candidate <= last).then(|| u32::try_from(candidate).ok())?
    }

    /// Free what `key` holds; the address, if it held one.
    pub fn release(&mut self, key: &ObjKey) -> Option<Ipv4Addr> {
        let a = self.by_key.remove(key)?;
        self.by_addr.remove(&a);
        Some(Ipv4Addr::from(a))
    }

    pub fn clear(&mut self) {
        self.by_addr.clear();
        self.by_key.clear();
    }
}

/// What an object asks of the load balancer.
#[derive(Debug, PartialEq, Eq)]
enum Intent {
    /// Not a LoadBalancer Service: no address, and none may linger in its status.
    None,
    /// Opted out (or a bad annotation value): no address; the Event to report.
    Withheld {
        warning: bool,
        reason: &'static str,
        message: String,
    },
    /// An address, optionally a specific one (`spec.loadBalancerIP`).
    Address { requested: Option<String> },
}

fn intent(is_ingress: bool, obj: &Value) -> Intent {
    if !is_ingress && str_at(obj, "/spec/type") != Some("LoadBalancer") {
        return Intent::None;
    }
    match util::annotation(obj, LOAD_BALANCER_ANNOTATION) {
        Some(WITHHOLD) => Intent::Withheld {
            warning: false,
            reason: "AddressWithheld",
            message: format!(
                "no load-balancer address: annotation {LOAD_BALANCER_ANNOTATION}: {WITHHOLD}"
            ),
        },
        Some(other) => Intent::Withheld {
            warning: true,
            reason: "InvalidAnnotation",
            message: format!(
                "annotation {LOAD_BALANCER_ANNOTATION}: {other:?} is not a known value (the only value is {WITHHOLD:?}, which withholds the address); no address is assigned"
            ),
        },
        None => Intent::Address {
            requested: (!is_ingress)
                .then(|| str_at(obj, "/spec/loadBalancerIP"))
                .flatten()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        },
    }
}

/// The Service's address from its stored status, if it has one.
fn status_ip(obj: &Value) -> Option<Ipv4Addr> {
    str_at(obj, "/status/loadBalancer/ingress/0/ip").and_then(|s| s.parse().ok())
}

fn creation(obj: &Value) -> String {
    str_at(obj, "/metadata/creationTimestamp")
        .unwrap_or_default()
        .to_string()
}

/// An Event to report about an object.
struct Note {
    warning: bool,
    reason: &'static str,
    message: String,
}

pub struct LoadBalancerController {
    /// `None` in hostname mode.
    alloc: Option<Allocator>,
    hostname: Option<String>,
    /// Services waiting for an address, with their creationTimestamp (oldest retried first).
    pending: HashMap<ObjKey, String>,
    /// The last Event reported per object (`reason\nmessage`), so a state is reported once.
    reported: HashMap<ObjKey, String>,
    /// An address was released during this reconcile: retry the pending Services.
    freed: bool,
}

impl LoadBalancerController {
    pub fn new(addresses: &LoadBalancerAddresses) -> Self {
        let (alloc, hostname) = match addresses {
            LoadBalancerAddresses::Range(r) => (Some(Allocator::new(r.clone())), None),
            LoadBalancerAddresses::Hostname(h) => (None, Some(h.clone())),
        };
        LoadBalancerController {
            alloc,
            hostname,
            pending: HashMap::new(),
            reported: HashMap::new(),
            freed: false,
        }
    }

    fn release(&mut self, key: &ObjKey) {
        if let Some(a) = &mut self.alloc {
            if a.release(key).is_some() {
                self.freed = true;
            }
        }
    }

    /// An address for a Service in range mode, or why there is none.
    fn assign(
        alloc: &mut Allocator,
        key: &ObjKey,
        obj: &Value,
        requested: Option<&str>,
        freed: &mut bool,
    ) -> Result<Ipv4Addr, String> {
        let why = |ip: Ipv4Addr, e: ClaimError, range: &AddressRange| match e {
            ClaimError::OutOfRange => {
                format!("spec.loadBalancerIP {ip} is not in the address range {range}")
            }
            ClaimError::Reserved => format!(
                "spec.loadBalancerIP {ip} is the address of the Ingresses (the first of {range})"
            ),
            ClaimError::InUse(k) => format!(
                "spec.loadBalancerIP {ip} is already in use by Service {}/{}",
                k.namespace, k.name
            ),
        };
        if let Some(req) = requested {
            let ip: Ipv4Addr = req
                .parse()
                .map_err(|_| format!("spec.loadBalancerIP {req:?} is not an IPv4 address"))?;
            if alloc.held(key) == Some(ip) {
                return Ok(ip);
            }
            if alloc.release(key).is_some() {
                *freed = true;
            }
            let range = alloc.range().clone();
            return alloc
                .claim(key, ip)
                .map(|()| ip)
                .map_err(|e| why(ip, e, &range));
        }
        if let Some(ip) = alloc.held(key) {
            return Ok(ip);
        }
        // An address already in the status (written before a restart, or by hand) is
        // kept when it is still valid.
        if let Some(ip) = status_ip(obj) {
            if alloc.claim(key, ip).is_ok() {
                return Ok(ip);
            }
        }
        alloc.allocate(key).ok_or_else(|| {
            format!(
                "no available IPs in {} ({} addresses for Services, all in use; {} is the Ingresses')",
                alloc.range(),
                alloc.capacity(),
                alloc.ingress_address()
            )
        })
    }

    /// Converge one object. Errors from writes propagate (the run loop retries).
    fn sync(&mut self, ctx: &Ctx, key: &ObjKey) -> Result<(), ApiError> {
        let is_ingress = key.resource == res::INGRESSES;
        let Some(obj) = util::get(ctx, key)? else {
            self.release(key);
            self.pending.remove(key);
            self.reported.remove(key);
            return Ok(());
        };
        // A Service being deleted keeps its address until it is gone.
        if util::is_deleting(&obj) {
            return Ok(());
        }
        let mut note = None;
        let mut desired: Vec<Value> = Vec::new();
        match intent(is_ingress, &obj) {
            Intent::None => {
                self.release(key);
                self.pending.remove(key);
                self.reported.remove(key);
            }
            Intent::Withheld {
                warning,
                reason,
                message,
            } => {
                self.release(key);
                self.pending.remove(key);
                note = Some(Note {
                    warning,
                    reason,
                    message,
                });
            }
            Intent::Address { requested } => {
                if let Some(h) = &self.hostname {
                    desired.push(json!({"hostname": h}));
                    if let Some(req) = requested {
                        note = Some(Note {
                            warning: true,
                            reason: "LoadBalancerIPIgnored",
                            message: format!(
                                "spec.loadBalancerIP {req:?} is not honoured: the embedded cluster gives every load balancer the hostname {h}"
                            ),
                        });
                    }
                } else if let Some(alloc) = &mut self.alloc {
                    if is_ingress {
                        desired.push(json!({"ip": alloc.ingress_address().to_string()}));
                    } else {
                        match Self::assign(alloc, key, &obj, requested.as_deref(), &mut self.freed)
                        {
                            Ok(ip) => {
                                self.pending.remove(key);
                                desired.push(json!({"ip": ip.to_string(), "ipMode": "VIP"}));
                            }
                            Err(why) => {
                                self.pending.insert(key.clone(), creation(&obj));
                                note = Some(Note {
                                    warning: true,
                                    reason: "AllocationFailed",
                                    message: format!(
                                        "Failed to allocate IP for \"{}/{}\": {why}",
                                        key.namespace, key.name
                                    ),
                                });
                            }
                        }
                    }
                }
            }
        }
        let rt = if is_ingress {
            &ctx.ingresses
        } else {
            &ctx.services
        };
        let current_lb = obj.pointer("/status/loadBalancer").cloned();
        let want_lb = if desired.is_empty() {
            json!({})
        } else {
            json!({"ingress": desired})
        };
        // A Service without an address has `loadBalancer: {}` (as Kubernetes defaults it).
        let unchanged = current_lb.as_ref() == Some(&want_lb)
            || (desired.is_empty()
                && current_lb
                    .as_ref()
                    .and_then(|l| l.get("ingress"))
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty));
        if !unchanged {
            let mut status = obj.get("status").cloned().unwrap_or_else(|| json!({}));
            if !status.is_object() {
                status = json!({});
            }
            status["loadBalancer"] = want_lb;
            util::write_status(ctx, rt, &obj, status)?;
            if !is_ingress && note.is_none() {
                if let Some(ip) = desired
                    .first()
                    .and_then(|d| d.get("ip"))
                    .and_then(Value::as_str)
                {
                    note = Some(Note {
                        warning: false,
                        reason: "IPAllocated",
                        message: format!("Assigned IP [\"{ip}\"]"),
                    });
                }
            }
        }
        if let Some(n) = note {
            self.report(ctx, key, &obj, n);
        }
        Ok(())
    }

    /// Record an Event on the object, once per distinct reason and message.
    fn report(&mut self, ctx: &Ctx, key: &ObjKey, obj: &Value, n: Note) {
        let signature = format!("{}\n{}", n.reason, n.message);
        if self.reported.get(key) == Some(&signature) {
            return;
        }
        let mut object = obj.clone();
        object["metadata"]["name"] = json!(key.name);
        object["metadata"]["namespace"] = json!(key.namespace);
        ctx.recorder.record(
            super::events::Source::controller(COMPONENT),
            &object,
            if n.warning {
                mooring_core::event::EventType::Warning
            } else {
                mooring_core::event::EventType::Normal
            },
            n.reason,
            &n.message,
        );
        self.reported.insert(key.clone(), signature);
    }

    /// Pending Services, oldest first, after an address was released.
    fn retry_pending(&mut self, ctx: &Ctx) {
        let mut waiting: Vec<(String, ObjKey)> = self
            .pending
            .iter()
            .map(|(k, ts)| (ts.clone(), k.clone()))
            .collect();
        waiting.sort();
        for (_, k) in waiting {
            if let Err(e) = self.sync(ctx, &k) {
                // Its own next event (or the conflicting write's) brings it back.
                tracing::debug!("load-balancer retry of {k}: {e}");
            }
        }
    }

    /// Re-read the addresses in use from the stored statuses (startup, lagged watch).
    fn rebuild(&mut self, ctx: &Ctx) {
        self.pending.clear();
        let Some(alloc) = &mut self.alloc else {
            return;
        };
        alloc.clear();
        let (svcs, _) = ctx.api.store.list(res::SERVICES, None);
        let mut held: Vec<(String, ObjKey, Ipv4Addr)> = svcs
            .iter()
            .filter_map(|s| {
                let v = s.value().ok()?;
                matches!(intent(false, &v), Intent::Address { .. })
                    .then(|| status_ip(&v))
                    .flatten()
                    .map(|ip| (creation(&v), s.key.clone(), ip))
            })
            .collect();
        // The older Service keeps a contested address.
        held.sort();
        for (_, key, ip) in held {
            let _ = alloc.claim(&key, ip);
        }
    }
}

impl Controller for LoadBalancerController {
    fn name(&self) -> &'static str {
        "load-balancer"
    }

    fn keys_for(&mut self, _ctx: &Ctx, ev: &Event, out: &mut Vec<ObjKey>) {
        let k = &ev.object.key;
        if k.resource == res::SERVICES || k.resource == res::INGRESSES {
            out.push(k.clone());
        }
    }

    fn all_keys(&mut self, ctx: &Ctx) -> Vec<ObjKey> {
        self.rebuild(ctx);
        let mut keys = util::all_keys(ctx, res::SERVICES);
        keys.extend(util::all_keys(ctx, res::INGRESSES));
        keys
    }

    fn reconcile(&mut self, ctx: &Ctx, key: &ObjKey) -> Result<Option<Duration>, ApiError> {
        self.freed = false;
        let r = self.sync(ctx, key);
        if std::mem::take(&mut self.freed) && !self.pending.is_empty() {
            self.retry_pending(ctx);
            self.freed = false;
        }
        r.map(|()| None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> AddressRange {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn key(n: &str) -> ObjKey {
        ObjKey::new(res::SERVICES, "default", n)
    }

    #[test]
    fn ranges_parse_as_cidr_or_first_last() {
        let r = range("127.0.100.0/24");
        assert_eq!(r.first(), Ipv4Addr::new(127, 0, 100, 1));
        assert_eq!(r.last(), Ipv4Addr::new(127, 0, 100, 254));
        assert_eq!(r.len(), 254);
        assert_eq!(r.to_string(), "127.0.100.0/24");
        let r = range(" 10.0.0.5-10.0.0.7 ");
        assert_eq!((r.first(), r.len()), (Ipv4Addr::new(10, 0, 0, 5), 3));
        assert_eq!(range("10.0.0.5/32").len(), 1);
        assert_eq!(range("10.0.0.4/31").len(), 2);
        assert_eq!(range("10.0.0.9-10.0.0.9").len(), 1);
        // Huge ranges are just two numbers.
        assert_eq!(range("10.0.0.0/8").len(), (1 << 24) - 2);
        assert_eq!(range("0.0.0.0/0").len(), (1u64 << 32) - 2);
        assert_eq!(range("0.0.0.0-255.255.255.255").len(), 1u64 << 32);
    }

    #[test]
    fn ranges_shift_for_fleets() {
        let r = range("127.0.100.0/24");
        assert_eq!(r.shifted(0), Some(r.clone()));
        let s = r.shifted(1).expect("shifted");
        assert_eq!(
            (s.first(), s.last()),
            (
                Ipv4Addr::new(127, 0, 101, 1),
                Ipv4Addr::new(127, 0, 101, 254)
            )
        );
        assert_eq!(s.to_string(), "127.0.101.1-127.0.101.254");
        assert_eq!(range("255.255.255.0/24").shifted(1), None);
        assert_eq!(range("0.0.0.0-255.255.255.255").shifted(1), None);
    }

    #[test]
    fn bad_ranges_are_named() {
        let err = |s: &str| s.parse::<AddressRange>().expect_err(s).to_string();
        assert!(err("bogus").contains("expected a CIDR"), "{}", err("bogus"));
        assert!(err("").contains("expected a CIDR"));
        assert!(err("127.0.100.0/33").contains("prefix length"));
        assert!(err("127.0.100.0/x").contains("127.0.100.0/x"));
        assert!(err("127.0.300.0/24").contains("\"127.0.300.0\" is not an IPv4 address"));
        assert!(err("127.0.100.5/24").contains("the network is 127.0.100.0/24"));
        assert!(err("127.0.100.9-127.0.100.1").contains("first address is after the last"));
        assert!(err("127.0.100.1-").contains("\"\" is not an IPv4 address"));
        assert!(err("fd00::/64").contains("IPv6"));
        assert!(err("127.0.100.1").contains("expected a CIDR"));
    }

    #[test]
    fn hostnames_are_checked() {
        assert_eq!(
            LoadBalancerAddresses::hostname("localhost"),
            Ok(LoadBalancerAddresses::Hostname("localhost".into()))
        );
        assert!(LoadBalancerAddresses::hostname("lb.example.test").is_ok());
        for bad in ["", "UPPER.case", "a b", "-x", &"a".repeat(254), "10.0.0.1"] {
            let e = LoadBalancerAddresses::hostname(bad).expect_err(bad);
            assert!(e.to_string().contains("load-balancer hostname"), "{e}");
        }
    }

    #[test]
    fn lowest_free_address_first_reserved_for_ingresses() {
        let mut a = Allocator::new(range("10.0.0.1-10.0.0.4"));
        assert_eq!(a.ingress_address(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(a.allocate(&key("a")), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(a.allocate(&key("b")), Some(Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(a.allocate(&key("a")), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(a.allocate(&key("c")), Some(Ipv4Addr::new(10, 0, 0, 4)));
        assert_eq!(a.allocate(&key("d")), None);
        assert_eq!(a.release(&key("b")), Some(Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(a.allocate(&key("d")), Some(Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(a.in_use(), 3);
    }

    #[test]
    fn claims_respect_range_reservation_and_holders() {
        let mut a = Allocator::new(range("10.0.0.0/29"));
        let ip = |d| Ipv4Addr::new(10, 0, 0, d);
        assert_eq!(a.claim(&key("a"), ip(9)), Err(ClaimError::OutOfRange));
        assert_eq!(a.claim(&key("a"), ip(1)), Err(ClaimError::Reserved));
        assert_eq!(a.claim(&key("a"), ip(5)), Ok(()));
        assert_eq!(a.claim(&key("b"), ip(5)), Err(ClaimError::InUse(key("a"))));
        // Claiming another address moves the holder.
        assert_eq!(a.claim(&key("a"), ip(6)), Ok(()));
        assert_eq!(a.claim(&key("b"), ip(5)), Ok(()));
        assert_eq!(a.allocate(&key("c")), Some(ip(2)));
        assert_eq!(a.in_use(), 3);
    }

    #[test]
    fn huge_ranges_cost_only_what_is_in_use() {
        let mut a = Allocator::new(range("0.0.0.0-255.255.255.255"));
        for i in 0..1000 {
            assert!(a.allocate(&key(&format!("s{i}"))).is_some());
        }
        assert_eq!(a.held(&key("s999")), Some(Ipv4Addr::from(1000)));
        // The top of the address space is handled without overflow.
        let mut top = Allocator::new(range("255.255.255.254-255.255.255.255"));
        assert_eq!(
            top.allocate(&key("x")),
            Some(Ipv4Addr::new(255, 255, 255, 255))
        );
        assert_eq!(top.allocate(&key("y")), None);
    }

    #[test]
    fn intents() {
        let svc = |ty: &str, ann: Value| json!({"metadata": {"annotations": ann}, "spec": {"type": ty, "loadBalancerIP": "10.0.0.3"}});
        assert_eq!(intent(false, &svc("ClusterIP", json!({}))), Intent::None);
        assert_eq!(
            intent(false, &svc("LoadBalancer", json!({}))),
            Intent::Address {
                requested: Some("10.0.0.3".into())
            }
        );
        assert!(matches!(
            intent(
                false,
                &svc("LoadBalancer", json!({LOAD_BALANCER_ANNOTATION: "pending"}))
            ),
            Intent::Withheld { warning: false, .. }
        ));
        assert!(matches!(
            intent(true, &json!({"metadata": {"annotations": {LOAD_BALANCER_ANNOTATION: "nope"}}})),
            Intent::Withheld { warning: true, ref message, .. } if message.contains("\"nope\"")
        ));
        assert_eq!(
            intent(true, &json!({"spec": {"loadBalancerIP": "x"}})),
            Intent::Address { requested: None }
        );
    }
}
