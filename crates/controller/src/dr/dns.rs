//! DNS switching for failovers: point a plan's records from the primary's address to the
//! standby's (and back), through the provider the plan names.
//!
//! Two providers, the two ExternalDNS users already run:
//!
//! - **RFC 2136** dynamic UPDATE, signed with TSIG (RFC 8945; `hmac-sha256` by default,
//!   `hmac-sha512`, `hmac-sha1`), to the zone's primary server (BIND, Knot, PowerDNS…).
//!   All the records of a switch go in **one** UPDATE message, which the server applies
//!   atomically: each record's RRset (name and type) is deleted and the new record added.
//!   Messages go over **TCP** only (RFC 7766: every server takes it; no truncation, no
//!   UDP retransmission that could blur "exactly one update"). The answer must carry a
//!   valid TSIG of the same key, else the update counts as failed.
//! - the **ExternalDNS webhook** protocol (`GET /` negotiation, `GET /records`,
//!   `POST /records` with `Create`/`UpdateOld`/`UpdateNew`/`Delete`), for Route 53,
//!   Cloud DNS and the rest through their webhook adapters: a switch is one POST.
//!
//! [`Provider::current`] reads what a record answers now, from the provider itself; the
//! failover engine asks it before writing ([`Provider::pending`]) and skips records that
//! already point to the target, so a failover resumed after a crash writes once.
//!
//! Every address is a user's input: the webhook goes through [`Outbound::send`] and the
//! name server through [`Outbound::admit_dns`], so the admin's `outbound.allow` rules
//! both. Everything is checked before anything is sent (names, zone, TTL, targets,
//! algorithm): a bad spec sends nothing.
//!
//! The wire format is [`wire`] (pure).

pub mod wire;

use crate::outbound::{Outbound, OutboundError, OutboundRequest};
use mooring_core::dr::DnsProvider;
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a DNS server has to answer (connection, request and answer).
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// The media type of ExternalDNS's webhook protocol, version 1.
pub const WEBHOOK_MEDIA_TYPE: &str = "application/external.dns.webhook+json;version=1";

/// Largest TTL (RFC 2181 §8: 2^31 - 1).
pub const MAX_TTL: u32 = i32::MAX as u32;

/// A record type a switch writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    A,
    Cname,
}

impl RecordType {
    /// A record's `type`: `A` (also when empty), `CNAME`; any case.
    pub fn parse(s: &str) -> Result<RecordType, DnsError> {
        match s.trim() {
            "" => Ok(RecordType::A),
            t if t.eq_ignore_ascii_case("A") => Ok(RecordType::A),
            t if t.eq_ignore_ascii_case("CNAME") => Ok(RecordType::Cname),
            t => Err(invalid("type", t, "is not A or CNAME")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Cname => "CNAME",
        }
    }

    fn code(self) -> u16 {
        match self {
            RecordType::A => wire::TYPE_A,
            RecordType::Cname => wire::TYPE_CNAME,
        }
    }
}

/// What a switch writes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Switch {
    pub records: Vec<Change>,
}

/// One record: `fqdn` (absolute, final dot) answers `target` (an IPv4 address for `A`, a
/// host name for `CNAME`) with `ttl`. Several changes of one name and type make one
/// RRset of several targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub fqdn: String,
    pub record_type: RecordType,
    pub ttl: u32,
    pub target: String,
}

/// DNS switching errors; each names the input or the server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("invalid {field} `{value}`: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    #[error("cannot connect to DNS server {server}: {reason}")]
    Connect { server: String, reason: String },
    #[error("no answer from DNS server {server} in {}s", after.as_secs())]
    Timeout { server: String, after: Duration },
    #[error("exchange with DNS server {server} failed: {reason}")]
    Io { server: String, reason: String },
    #[error("the DNS server {server} refused the TSIG key {key} ({code}): check the secret and the server's allow-update")]
    TsigRefused {
        server: String,
        key: String,
        code: String,
    },
    #[error(
        "the answer of DNS server {server} does not carry a valid TSIG of key {key}: {reason}"
    )]
    BadAnswerSignature {
        server: String,
        key: String,
        reason: String,
    },
    #[error("DNS server {server} answered {rcode} for zone {zone}: {hint}")]
    Rcode {
        server: String,
        zone: String,
        rcode: String,
        hint: String,
    },
    #[error("the answer of DNS server {server} is malformed: {reason}")]
    Malformed { server: String, reason: String },
    #[error("the ExternalDNS webhook {url} answered {status}: {first_line}")]
    Webhook {
        url: String,
        status: u16,
        first_line: String,
    },
    #[error("the ExternalDNS webhook {url} answered something unexpected: {reason}")]
    WebhookAnswer { url: String, reason: String },
}

