//! Which addresses Mooring may send a request to when a user wrote the URL.
//!
//! Tenants write URLs that the controller then requests: an `AnalysisTemplate`'s `web`
//! metric or Prometheus `address`, a `RollbackPolicy`'s incident webhook or Prometheus
//! address. Without a rule, a tenant's metric can read the embedded API server, Mooring's
//! own REST API, a cloud metadata service (169.254.169.254) or any loopback port, with the
//! controller's network position (server-side request forgery). This module is the rule,
//! as pure functions of values; the HTTP client that applies it to every hop of every
//! request, after resolving names once, lives at the edge (`mooring_controller::outbound`).
//!
//! By default a request is refused when an address it would connect to is:
//!
//! * loopback (`127.0.0.0/8`, `::1`), link-local (`169.254.0.0/16` — the metadata
//!   address — and `fe80::/10`), unspecified (`0.0.0.0/8`, `::`), multicast
//!   (`224.0.0.0/4`, `ff00::/8`) or the IPv4 broadcast address; IPv6 forms that carry an
//!   IPv4 address (`::ffff:127.0.0.1`, `::127.0.0.1`, NAT64 `64:ff9b::/96`) are judged
//!   by that IPv4 address;
//! * a *protected endpoint*: the management cluster's API server and Mooring's REST API
//!   (`ip:port` or `host:port`, given by whoever starts the controller).
//!
//! The admin opens it with the allowlist in the control-plane namespace's `mooring-cm`
//! ConfigMap, key [`CONFIG_KEY`] (`outbound.allow`): entries separated by commas or
//! newlines (`#` starts a comment), each an IP (`10.1.2.3`, `::1`), a CIDR
//! (`127.0.0.0/8`), an `ip:port` (`127.0.0.1:9090`, `[::1]:9090`) or a `host[:port]`
//! (`prometheus.monitoring`, `localhost:8080`). An IP or CIDR entry allows the addresses
//! it contains (on the entry's port only, when it names one); a host entry allows the
//! URLs naming that host, whatever it resolves to — the admin trusts that name. A
//! protected endpoint is opened only by an entry naming it *with its port*: allowing
//! `127.0.0.1` for a local test server does not open the API server on `127.0.0.1:6443`.
//!
//! Private ranges (`10.0.0.0/8`, `192.168.0.0/16`, …) are not refused: in-cluster
//! services (a Prometheus at `prometheus.monitoring:9090`) live there, as in Argo
//! Rollouts. An allowlist that does not parse is not half-applied: none of it is used,
//! and every refusal says why.

use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The `mooring-cm` key holding the admin's outbound allowlist.
pub const CONFIG_KEY: &str = "outbound.allow";

/// An allowlist entry that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{CONFIG_KEY} entry `{entry}`: {reason}")]
pub struct AllowlistError {
    pub entry: String,
    pub reason: String,
}

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// An address or a network (a single IP is a /32 or /128), optionally one port.
    Net { net: IpNet, port: Option<u16> },
    /// A host name as written in URLs (lower case, no trailing dot), optionally one port.
    Host { host: String, port: Option<u16> },
}

impl AllowEntry {
    fn port_matches(port: Option<u16>, wanted: u16) -> bool {
        port.is_none_or(|p| p == wanted)
    }

    /// Whether this entry allows connecting to `ip:port` for a URL naming `host`.
    fn allows(&self, host: &str, ip: IpAddr, port: u16) -> bool {
        match self {
            AllowEntry::Net { net, port: p } => {
                Self::port_matches(*p, port) && (net.contains(&ip) || net.contains(&canonical(ip)))
            }
            AllowEntry::Host { host: h, port: p } => {
                Self::port_matches(*p, port) && *h == normalize_host(host)
            }
        }
    }

    /// Whether this entry names exactly `ip:port` (or `host:port`): what opens a
    /// protected endpoint.
    fn names_exactly(&self, host: &str, ip: IpAddr, port: u16) -> bool {
        match self {
            AllowEntry::Net { net, port: Some(p) } => {
                *p == port && net.prefix_len() == net.max_prefix_len() && {
                    let a = net.addr();
                    a == ip || canonical(a) == canonical(ip)
                }
            }
            AllowEntry::Host {
                host: h,
                port: Some(p),
            } => *p == port && *h == normalize_host(host),
            _ => false,
        }
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowEntry::Net { net, port: None } => write!(f, "{net}"),
            AllowEntry::Net { net, port: Some(p) } => match net.addr() {
                IpAddr::V6(a) => write!(f, "[{a}]:{p}"),
                a => write!(f, "{a}:{p}"),
            },
            AllowEntry::Host { host, port: None } => write!(f, "{host}"),
            AllowEntry::Host {
                host,
                port: Some(p),
            } => write!(f, "{host}:{p}"),
        }
    }
}

