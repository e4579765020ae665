//! The DNS wire format (RFC 1035) as far as switching records needs it: a query, an
//! RFC 2136 UPDATE that replaces RRsets, TSIG (RFC 8945) signing of a request and
//! verification of its answer, and reading an answer's records.
//!
//! Hand-written rather than taken from `hickory-proto`: hickory's TSIG refuses
//! `hmac-sha1` (which ExternalDNS's rfc2136 provider and older BIND keys use) and the
//! crate adds ~40 s of compile time for the ~300 lines used here. The MACs are `ring`'s
//! HMACs (already in the tree through rustls), verified in constant time.
//!
//! Pure: bytes in, bytes out; the caller supplies the clock and the message id.

use ring::hmac;

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_TSIG: u16 = 250;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;
const OPCODE_UPDATE: u16 = 5;

/// Seconds of clock difference accepted between us and the server (RFC 8945's
/// recommended 300, as BIND's nsupdate).
pub const FUDGE: u16 = 300;

/// TSIG's MAC algorithms Mooring signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha1,
    HmacSha256,
    HmacSha512,
}

impl Algorithm {
    /// `hmac-sha256` (any case, with or without a final dot).
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha1" => Some(Algorithm::HmacSha1),
            "hmac-sha256" => Some(Algorithm::HmacSha256),
            "hmac-sha512" => Some(Algorithm::HmacSha512),
            _ => None,
        }
    }

    /// The algorithm's DNS name (without the final dot).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HmacSha1 => "hmac-sha1",
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            Algorithm::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Algorithm::HmacSha256 => hmac::HMAC_SHA256,
            Algorithm::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    fn mac_len(self) -> usize {
        self.ring().digest_algorithm().output_len()
    }
}

/// A TSIG key: its name (absolute, lower case, with the final dot), algorithm and secret.
#[derive(Clone)]
pub struct Key {
    pub name: String,
    pub algorithm: Algorithm,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A message that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct Malformed(pub String);

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u48(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes()[2..]);
}

/// An absolute name, uncompressed, lower case (the canonical form TSIG MACs cover).
/// The caller validated it (labels of 1 to 63 characters).
pub fn put_name(out: &mut Vec<u8>, name: &str) {
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
}

fn header(out: &mut Vec<u8>, id: u16, flags: u16, counts: [u16; 4]) {
    put_u16(out, id);
    put_u16(out, flags);
    for c in counts {
        put_u16(out, c);
    }
}

/// A query for `name`/`rtype` (no recursion wanted: the server is the zone's own).
pub fn query(id: u16, name: &str, rtype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    header(&mut out, id, 0, [1, 0, 0, 0]);
    put_name(&mut out, name);
    put_u16(&mut out, rtype);
    put_u16(&mut out, CLASS_IN);
    out
}

/// One record an update writes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    pub name: String,
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: Vec<u8>,
}

/// An UPDATE of `zone` that deletes the RRset of every record's name and type, then adds
/// the records: one message, applied atomically by the server (RFC 2136 §3.4).
pub fn update(id: u16, zone: &str, records: &[NewRecord]) -> Vec<u8> {
    let mut rrsets: Vec<(&str, u16)> = Vec::new();
    for r in records {
        if !rrsets
            .iter()
            .any(|(n, t)| n.eq_ignore_ascii_case(&r.name) && *t == r.rtype)
        {
            rrsets.push((&r.name, r.rtype));
        }
    }
    let updates = u16::try_from(rrsets.len() + records.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(128);
    header(&mut out, id, OPCODE_UPDATE << 11, [1, 0, updates, 0]);
    put_name(&mut out, zone);
    put_u16(&mut out, TYPE_SOA);
    put_u16(&mut out, CLASS_IN);
    // Delete an RRset: class ANY, TTL 0, no data (§2.5.2).
    for (name, rtype) in rrsets {
        put_name(&mut out, name);
        put_u16(&mut out, rtype);
        put_u16(&mut out, CLASS_ANY);
        put_u32(&mut out, 0);
        put_u16(&mut out, 0);
    }
    // Add to an RRset (§2.5.1).
    for r in records {
        put_name(&mut out, &r.name);
        put_u16(&mut out, r.rtype);
        put_u16(&mut out, CLASS_IN);
        put_u32(&mut out, r.ttl);
        put_u16(&mut out, r.rdata.len() as u16);
        out.extend_from_slice(&r.rdata);
    }
    out
}

/// The RDATA of an A record.
pub fn rdata_a(ip: std::net::Ipv4Addr) -> Vec<u8> {
    ip.octets().to_vec()
}

/// The RDATA of a CNAME record (an absolute name, uncompressed).
pub fn rdata_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_name(&mut out, name);
    out
}

