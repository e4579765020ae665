//! DNS switching for failovers: RFC 2136 dynamic update with TSIG, and the ExternalDNS
//! webhook protocol. (Slice in progress: placeholder signatures.)

use crate::outbound::Outbound;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{0}")]
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    A,
    Cname,
}

impl RecordType {
    pub fn parse(s: &str) -> Result<RecordType, DnsError> {
        match s {
            "A" => Ok(RecordType::A),
            "CNAME" => Ok(RecordType::Cname),
            other => Err(DnsError::Other(format!("record type {other:?}"))),
        }
    }
}

pub struct Change {
    pub fqdn: String,
    pub record_type: RecordType,
    pub ttl: u32,
    pub target: String,
}

pub struct Switch {
    pub records: Vec<Change>,
}

pub enum Provider {
    Unsupported,
}

impl Provider {
    pub fn from_spec(
        _spec: &mooring_core::dr::DnsProvider,
        _tsig_secret: Option<Vec<u8>>,
    ) -> Result<Provider, DnsError> {
        Ok(Provider::Unsupported)
    }

    pub fn fqdn(&self, name: &str) -> String {
        name.to_string()
    }

    pub async fn current(
        &self,
        _outbound: &Outbound,
        _fqdn: &str,
        _record_type: RecordType,
    ) -> Result<Vec<String>, DnsError> {
        Err(DnsError::Other("not yet".into()))
    }

    pub async fn apply(&self, _outbound: &Outbound, _switch: &Switch) -> Result<(), DnsError> {
        Err(DnsError::Other("not yet".into()))
    }
}