fn invalid(field: &str, value: &str, reason: &str) -> DnsError {
    DnsError::Invalid {
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// A configured provider (checked: valid names, a supported algorithm, a decoded secret).
#[derive(Debug, Clone)]
pub enum Provider {
    Rfc2136 {
        /// As written (`HOST:PORT`), for messages.
        server: String,
        host: String,
        port: u16,
        /// Absolute, lower case, final dot.
        zone: String,
        tsig: Option<wire::Key>,
    },
    Webhook {
        /// Base URL, without a final slash.
        url: String,
        /// Absolute (final dot), when relative names are used.
        zone: Option<String>,
    },
}

impl Provider {
    /// From the plan's spec and the TSIG secret's bytes (read by the caller from the
    /// Secret `tsig.secretRef` in the plan's namespace: the base64 text `tsig-keygen`
    /// prints; `None` without tsig).
    pub fn from_spec(
        spec: &DnsProvider,
        tsig_secret: Option<Vec<u8>>,
    ) -> Result<Provider, DnsError> {
        match (&spec.rfc2136, &spec.webhook) {
            (Some(_), Some(_)) => Err(invalid(
                "provider",
                "rfc2136, webhook",
                "names two providers; write exactly one",
            )),
            (None, None) => Err(invalid(
                "provider",
                "",
                "names no provider; write rfc2136 or webhook",
            )),
            (Some(r), None) => {
                let (host, port) = parse_server(&r.server)?;
                let zone = absolute_name("rfc2136.zone", &r.zone)?;
                let tsig = match &r.tsig {
                    None => None,
                    Some(t) => {
                        let name = absolute_name("rfc2136.tsig.keyName", &t.key_name)?;
                        let alg_text = t.algorithm.as_deref().unwrap_or("hmac-sha256");
                        let algorithm = wire::Algorithm::parse(alg_text).ok_or_else(|| {
                            invalid(
                                "rfc2136.tsig.algorithm",
                                alg_text,
                                "is not supported (hmac-sha256, hmac-sha512 or hmac-sha1)",
                            )
                        })?;
                        let field = format!(
                            "rfc2136.tsig.secretRef (Secret {} key {})",
                            t.secret_ref.name, t.secret_ref.key
                        );
                        let raw = tsig_secret
                            .ok_or_else(|| invalid(&field, "", "was not read (no secret given)"))?;
                        let text = String::from_utf8(raw)
                            .map_err(|_| invalid(&field, "<binary>", "is not base64 text"))?;
                        let secret = decode_secret(text.trim())
                            .ok_or_else(|| invalid(&field, "<redacted>", "is not base64"))?;
                        if secret.is_empty() {
                            return Err(invalid(&field, "", "is empty"));
                        }
                        Some(wire::Key {
                            name,
                            algorithm,
                            secret,
                        })
                    }
                };
                Ok(Provider::Rfc2136 {
                    server: r.server.trim().to_string(),
                    host,
                    port,
                    zone,
                    tsig,
                })
            }
            (None, Some(w)) => {
                let url = w.url.trim().trim_end_matches('/').to_string();
                let parsed = reqwest::Url::parse(&url)
                    .map_err(|e| invalid("webhook.url", &w.url, &e.to_string()))?;
                if parsed.scheme() != "http" && parsed.scheme() != "https" {
                    return Err(invalid("webhook.url", &w.url, "is not http(s)"));
                }
                let zone = w
                    .zone
                    .as_deref()
                    .map(|z| absolute_name("webhook.zone", z))
                    .transpose()?;
                Ok(Provider::Webhook { url, zone })
            }
        }
    }

    /// The zone relative names are in.
    fn zone(&self) -> Option<&str> {
        match self {
            Provider::Rfc2136 { zone, .. } => Some(zone),
            Provider::Webhook { zone, .. } => zone.as_deref(),
        }
    }

    /// The zone-relative or absolute record name as a FQDN (`inference` + zone →
    /// `inference.ml.example.com.`), lower case. Not checked: [`Provider::record_name`]
    /// checks, and [`Provider::apply`] checks every change.
    pub fn fqdn(&self, name: &str) -> String {
        let name = name.trim().to_ascii_lowercase();
        if name.ends_with('.') {
            return name;
        }
        match self.zone() {
            Some(zone) if name == "@" => zone.to_string(),
            Some(zone) => format!("{name}.{zone}"),
            None => format!("{name}."),
        }
    }

    /// [`Provider::fqdn`], checked: a valid name, in the provider's zone.
    pub fn record_name(&self, name: &str) -> Result<String, DnsError> {
        if !name.trim().ends_with('.') && self.zone().is_none() {
            return Err(invalid(
                "record name",
                name,
                "is relative but the webhook provider has no zone: write a FQDN ending in `.` or set webhook.zone",
            ));
        }
        let fqdn = self.fqdn(name);
        absolute_name("record name", &fqdn)?;
        self.check_in_zone(&fqdn)?;
        Ok(fqdn)
    }

    fn check_in_zone(&self, fqdn: &str) -> Result<(), DnsError> {
        if let Some(zone) = self.zone() {
            if !in_zone(fqdn, zone) {
                return Err(invalid(
                    "record name",
                    fqdn,
                    &format!("is not in zone {zone}"),
                ));
            }
        }
        Ok(())
    }

    /// Check every change before anything is sent.
    pub fn check(&self, switch: &Switch) -> Result<(), DnsError> {
        if switch.records.is_empty() {
            return Err(invalid("records", "", "a switch has no record"));
        }
        for c in &switch.records {
            self.check_change(c)?;
        }
        Ok(())
    }

    fn check_change(&self, c: &Change) -> Result<(), DnsError> {
        if !c.fqdn.ends_with('.') {
            return Err(invalid(
                "record name",
                &c.fqdn,
                "is not absolute (no final `.`)",
            ));
        }
        absolute_name("record name", &c.fqdn)?;
        self.check_in_zone(&c.fqdn.to_ascii_lowercase())?;
        if c.ttl == 0 || c.ttl > MAX_TTL {
            return Err(invalid(
                "ttl",
                &c.ttl.to_string(),
                &format!("of {} is not between 1 and {MAX_TTL}", c.fqdn),
            ));
        }
        match c.record_type {
            RecordType::A => {
                c.target.parse::<Ipv4Addr>().map_err(|_| {
                    invalid(
                        "target",
                        &c.target,
                        &format!("of A record {} is not an IPv4 address", c.fqdn),
                    )
                })?;
            }
            RecordType::Cname => {
                absolute_name("target", &c.target).map_err(|e| match e {
                    DnsError::Invalid {
                        field,
                        value,
                        reason,
                    } => DnsError::Invalid {
                        field,
                        value,
                        reason: format!("of CNAME record {}: {reason}", c.fqdn),
                    },
                    e => e,
                })?;
            }
        }
        Ok(())
    }

    /// What NAME/TYPE answers now (addresses, or host names without the final dot), from
    /// the provider itself; empty when the name has no such record.
    pub async fn current(
        &self,
        outbound: &Outbound,
        fqdn: &str,
        record_type: RecordType,
    ) -> Result<Vec<String>, DnsError> {
        if !fqdn.ends_with('.') {
            return Err(invalid(
                "record name",
                fqdn,
                "is not absolute (no final `.`)",
            ));
        }
        let fqdn = fqdn.to_ascii_lowercase();
        absolute_name("record name", &fqdn)?;
        self.check_in_zone(&fqdn)?;
        match self {
            Provider::Rfc2136 { .. } => {
                let resp = self
                    .exchange(outbound, |id| wire::query(id, &fqdn, record_type.code()))
                    .await?;
                Ok(resp
                    .answers
                    .iter()
                    .filter(|a| {
                        a.rtype == record_type.code()
                            && a.name
                                .trim_end_matches('.')
                                .eq_ignore_ascii_case(fqdn.trim_end_matches('.'))
                    })
                    .map(|a| normalize_target(record_type, &a.value))
                    .collect())
            }
            Provider::Webhook { url, .. } => {
                self.negotiate(outbound, url).await?;
                let records = webhook_records(outbound, url).await?;
                Ok(records
                    .iter()
                    .filter(|e| e.matches(&fqdn, record_type))
                    .flat_map(|e| e.targets.iter())
                    .map(|t| normalize_target(record_type, t))
                    .collect())
            }
        }
    }

    /// The changes of `switch` whose record does not answer its targets yet (asked of the
    /// provider): what a resumed failover still has to write.
    pub async fn pending(&self, outbound: &Outbound, switch: &Switch) -> Result<Switch, DnsError> {
        self.check(switch)?;
        let mut out = Switch::default();
        for (fqdn, rtype, changes) in group(switch) {
            let now = self.current(outbound, &fqdn, rtype).await?;
            let mut want: Vec<String> = changes
                .iter()
                .map(|c| normalize_target(rtype, &c.target))
                .collect();
            let mut have = now;
            want.sort();
            want.dedup();
            have.sort();
            have.dedup();
            if want != have {
                out.records.extend(changes.into_iter().cloned());
            }
        }
        Ok(out)
    }

    /// Replace the records in one update (one message / one POST).
    pub async fn apply(&self, outbound: &Outbound, switch: &Switch) -> Result<(), DnsError> {
        self.check(switch)?;
        match self {
            Provider::Rfc2136 { .. } => {
                let mut records = Vec::with_capacity(switch.records.len());
                for c in &switch.records {
                    let rdata = match c.record_type {
                        RecordType::A => {
                            let ip: Ipv4Addr = c.target.parse().map_err(|_| {
                                invalid("target", &c.target, "is not an IPv4 address")
                            })?;
                            wire::rdata_a(ip)
                        }
                        RecordType::Cname => wire::rdata_name(&c.target),
                    };
                    records.push(wire::NewRecord {
                        name: c.fqdn.to_ascii_lowercase(),
                        rtype: c.record_type.code(),
                        ttl: c.ttl,
                        rdata,
                    });
                }
                let zone = self.zone().unwrap_or_default().to_string();
                self.exchange(outbound, |id| wire::update(id, &zone, &records))
                    .await?;
                Ok(())
            }
            Provider::Webhook { url, .. } => {
                let filters = self.negotiate(outbound, url).await?;
                for c in &switch.records {
                    if !filters.is_empty() && !filters.iter().any(|f| in_zone(&c.fqdn, f)) {
                        return Err(invalid(
                            "record name",
                            &c.fqdn,
                            &format!(
                                "is outside the domain filter of the webhook provider {url} ({})",
                                filters.join(", ")
                            ),
                        ));
                    }
                }
                let existing = webhook_records(outbound, url).await?;
                let mut changes = WebhookChanges::default();
                for (fqdn, rtype, group) in group(switch) {
                    let new = Endpoint {
                        dns_name: fqdn.trim_end_matches('.').to_string(),
                        targets: group
                            .iter()
                            .map(|c| normalize_target(rtype, &c.target))
                            .collect(),
                        record_type: rtype.as_str().to_string(),
                        record_ttl: group.iter().map(|c| c.ttl).max(),
                        rest: serde_json::Map::new(),
                    };
                    match existing.iter().find(|e| e.matches(&fqdn, rtype)) {
                        Some(old) => {
                            // Keep what the provider attached (labels such as the owner,
                            // providerSpecific, setIdentifier).
                            let mut new = new;
                            new.rest = old.rest.clone();
                            changes.update_old.push(old.clone());
                            changes.update_new.push(new);
                        }
                        None => changes.create.push(new),
                    }
                }
                let body = serde_json::to_vec(&changes).map_err(|e| DnsError::WebhookAnswer {
                    url: url.clone(),
                    reason: format!("encoding the changes: {e}"),
                })?;
                let mut req =
                    OutboundRequest::new(reqwest::Method::POST, &format!("{url}/records"));
                req.headers = vec![
                    ("Content-Type".into(), WEBHOOK_MEDIA_TYPE.into()),
                    ("Accept".into(), WEBHOOK_MEDIA_TYPE.into()),
                ];
                req.body = Some(body);
                let resp = outbound.send(req).await?;
                check_status(&format!("{url}/records"), resp.status, &resp.body)?;
                Ok(())
            }
        }
    }

    /// `GET /`: the provider speaks version 1; its domain filter (absolute names).
    async fn negotiate(&self, outbound: &Outbound, url: &str) -> Result<Vec<String>, DnsError> {
        let mut req = OutboundRequest::new(reqwest::Method::GET, &format!("{url}/"));
        req.headers = vec![("Accept".into(), WEBHOOK_MEDIA_TYPE.into())];
        let resp = outbound.send(req).await?;
        let shown = format!("{url}/");
        check_status(&shown, resp.status, &resp.body)?;
        let v: serde_json::Value =
            serde_json::from_slice(&resp.body).map_err(|e| DnsError::WebhookAnswer {
                url: shown.clone(),
                reason: format!("the negotiation answer is not JSON: {e}"),
            })?;
        // ExternalDNS's DomainFilter: `filters` (older) or `include` (newer); `exclude` is
        // not needed to refuse names outside.
        let mut filters = Vec::new();
        for key in ["filters", "include"] {
            if let Some(list) = v.get(key).and_then(|l| l.as_array()) {
                for f in list {
                    let f = f.as_str().ok_or_else(|| DnsError::WebhookAnswer {
                        url: shown.clone(),
                        reason: format!("domain filter entry `{f}` is not a string"),
                    })?;
                    let f = f.trim().trim_start_matches('.').to_ascii_lowercase();
                    if !f.is_empty() {
                        filters.push(if f.ends_with('.') { f } else { format!("{f}.") });
                    }
                }
            }
        }
        Ok(filters)
    }

    /// Send the message `build(id)` (signed when a key is configured) and read the
    /// checked answer.
    async fn exchange(
        &self,
        outbound: &Outbound,
        build: impl Fn(u16) -> Vec<u8>,
    ) -> Result<wire::Response, DnsError> {
        let Provider::Rfc2136 {
            server,
            host,
            port,
            zone,
            tsig,
        } = self
        else {
            return Err(invalid("provider", "webhook", "is not an RFC 2136 server"));
        };
        let id = random_id();
        let mut msg = build(id);
        let now = unix_now();
        let request_mac = tsig.as_ref().map(|k| wire::sign(&mut msg, k, now));
        let addrs = outbound.admit_dns(host, *port).await?;
        let answer = tokio::time::timeout(DNS_TIMEOUT, tcp_exchange(server, &addrs, &msg))
            .await
            .map_err(|_| DnsError::Timeout {
                server: server.clone(),
                after: DNS_TIMEOUT,
            })??;
        let malformed = |reason: String| DnsError::Malformed {
            server: server.clone(),
            reason,
        };
        let resp = wire::parse(&answer).map_err(|e| malformed(e.0))?;
        if resp.id != id || !resp.is_response {
            return Err(malformed(format!(
                "it answers message {} (we sent {id})",
                resp.id
            )));
        }
        if let (Some(key), Some(mac)) = (tsig, &request_mac) {
            if let Some(t) = resp.tsig.as_ref().filter(|t| t.error != 0) {
                return Err(DnsError::TsigRefused {
                    server: server.clone(),
                    key: key.name.trim_end_matches('.').to_string(),
                    code: wire::rcode_name(t.error),
                });
            }
            if resp.tsig.is_none() && resp.rcode == 9 {
                return Err(DnsError::TsigRefused {
                    server: server.clone(),
                    key: key.name.trim_end_matches('.').to_string(),
                    code: "NOTAUTH".into(),
                });
            }
            wire::verify(&answer, &resp, key, mac, unix_now()).map_err(|e| {
                DnsError::BadAnswerSignature {
                    server: server.clone(),
                    key: key.name.trim_end_matches('.').to_string(),
                    reason: e.to_string(),
                }
            })?;
        }
        let zone = zone.trim_end_matches('.');
        let hint = match resp.rcode {
            0 => return Ok(resp),
            // A query for a name that does not exist: no record.
            3 if resp.opcode == 0 => return Ok(resp),
            2 => "the server failed to process it (see its log)".to_string(),
            5 => format!(
                "the server refuses it: check its allow-update / update-policy for {}",
                match tsig {
                    Some(k) => format!("key {}", k.name.trim_end_matches('.')),
                    None => "this address (no TSIG key is configured)".into(),
                }
            ),
            9 => format!(
                "the server is not authoritative for zone {zone} (is it the zone's primary?)"
            ),
            10 => format!("a record is not in zone {zone}"),
            1 => "the server could not read the message".into(),
            4 => "the server does not implement it".into(),
            _ => "the update was not applied".into(),
        };
        Err(DnsError::Rcode {
            server: server.clone(),
            zone: zone.to_string(),
            rcode: wire::rcode_name(resp.rcode),
            hint,
        })
    }
}

/// One DNS message over TCP (two-byte length prefix, RFC 1035 §4.2.2) to the first
/// admitted address that accepts the connection.
async fn tcp_exchange(
    server: &str,
    addrs: &[std::net::SocketAddr],
    msg: &[u8],
) -> Result<Vec<u8>, DnsError> {
    let io = |e: std::io::Error| DnsError::Io {
        server: server.to_string(),
        reason: e.to_string(),
    };
    let mut last = String::from("no address");
    let mut stream = None;
    for a in addrs {
        match tokio::net::TcpStream::connect(a).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    let mut stream = stream.ok_or_else(|| DnsError::Connect {
        server: server.to_string(),
        reason: last,
    })?;
    let len = u16::try_from(msg.len()).map_err(|_| DnsError::Io {
        server: server.to_string(),
        reason: format!("the message is {} bytes, more than DNS allows", msg.len()),
    })?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    stream.write_all(&framed).await.map_err(io)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(io)?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut answer).await.map_err(io)?;
    Ok(answer)
}

fn random_id() -> u16 {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 2];
    // A failure of the system's random source leaves id 0, which is still a valid id: the
    // TSIG and the TCP connection bind the answer to the request.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u16::from_be_bytes(b)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A secret in standard base64, with or without padding.
fn decode_secret(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .ok()
}

/// `HOST:PORT`, `HOST` (port 53), `[V6]:PORT` or a bare IPv6 address.
fn parse_server(server: &str) -> Result<(String, u16), DnsError> {
    let s = server.trim();
    let bad = |reason: &str| invalid("rfc2136.server", server, reason);
    if s.is_empty() {
        return Err(bad("is empty"));
    }
    if s.chars().any(|c| c.is_whitespace() || "/@?#".contains(c)) {
        return Err(bad("is not HOST:PORT"));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| bad("has no `]`"))?;
        match after.strip_prefix(':') {
            Some(p) => (h.to_string(), Some(p)),
            None if after.is_empty() => (h.to_string(), None),
            None => return Err(bad("is not [ADDRESS]:PORT")),
        }
    } else if s.matches(':').count() > 1 {
        (s.to_string(), None)
    } else if let Some((h, p)) = s.split_once(':') {
        (h.to_string(), Some(p))
    } else {
        (s.to_string(), None)
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    let port = match port {
        None => 53,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("has a port that is not 1-65535"))?,
    };
    Ok((host, port))
}

/// Check an absolute or relative DNS name and return it absolute (final dot), lower case:
/// labels of 1 to 63 letters, digits, `-` or `_`, at most 253 characters.
fn absolute_name(field: &str, name: &str) -> Result<String, DnsError> {
    let bad = |reason: &str| invalid(field, name, reason);
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        return Err(bad(&format!(
            "contains {c:?} (names are letters, digits, `-`, `_` and dots)"
        )));
    }
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err(bad("is the root"));
    }
    if trimmed.len() > 253 {
        return Err(bad("is longer than 253 characters"));
    }
    for label in trimmed.split('.') {
        if label.is_empty() {
            return Err(bad("has an empty label"));
        }
        if label.len() > 63 {
            return Err(bad(&format!(
                "has a label of {} characters (at most 63)",
                label.len()
            )));
        }
    }
    Ok(format!("{}.", trimmed.to_ascii_lowercase()))
}