/// The TSIG variables after the key name (RFC 8945 §4.3.3), for the MAC.
fn tsig_variables(out: &mut Vec<u8>, key: &Key, time: u64, fudge: u16, error: u16, other: &[u8]) {
    put_name(out, &key.name);
    put_u16(out, CLASS_ANY);
    put_u32(out, 0);
    put_name(out, key.algorithm.name());
    put_u48(out, time);
    put_u16(out, fudge);
    put_u16(out, error);
    put_u16(out, other.len() as u16);
    out.extend_from_slice(other);
}

/// Sign `msg` with `key` at `now` (seconds since the epoch): append the TSIG record and
/// count it. Returns the request's MAC, which the answer's MAC covers.
pub fn sign(msg: &mut Vec<u8>, key: &Key, now: u64) -> Vec<u8> {
    let mut data = msg.clone();
    tsig_variables(&mut data, key, now, FUDGE, 0, &[]);
    let k = hmac::Key::new(key.algorithm.ring(), &key.secret);
    let mac = hmac::sign(&k, &data).as_ref().to_vec();
    let id = [msg[0], msg[1]];
    put_name(msg, &key.name);
    put_u16(msg, TYPE_TSIG);
    put_u16(msg, CLASS_ANY);
    put_u32(msg, 0);
    let mut rdata = Vec::with_capacity(64 + mac.len());
    put_name(&mut rdata, key.algorithm.name());
    put_u48(&mut rdata, now);
    put_u16(&mut rdata, FUDGE);
    put_u16(&mut rdata, mac.len() as u16);
    rdata.extend_from_slice(&mac);
    rdata.extend_from_slice(&id);
    put_u16(&mut rdata, 0);
    put_u16(&mut rdata, 0);
    put_u16(msg, rdata.len() as u16);
    msg.extend_from_slice(&rdata);
    let arcount = u16::from_be_bytes([msg[10], msg[11]]).saturating_add(1);
    msg[10..12].copy_from_slice(&arcount.to_be_bytes());
    mac
}

/// A record of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Absolute, as written by the server (case kept), with the final dot.
    pub name: String,
    pub rtype: u16,
    /// An A record's address or a CNAME's target (absolute, with the final dot); empty
    /// for other types.
    pub value: String,
}

/// The TSIG record of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Tsig {
    pub key_name: String,
    pub algorithm: String,
    pub time: u64,
    pub fudge: u16,
    pub mac: Vec<u8>,
    pub original_id: u16,
    /// 16 BADSIG, 17 BADKEY, 18 BADTIME, 22 BADTRUNC.
    pub error: u16,
    pub other: Vec<u8>,
    /// Where the TSIG record starts in the message.
    start: usize,
}

/// A parsed answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub id: u16,
    pub is_response: bool,
    pub opcode: u16,
    pub truncated: bool,
    pub rcode: u16,
    pub answers: Vec<Answer>,
    pub tsig: Option<Tsig>,
}

/// An RCODE's (or TSIG error's) mnemonic.
pub fn rcode_name(rcode: u16) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        6 => "YXDOMAIN".into(),
        7 => "YXRRSET".into(),
        8 => "NXRRSET".into(),
        9 => "NOTAUTH".into(),
        10 => "NOTZONE".into(),
        16 => "BADSIG".into(),
        17 => "BADKEY".into(),
        18 => "BADTIME".into(),
        22 => "BADTRUNC".into(),
        n => format!("RCODE {n}"),
    }
}

struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Malformed> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.msg.len())
            .ok_or_else(|| Malformed(format!("truncated at byte {}", self.pos)))?;
        let s = &self.msg[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u48(&mut self) -> Result<u64, Malformed> {
        let b = self.take(6)?;
        Ok(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
    }

    /// A possibly compressed name; pointers must go backwards (no loops).
    fn name(&mut self) -> Result<String, Malformed> {
        let (name, next) = read_name(self.msg, self.pos)?;
        self.pos = next;
        Ok(name)
    }
}

/// The name at `pos` and the position after it (after the first pointer, if any).
fn read_name(msg: &[u8], mut pos: usize) -> Result<(String, usize), Malformed> {
    let mut name = String::new();
    let mut next = None;
    let mut wire_len = 0usize;
    loop {
        let len = *msg
            .get(pos)
            .ok_or_else(|| Malformed(format!("name truncated at byte {pos}")))?;
        match len {
            0 => {
                if name.is_empty() {
                    name.push('.');
                }
                return Ok((name, next.unwrap_or(pos + 1)));
            }
            l if l & 0xC0 == 0xC0 => {
                let lo = *msg
                    .get(pos + 1)
                    .ok_or_else(|| Malformed(format!("name pointer truncated at byte {pos}")))?;
                let target = (usize::from(l & 0x3F) << 8) | usize::from(lo);
                if target >= pos {
                    return Err(Malformed(format!(
                        "name pointer at byte {pos} does not point backwards"
                    )));
                }
                next.get_or_insert(pos + 2);
                pos = target;
            }
            l if l & 0xC0 != 0 => {
                return Err(Malformed(format!("unknown label type at byte {pos}")));
            }
            l => {
                let l = usize::from(l);
                wire_len += l + 1;
                if wire_len > 255 {
                    return Err(Malformed("name longer than 255 bytes".into()));
                }
                let label = msg
                    .get(pos + 1..pos + 1 + l)
                    .ok_or_else(|| Malformed(format!("label truncated at byte {pos}")))?;
                for b in label {
                    // Printable ASCII only: names are shown in messages.
                    if b.is_ascii_graphic() && *b != b'.' {
                        name.push(char::from(*b));
                    } else {
                        name.push_str(&format!("\\{b:03}"));
                    }
                }
                name.push('.');
                pos += 1 + l;
            }
        }
    }
}

/// Read an answer.
pub fn parse(msg: &[u8]) -> Result<Response, Malformed> {
    let mut r = Reader { msg, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    let qd = r.u16()?;
    let an = r.u16()?;
    let ns = r.u16()?;
    let ar = r.u16()?;
    for _ in 0..qd {
        r.name()?;
        r.take(4)?;
    }
    let mut answers = Vec::new();
    let mut tsig = None;
    let total = usize::from(an) + usize::from(ns) + usize::from(ar);
    for i in 0..total {
        let start = r.pos;
        let name = r.name()?;
        let rtype = r.u16()?;
        let _class = r.u16()?;
        let _ttl = r.u32()?;
        let len = usize::from(r.u16()?);
        let rdata_at = r.pos;
        r.take(len)?;
        if tsig.is_some() {
            return Err(Malformed("the TSIG record is not the last record".into()));
        }
        if rtype == TYPE_TSIG {
            if i + 1 != total {
                return Err(Malformed("the TSIG record is not the last record".into()));
            }
            let mut d = Reader {
                msg: &msg[..rdata_at + len],
                pos: rdata_at,
            };
            let algorithm = d.name()?;
            let time = d.u48()?;
            let fudge = d.u16()?;
            let mac_len = usize::from(d.u16()?);
            let mac = d.take(mac_len)?.to_vec();
            let original_id = d.u16()?;
            let error = d.u16()?;
            let other_len = usize::from(d.u16()?);
            let other = d.take(other_len)?.to_vec();
            tsig = Some(Tsig {
                key_name: name,
                algorithm,
                time,
                fudge,
                mac,
                original_id,
                error,
                other,
                start,
            });
            continue;
        }
        if i < usize::from(an) {
            let value = match rtype {
                TYPE_A if len == 4 => {
                    let b = &msg[rdata_at..rdata_at + 4];
                    std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()
                }
                TYPE_CNAME => read_name(&msg[..rdata_at + len], rdata_at)?.0,
                _ => String::new(),
            };
            answers.push(Answer { name, rtype, value });
        }
    }
    Ok(Response {
        id,
        is_response: flags & 0x8000 != 0,
        opcode: (flags >> 11) & 0xF,
        truncated: flags & 0x0200 != 0,
        rcode: flags & 0xF,
        answers,
        tsig,
    })
}

/// Why an answer's TSIG does not verify.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VerifyError {
    #[error("the answer is not signed")]
    Unsigned,
    #[error("the answer is signed with key {key} ({algorithm}), not ours")]
    OtherKey { key: String, algorithm: String },
    #[error("the MAC is {got} bytes, not the {want} of the algorithm")]
    Truncated { got: usize, want: usize },
    #[error("the MAC does not match")]
    BadMac,
    #[error("it was signed at {time}, more than {fudge}s from our clock ({now})")]
    Time { time: u64, fudge: u16, now: u64 },
}

/// Verify the TSIG of the answer `msg` (parsed as `resp`) to a request signed with MAC
/// `request_mac`, at `now` (RFC 8945 §5.3).
pub fn verify(
    msg: &[u8],
    resp: &Response,
    key: &Key,
    request_mac: &[u8],
    now: u64,
) -> Result<(), VerifyError> {
    let t = resp.tsig.as_ref().ok_or(VerifyError::Unsigned)?;
    if !t
        .key_name
        .trim_end_matches('.')
        .eq_ignore_ascii_case(key.name.trim_end_matches('.'))
        || Algorithm::parse(&t.algorithm) != Some(key.algorithm)
    {
        return Err(VerifyError::OtherKey {
            key: t.key_name.clone(),
            algorithm: t.algorithm.clone(),
        });
    }
    if t.mac.len() != key.algorithm.mac_len() {
        return Err(VerifyError::Truncated {
            got: t.mac.len(),
            want: key.algorithm.mac_len(),
        });
    }
    let mut data = Vec::with_capacity(msg.len() + 128);
    put_u16(&mut data, request_mac.len() as u16);
    data.extend_from_slice(request_mac);
    let unsigned_start = data.len();
    data.extend_from_slice(&msg[..t.start]);
    // The message as it was before the TSIG was added: its original id, one record less.
    data[unsigned_start..unsigned_start + 2].copy_from_slice(&t.original_id.to_be_bytes());
    let arcount = u16::from_be_bytes([msg[10], msg[11]]).saturating_sub(1);
    data[unsigned_start + 10..unsigned_start + 12].copy_from_slice(&arcount.to_be_bytes());
    tsig_variables(&mut data, key, t.time, t.fudge, t.error, &t.other);
    let k = hmac::Key::new(key.algorithm.ring(), &key.secret);
    hmac::verify(&k, &data, &t.mac).map_err(|_| VerifyError::BadMac)?;
    if now.abs_diff(t.time) > u64::from(t.fudge) {
        return Err(VerifyError::Time {
            time: t.time,
            fudge: t.fudge,
            now,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(alg: Algorithm) -> Key {
        Key {
            name: "mooring.".into(),
            algorithm: alg,
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
        }
    }

    /// A server's answer to `req`: the same header and question, QR set, signed like
    /// BIND signs answers (the request's MAC first).
    fn answer(req: &[u8], request_mac: &[u8], key: &Key, time: u64, rcode: u16) -> Vec<u8> {
        let parsed_q_end = {
            let mut r = Reader { msg: req, pos: 12 };
            r.name().expect("name");
            r.take(4).expect("type class");
            r.pos
        };
        let mut msg = req[..parsed_q_end].to_vec();
        let flags = u16::from_be_bytes([req[2], req[3]]) | 0x8000 | rcode;
        msg[2..4].copy_from_slice(&flags.to_be_bytes());
        for b in &mut msg[4..12] {
            *b = 0;
        }
        msg[5] = 1;
        let mut data = Vec::new();
        put_u16(&mut data, request_mac.len() as u16);
        data.extend_from_slice(request_mac);
        data.extend_from_slice(&msg);
        tsig_variables(&mut data, key, time, FUDGE, 0, &[]);
        let k = hmac::Key::new(key.algorithm.ring(), &key.secret);
        let mac = hmac::sign(&k, &data).as_ref().to_vec();
        put_name(&mut msg, &key.name);
        put_u16(&mut msg, TYPE_TSIG);
        put_u16(&mut msg, CLASS_ANY);
        put_u32(&mut msg, 0);
        let mut rdata = Vec::new();
        put_name(&mut rdata, key.algorithm.name());
        put_u48(&mut rdata, time);
        put_u16(&mut rdata, FUDGE);
        put_u16(&mut rdata, mac.len() as u16);
        rdata.extend_from_slice(&mac);
        rdata.extend_from_slice(&req[0..2]);
        put_u16(&mut rdata, 0);
        put_u16(&mut rdata, 0);
        put_u16(&mut msg, rdata.len() as u16);
        msg.extend_from_slice(&rdata);
        msg[11] = 1;
        msg
    }

    #[test]
    fn an_update_deletes_each_rrset_once_then_adds_every_record() {
        let ip = |s: &str| rdata_a(s.parse().expect("ip"));
        let msg = update(
            7,
            "ml.example.com.",
            &[
                NewRecord {
                    name: "inference.ml.example.com.".into(),
                    rtype: TYPE_A,
                    ttl: 60,
                    rdata: ip("10.0.0.1"),
                },
                NewRecord {
                    name: "INFERENCE.ml.example.com.".into(),
                    rtype: TYPE_A,
                    ttl: 60,
                    rdata: ip("10.0.0.2"),
                },
            ],
        );
        // id 7, opcode UPDATE, one zone, no prerequisites, 1 delete + 2 adds.
        assert_eq!(&msg[..12], &[0, 7, 0x28, 0, 0, 1, 0, 0, 0, 3, 0, 0]);
        // Names are written in lower case.
        assert!(!msg.windows(9).any(|w| w == b"INFERENCE"));
    }

    #[test]
    fn every_algorithm_signs_and_verifies_and_a_changed_byte_fails() {
        for alg in [
            Algorithm::HmacSha1,
            Algorithm::HmacSha256,
            Algorithm::HmacSha512,
        ] {
            let k = key(alg);
            let mut req = query(42, "inference.ml.example.com.", TYPE_A);
            let mac = sign(&mut req, &k, 1_000_000);
            assert_eq!(mac.len(), alg.mac_len());
            assert_eq!(u16::from_be_bytes([req[10], req[11]]), 1, "TSIG counted");
            let ans = answer(&req, &mac, &k, 1_000_010, 0);
            let parsed = parse(&ans).expect("parse");
            assert_eq!(parsed.id, 42);
            verify(&ans, &parsed, &k, &mac, 1_000_000).expect("verifies");
            // Another request MAC (a replayed answer) does not verify.
            assert_eq!(
                verify(&ans, &parsed, &k, &[0; 32], 1_000_000),
                Err(VerifyError::BadMac)
            );
            // Nor a changed answer.
            let mut bad = ans.clone();
            bad[3] ^= 0x05;
            let p = parse(&bad).expect("parse");
            assert_eq!(
                verify(&bad, &p, &k, &mac, 1_000_000),
                Err(VerifyError::BadMac)
            );
            // Nor one signed long ago.
            assert!(matches!(
                verify(&ans, &parsed, &k, &mac, 1_000_000 + 3600),
                Err(VerifyError::Time { .. })
            ));
            // Nor another key's.
            let other = Key {
                name: "other.".into(),
                ..k.clone()
            };
            assert!(matches!(
                verify(&ans, &parsed, &other, &mac, 1_000_000),
                Err(VerifyError::OtherKey { .. })
            ));
        }
    }

    #[test]
    fn an_unsigned_answer_does_not_verify() {
        let k = key(Algorithm::HmacSha256);
        let mut req = query(1, "a.example.", TYPE_A);
        let mac = sign(&mut req, &k, 5);
        let mut ans = req[..12 + 11 + 4].to_vec();
        ans[2] |= 0x80;
        ans[11] = 0;
        let p = parse(&ans).expect("parse");
        assert_eq!(verify(&ans, &p, &k, &mac, 5), Err(VerifyError::Unsigned));
    }

    #[test]
    fn hostile_answers_are_malformed_not_panics() {
        // A pointer to itself, a pointer forwards, truncated headers and records.
        let mut looped = vec![0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        looped.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        assert!(parse(&looped).is_err());
        let mut forward = vec![0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        forward.extend_from_slice(&[0xC0, 40, 0, 1, 0, 1]);
        assert!(parse(&forward).is_err());
        assert!(parse(&[0, 1, 0x80]).is_err());
        let mut short = vec![0, 1, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        short.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 200, 1, 2]);
        assert!(parse(&short).is_err());
        // Every prefix of a real answer fails cleanly.
        let k = key(Algorithm::HmacSha256);
        let mut req = query(9, "inference.ml.example.com.", TYPE_A);
        let mac = sign(&mut req, &k, 100);
        let ans = answer(&req, &mac, &k, 100, 0);
        for n in 0..ans.len() {
            assert!(parse(&ans[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn compressed_answers_are_read() {
        // Header, question inference.ml.example.com A, answer "ptr to question" A 10.1.2.3,
        // answer CNAME whose target is "lb" + ptr.
        let mut msg = vec![0, 5, 0x84, 0, 0, 1, 0, 2, 0, 0, 0, 0];
        put_name(&mut msg, "inference.ml.example.com.");
        msg.extend_from_slice(&[0, 1, 0, 1]);
        msg.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 1, 2, 3]);
        msg.extend_from_slice(&[
            0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 5, 2, b'l', b'b', 0xC0, 22,
        ]);
        let p = parse(&msg).expect("parse");
        assert_eq!(p.answers[0].name, "inference.ml.example.com.");
        assert_eq!(p.answers[0].value, "10.1.2.3");
        assert_eq!(p.answers[1].value, "lb.ml.example.com.");
    }
}