fn parse_port(entry: &str, p: &str) -> Result<u16, AllowlistError> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(AllowlistError {
            entry: entry.to_string(),
            reason: format!("`{p}` is not a port (1-65535)"),
        }),
        Ok(n) => Ok(n),
    }
}

fn single(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A host name as URLs and allowlists compare it: lower case, no trailing dot.
pub fn normalize_host(h: &str) -> String {
    h.trim_end_matches('.').to_ascii_lowercase()
}

impl FromStr for AllowEntry {
    type Err = AllowlistError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let entry = s.trim();
        let bad = |reason: &str| AllowlistError {
            entry: entry.to_string(),
            reason: reason.to_string(),
        };
        if entry.is_empty() {
            return Err(bad("empty entry"));
        }
        if entry.contains("://") || entry.contains(['@', '?', '#', ' ', '\t']) {
            return Err(bad(
                "not an IP, CIDR or host[:port] (write `host:port`, not a URL)",
            ));
        }
        if entry.contains('/') {
            let net = IpNet::from_str(entry).map_err(|e| bad(&format!("invalid CIDR: {e}")))?;
            return Ok(AllowEntry::Net {
                net: net.trunc(),
                port: None,
            });
        }
        if let Ok(ip) = IpAddr::from_str(entry) {
            return Ok(AllowEntry::Net {
                net: single(ip),
                port: None,
            });
        }
        if let Some(rest) = entry.strip_prefix('[') {
            let (addr, tail) = rest.split_once(']').ok_or_else(|| bad("`[` without `]`"))?;
            let ip = Ipv6Addr::from_str(addr)
                .map_err(|_| bad(&format!("`{addr}` is not an IPv6 address")))?;
            let port = match tail {
                "" => None,
                t => Some(parse_port(
                    entry,
                    t.strip_prefix(':')
                        .ok_or_else(|| bad("expected `:port` after `]`"))?,
                )?),
            };
            return Ok(AllowEntry::Net {
                net: single(IpAddr::V6(ip)),
                port,
            });
        }
        let (host, port) = match entry.split_once(':') {
            Some((h, p)) => (h, Some(parse_port(entry, p)?)),
            None => (entry, None),
        };
        if let Ok(ip) = Ipv4Addr::from_str(host) {
            return Ok(AllowEntry::Net {
                net: single(IpAddr::V4(ip)),
                port,
            });
        }
        let host = normalize_host(host);
        if !valid_host(&host) {
            return Err(bad("not an IP, CIDR or host name"));
        }
        Ok(AllowEntry::Host { host, port })
    }
}

/// The admin's allowlist (`outbound.allow`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    pub entries: Vec<AllowEntry>,
}

impl Allowlist {
    /// Parse the ConfigMap value: entries separated by commas or newlines, `#` comments.
    /// Any bad entry refuses the whole list (an admin's typo must not open more, or
    /// less, than they think without saying so).
    pub fn parse(text: &str) -> Result<Allowlist, AllowlistError> {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.split_once('#').map_or(line, |(l, _)| l);
            for item in line.split(',') {
                if item.trim().is_empty() {
                    continue;
                }
                entries.push(item.parse()?);
            }
        }
        Ok(Allowlist { entries })
    }
}

/// An address and port Mooring never sends a user-written request to unless the
/// allowlist names it exactly: the management API server, Mooring's own REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedEndpoint {
    /// The host as written in its URL (an IP or a name), normalised.
    pub host: String,
    /// Its resolved addresses (the host itself when it is an IP).
    pub ips: Vec<IpAddr>,
    pub port: u16,
    /// What it is, for the refusal message ("the management cluster's API server").
    pub what: String,
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Loopback,
    LinkLocal,
    Unspecified,
    Multicast,
    Broadcast,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Loopback => "a loopback address",
            AddressClass::LinkLocal => {
                "a link-local address (this range holds cloud metadata services)"
            }
            AddressClass::Unspecified => "the unspecified address",
            AddressClass::Multicast => "a multicast address",
            AddressClass::Broadcast => "the broadcast address",
        })
    }
}

/// The IPv4 address an IPv6 address carries (IPv4-mapped `::ffff:a.b.c.d`, the
/// deprecated IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`), else the address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
            let compat = s[..6].iter().all(|x| *x == 0) && u32::from(tail) > 1;
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|x| *x == 0);
            if compat || nat64 {
                IpAddr::V4(tail)
            } else {
                ip
            }
        }
    }
}