/// Whether absolute `name` is `zone` or under it.
fn in_zone(name: &str, zone: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let zone = zone.to_ascii_lowercase();
    name == zone || name.ends_with(&format!(".{zone}"))
}

/// An address as is; a host name lower case without the final dot.
fn normalize_target(rtype: RecordType, target: &str) -> String {
    match rtype {
        RecordType::A => target.trim().to_string(),
        RecordType::Cname => target.trim().trim_end_matches('.').to_ascii_lowercase(),
    }
}

/// The changes grouped by name and type (first-seen order): one RRset each.
fn group(switch: &Switch) -> Vec<(String, RecordType, Vec<&Change>)> {
    let mut out: Vec<(String, RecordType, Vec<&Change>)> = Vec::new();
    for c in &switch.records {
        let fqdn = c.fqdn.to_ascii_lowercase();
        match out
            .iter_mut()
            .find(|(n, t, _)| *n == fqdn && *t == c.record_type)
        {
            Some((_, _, v)) => v.push(c),
            None => out.push((fqdn, c.record_type, vec![c])),
        }
    }
    out
}

/// ExternalDNS's `endpoint.Endpoint` (the fields a switch reads and writes; the others
/// are kept as the provider sent them).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    dns_name: String,
    #[serde(default)]
    targets: Vec<String>,
    record_type: String,
    #[serde(default, rename = "recordTTL", skip_serializing_if = "Option::is_none")]
    record_ttl: Option<u32>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Endpoint {
    fn matches(&self, fqdn: &str, rtype: RecordType) -> bool {
        self.dns_name
            .trim_end_matches('.')
            .eq_ignore_ascii_case(fqdn.trim_end_matches('.'))
            && self.record_type.eq_ignore_ascii_case(rtype.as_str())
    }
}

/// ExternalDNS's `plan.Changes`.
#[derive(Debug, Default, serde::Serialize)]
struct WebhookChanges {
    #[serde(rename = "Create")]
    create: Vec<Endpoint>,
    #[serde(rename = "UpdateOld")]
    update_old: Vec<Endpoint>,
    #[serde(rename = "UpdateNew")]
    update_new: Vec<Endpoint>,
    #[serde(rename = "Delete")]
    delete: Vec<Endpoint>,
}

/// `GET /records`.
async fn webhook_records(outbound: &Outbound, url: &str) -> Result<Vec<Endpoint>, DnsError> {
    let shown = format!("{url}/records");
    let mut req = OutboundRequest::new(reqwest::Method::GET, &shown);
    req.headers = vec![("Accept".into(), WEBHOOK_MEDIA_TYPE.into())];
    let resp = outbound.send(req).await?;
    check_status(&shown, resp.status, &resp.body)?;
    let v: Option<Vec<Endpoint>> =
        serde_json::from_slice(&resp.body).map_err(|e| DnsError::WebhookAnswer {
            url: shown.clone(),
            reason: format!("the records are not a list of endpoints: {e}"),
        })?;
    Ok(v.unwrap_or_default())
}

/// A 4xx/5xx answer is an error with the first line of its body.
fn check_status(url: &str, status: u16, body: &[u8]) -> Result<(), DnsError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(body);
    let first: String = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(empty body)")
        .chars()
        .take(200)
        .collect();
    Err(DnsError::Webhook {
        url: url.to_string(),
        status,
        first_line: first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mooring_core::dr::{DnsWebhookSpec, Rfc2136Spec, TsigSpec};

    fn rfc(server: &str, zone: &str, alg: Option<&str>) -> DnsProvider {
        DnsProvider {
            rfc2136: Some(Rfc2136Spec {
                server: server.into(),
                zone: zone.into(),
                tsig: Some(TsigSpec {
                    key_name: "mooring".into(),
                    algorithm: alg.map(str::to_string),
                    secret_ref: mooring_core::dr::SecretKeyRef {
                        name: "dns-tsig".into(),
                        key: "secret".into(),
                    },
                }),
            }),
            webhook: None,
        }
    }

    const SECRET: &[u8] = b"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=";

    #[test]
    fn servers_parse_with_a_default_port() {
        for (s, want) in [
            ("10.0.0.53:53", ("10.0.0.53", 53)),
            ("ns1.example.com", ("ns1.example.com", 53)),
            ("[::1]:5353", ("::1", 5353)),
            ("fd00::53", ("fd00::53", 53)),
        ] {
            let (h, p) = parse_server(s).expect(s);
            assert_eq!((h.as_str(), p), want);
        }
        for s in ["", "a b:53", "host:0", "host:99999", "http://x/", "[::1"] {
            let e = parse_server(s).expect_err(s).to_string();
            assert!(e.contains("rfc2136.server"), "{e}");
        }
    }

    #[test]
    fn names_become_absolute_in_the_zone() {
        let p = Provider::from_spec(
            &rfc("127.0.0.1:53", "ML.example.com", None),
            Some(SECRET.to_vec()),
        )
        .expect("provider");
        assert_eq!(p.fqdn("inference"), "inference.ml.example.com.");
        assert_eq!(p.fqdn("Other.Example.org."), "other.example.org.");
        assert_eq!(p.fqdn("@"), "ml.example.com.");
        assert_eq!(
            p.record_name("inference").expect("ok"),
            "inference.ml.example.com."
        );
        let e = p
            .record_name("api.other.org.")
            .expect_err("outside")
            .to_string();
        assert_eq!(
            e,
            "invalid record name `api.other.org.`: is not in zone ml.example.com."
        );
    }

    #[test]
    fn hostile_specs_are_refused_naming_the_field() {
        let secret = || Some(SECRET.to_vec());
        let e = Provider::from_spec(
            &rfc("127.0.0.1:53", "ml.example.com", Some("hmac-md5")),
            secret(),
        )
        .expect_err("md5");
        assert_eq!(
            e.to_string(),
            "invalid rfc2136.tsig.algorithm `hmac-md5`: is not supported (hmac-sha256, hmac-sha512 or hmac-sha1)"
        );
        let e = Provider::from_spec(&rfc("127.0.0.1:53", "ml example.com", None), secret())
            .expect_err("zone");
        assert!(
            e.to_string()
                .starts_with("invalid rfc2136.zone `ml example.com`"),
            "{e}"
        );
        let e = Provider::from_spec(
            &rfc("127.0.0.1:53", "ml.example.com", None),
            Some(b"%%%".to_vec()),
        )
        .expect_err("secret");
        assert_eq!(
            e.to_string(),
            "invalid rfc2136.tsig.secretRef (Secret dns-tsig key secret) `<redacted>`: is not base64"
        );
        let e = Provider::from_spec(&rfc("127.0.0.1:53", "ml.example.com", None), None)
            .expect_err("no secret");
        assert!(e.to_string().contains("rfc2136.tsig.secretRef"), "{e}");
        let e = Provider::from_spec(&DnsProvider::default(), None).expect_err("none");
        assert!(e.to_string().contains("names no provider"), "{e}");
        let both = DnsProvider {
            webhook: Some(DnsWebhookSpec {
                url: "http://x".into(),
                zone: None,
            }),
            ..rfc("127.0.0.1:53", "ml.example.com", None)
        };
        assert!(Provider::from_spec(&both, secret()).is_err());

        let p = Provider::from_spec(&rfc("127.0.0.1:53", "ml.example.com", None), secret())
            .expect("provider");
        let change = |fqdn: &str, t: RecordType, ttl: u32, target: &str| Switch {
            records: vec![Change {
                fqdn: fqdn.into(),
                record_type: t,
                ttl,
                target: target.into(),
            }],
        };
        let long = "a".repeat(64);
        for (switch, wanted) in [
            (change("in ference.ml.example.com.", RecordType::A, 60, "10.0.0.1"), "invalid record name `in ference.ml.example.com.`: contains ' '"),
            (change(&format!("{long}.ml.example.com."), RecordType::A, 60, "10.0.0.1"), "has a label of 64 characters"),
            (change("", RecordType::A, 60, "10.0.0.1"), "invalid record name ``: is not absolute"),
            (change("x..ml.example.com.", RecordType::A, 60, "10.0.0.1"), "has an empty label"),
            (change("inference.ml.example.com.", RecordType::A, 60, "lb.example.com"), "invalid target `lb.example.com`: of A record inference.ml.example.com. is not an IPv4 address"),
            (change("inference.ml.example.com.", RecordType::A, 60, "10.0.0.256"), "is not an IPv4 address"),
            (change("inference.ml.example.com.", RecordType::A, 0, "10.0.0.1"), "invalid ttl `0`"),
            (change("inference.ml.example.com.", RecordType::A, MAX_TTL + 1, "10.0.0.1"), "invalid ttl `2147483648`"),
            (change("inference.other.org.", RecordType::A, 60, "10.0.0.1"), "is not in zone ml.example.com."),
            (change("inference.ml.example.com.", RecordType::Cname, 60, "lb with space"), "invalid target `lb with space`"),
        ] {
            let e = p.check(&switch).expect_err(wanted).to_string();
            assert!(e.contains(wanted), "{wanted}: {e}");
        }
        assert!(p.check(&Switch::default()).is_err());
        assert!(RecordType::parse("AAAA").is_err());
        assert_eq!(
            RecordType::parse("cname").expect("cname"),
            RecordType::Cname
        );
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let p = Provider::from_spec(
            &rfc("127.0.0.1:53", "ml.example.com", None),
            Some(SECRET.to_vec()),
        )
        .expect("provider");
        let text = format!("{p:?}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!text.contains("115, 101, 99"), "{text}");
    }

    #[test]
    fn changes_group_into_rrsets() {
        let c = |fqdn: &str, target: &str| Change {
            fqdn: fqdn.into(),
            record_type: RecordType::A,
            ttl: 60,
            target: target.into(),
        };
        let s = Switch {
            records: vec![
                c("a.z.", "10.0.0.1"),
                c("b.z.", "10.0.0.2"),
                c("A.z.", "10.0.0.3"),
            ],
        };
        let g = group(&s);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].2.len(), 2);
    }
}