/// The refused class `ip` belongs to, if any.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match canonical(ip) {
        IpAddr::V4(a) => {
            if a.is_loopback() {
                Some(AddressClass::Loopback)
            } else if a.is_link_local() {
                Some(AddressClass::LinkLocal)
            } else if a.octets()[0] == 0 {
                Some(AddressClass::Unspecified)
            } else if a.is_multicast() {
                Some(AddressClass::Multicast)
            } else if a.is_broadcast() {
                Some(AddressClass::Broadcast)
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            if a.is_loopback() {
                Some(AddressClass::Loopback)
            } else if a.is_unspecified() {
                Some(AddressClass::Unspecified)
            } else if a.is_multicast() {
                Some(AddressClass::Multicast)
            } else if (a.segments()[0] & 0xffc0) == 0xfe80 {
                Some(AddressClass::LinkLocal)
            } else {
                None
            }
        }
    }
}

/// Why a connection is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{ip} is {class}")]
    Class { ip: IpAddr, class: AddressClass },
    #[error("{ip}:{port} is {what}")]
    Protected { ip: IpAddr, port: u16, what: String },
}

/// The whole rule: the admin's allowlist (or why it is not used) and the protected
/// endpoints.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    pub allow: Allowlist,
    /// Why the configured allowlist is not used (it did not parse).
    pub config_error: Option<AllowlistError>,
    pub protected: Vec<ProtectedEndpoint>,
}

impl OutboundPolicy {
    /// The policy for the `outbound.allow` value (absent: nothing allowed beyond the
    /// default rule).
    pub fn from_config(value: Option<&str>, protected: Vec<ProtectedEndpoint>) -> OutboundPolicy {
        let (allow, config_error) = match value.map(Allowlist::parse) {
            None => (Allowlist::default(), None),
            Some(Ok(a)) => (a, None),
            Some(Err(e)) => (Allowlist::default(), Some(e)),
        };
        OutboundPolicy {
            allow,
            config_error,
            protected,
        }
    }

    /// May a request for a URL naming `host` (port `port`) connect to `ip`?
    pub fn check(&self, host: &str, ip: IpAddr, port: u16) -> Result<(), Refusal> {
        let host = normalize_host(host.trim_start_matches('[').trim_end_matches(']'));
        let c = canonical(ip);
        if let Some(p) = self.protected.iter().find(|p| {
            p.port == port && (p.host == host || p.ips.iter().any(|x| canonical(*x) == c))
        }) {
            if !self
                .allow
                .entries
                .iter()
                .any(|e| e.names_exactly(&host, ip, port))
            {
                return Err(Refusal::Protected {
                    ip,
                    port,
                    what: p.what.clone(),
                });
            }
            return Ok(());
        }
        match classify(ip) {
            None => Ok(()),
            Some(_) if self.allow.entries.iter().any(|e| e.allows(&host, ip, port)) => Ok(()),
            Some(class) => Err(Refusal::Class { ip, class }),
        }
    }

    /// The sentence every refusal ends with: how the admin opens it (and why the
    /// configured allowlist is not in force, when it is not).
    pub fn how_to_allow(&self, namespace: &str) -> String {
        let mut s = format!(
            "an admin can allow it in the `{CONFIG_KEY}` key of ConfigMap mooring-cm in namespace {namespace}"
        );
        if let Some(e) = &self.config_error {
            s.push_str(&format!(" (the current value is not used: {e})"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn policy(allow: &str) -> OutboundPolicy {
        OutboundPolicy::from_config(Some(allow), vec![])
    }

    #[test]
    fn refused_classes() {
        for (a, class) in [
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.0.9", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("febf::1", AddressClass::LinkLocal),
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("224.0.0.1", AddressClass::Multicast),
            ("ff02::1", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Broadcast),
            // IPv6 spellings of IPv4 addresses are judged by the IPv4 address.
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
            ("::127.0.0.1", AddressClass::Loopback),
            ("64:ff9b::a9fe:a9fe", AddressClass::LinkLocal),
        ] {
            assert_eq!(classify(ip(a)), Some(class), "{a}");
        }
        for a in [
            "10.0.0.1",
            "192.168.1.1",
            "8.8.8.8",
            "2001:db8::1",
            "fd00::1",
            "fec0::1",
        ] {
            assert_eq!(classify(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn allowlist_parses_ips_cidrs_and_hosts() {
        let a = Allowlist::parse(
            "127.0.0.1, 10.0.0.0/8\n[::1]:9090,127.0.0.1:8080 # test servers\n\n# comment\nPrometheus.Monitoring.:9090 , localhost",
        )
        .expect("parses");
        let shown: Vec<String> = a.entries.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            [
                "127.0.0.1/32",
                "10.0.0.0/8",
                "[::1]:9090",
                "127.0.0.1:8080",
                "prometheus.monitoring:9090",
                "localhost"
            ]
        );
        assert_eq!(Allowlist::parse("").expect("empty"), Allowlist::default());
        // CIDRs are normalised to their network.
        assert_eq!(
            Allowlist::parse("127.0.0.5/8").expect("cidr").entries[0].to_string(),
            "127.0.0.0/8"
        );
    }

    #[test]
    fn bad_entries_name_themselves() {
        for (text, entry) in [
            ("127.0.0.1, http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("10.0.0.0/33", "10.0.0.0/33"),
            ("host:0", "host:0"),
            ("host:99999", "host:99999"),
            ("[::1", "[::1"),
            ("[::1]x", "[::1]x"),
            ("bad host", "bad host"),
            ("user@host", "user@host"),
            ("a..b", "a..b"),
            ("::1:80:x", "::1:80:x"),
        ] {
            let e = Allowlist::parse(text).expect_err(text);
            assert_eq!(e.entry, entry, "{text}: {e}");
            assert!(e.to_string().contains(CONFIG_KEY), "{e}");
        }
        // A list that does not parse is not used at all, and refusals say so.
        let p = policy("127.0.0.1, nope nope");
        assert!(p.allow.entries.is_empty());
        assert!(p.check("127.0.0.1", ip("127.0.0.1"), 80).is_err());
        assert!(
            p.how_to_allow("argocd").contains("nope nope"),
            "{}",
            p.how_to_allow("argocd")
        );
    }

    #[test]
    fn the_default_refuses_and_the_allowlist_opens() {
        let none = OutboundPolicy::default();
        let e = none
            .check("169.254.169.254", ip("169.254.169.254"), 80)
            .expect_err("metadata");
        assert_eq!(
            e.to_string(),
            "169.254.169.254 is a link-local address (this range holds cloud metadata services)"
        );
        assert!(none.check("localhost", ip("127.0.0.1"), 8080).is_err());
        assert!(none.check("example.com", ip("93.184.216.34"), 443).is_ok());
        assert!(none.check("svc", ip("10.96.3.4"), 9090).is_ok());

        let p = policy("127.0.0.1:8080, 10.0.0.0/8, localhost:9000, ::1");
        assert!(p.check("127.0.0.1", ip("127.0.0.1"), 8080).is_ok());
        assert!(p.check("127.0.0.1", ip("127.0.0.1"), 8081).is_err());
        assert!(p.check("localhost", ip("127.0.0.1"), 9000).is_ok());
        assert!(p.check("localhost", ip("127.0.0.1"), 9001).is_err());
        assert!(p.check("[::1]", ip("::1"), 1).is_ok());
        // An IPv4 entry also covers the address's IPv6 spelling.
        assert!(p
            .check("::ffff:127.0.0.1", ip("::ffff:127.0.0.1"), 8080)
            .is_ok());
        // A name that resolves to loopback is judged by the address, not the name.
        assert!(p.check("evil.example", ip("127.0.0.1"), 9000).is_err());
        assert!(policy("127.0.0.0/8")
            .check("evil.example", ip("127.0.0.2"), 1)
            .is_ok());
    }

    #[test]
    fn protected_endpoints_need_an_exact_entry() {
        let api = ProtectedEndpoint {
            host: "127.0.0.1".into(),
            ips: vec![ip("127.0.0.1")],
            port: 6443,
            what: "the management cluster's API server".into(),
        };
        let svc = ProtectedEndpoint {
            host: "kubernetes.default.svc".into(),
            ips: vec![ip("10.96.0.1")],
            port: 443,
            what: "the management cluster's API server".into(),
        };
        let p = OutboundPolicy::from_config(
            Some("127.0.0.0/8, localhost, 10.0.0.0/8"),
            vec![api.clone(), svc.clone()],
        );
        let e = p
            .check("127.0.0.1", ip("127.0.0.1"), 6443)
            .expect_err("api server");
        assert_eq!(
            e.to_string(),
            "127.0.0.1:6443 is the management cluster's API server"
        );
        assert!(p.check("localhost", ip("127.0.0.1"), 6443).is_err());
        assert!(p
            .check("::ffff:127.0.0.1", ip("::ffff:127.0.0.1"), 6443)
            .is_err());
        // A private address is not refused by default, except the API server's.
        assert!(p
            .check("kubernetes.default.svc", ip("10.96.0.1"), 443)
            .is_err());
        assert!(p.check("10.96.0.1", ip("10.96.0.1"), 443).is_err());
        assert!(p.check("10.96.0.1", ip("10.96.0.1"), 444).is_ok());
        assert!(p.check("127.0.0.1", ip("127.0.0.1"), 6444).is_ok());
        // Only an entry naming it with its port opens it.
        let open = OutboundPolicy::from_config(Some("127.0.0.1:6443"), vec![api]);
        assert!(open.check("127.0.0.1", ip("127.0.0.1"), 6443).is_ok());
        let open = OutboundPolicy::from_config(Some("kubernetes.default.svc:443"), vec![svc]);
        assert!(open
            .check("kubernetes.default.svc", ip("10.96.0.1"), 443)
            .is_ok());
    }
}
