//! TLS: the embedded cluster serves HTTPS only, with a small PKI of its own.
//!
//! The bearer token must be presented by every client, and kubectl (client-go's
//! `clientcmd`) only reads a kubeconfig's credentials for a TLS server: over plain HTTP
//! it silently sends no token at all. So, as kind and every real API server, the cluster
//! serves HTTPS also on 127.0.0.1; bound elsewhere (`ClusterOptions::bind_address`), the
//! token crossing a network is protected the same way:
//!
//! - a CA (`ca.crt`, `ca.key`) generated once per data directory and kept there, so that
//!   a kubeconfig or cluster Secret copied elsewhere keeps verifying across restarts (an
//!   in-memory cluster gets a new one per start in its temporary directory);
//! - a serving certificate (`server.crt`, `server.key`) issued by that CA at every start,
//!   naming 127.0.0.1, `localhost`, `::1`, the bind address and the configured hostnames.
//!
//! The CA certificate goes into the kubeconfig (`certificate-authority-data`), so kubectl
//! and kube-rs verify the server instead of skipping verification. Keys and certificates
//! are 0600 in the 0700 data directory ([`crate::files`]). Keys are ECDSA P-256 from
//! `rcgen` on ring (the provider kube-rs and reqwest already use here), with rustls' safe
//! defaults; HTTP/1.1 is the only protocol offered.
//!
//! Handshakes run in their own tasks with a deadline, so a client that opens a connection
//! and says nothing cannot stall the accept loop.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Files of the cluster's PKI, in its data directory.
pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";
pub const SERVER_CERT_FILE: &str = "server.crt";
pub const SERVER_KEY_FILE: &str = "server.key";

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Common name of the generated CA.
const CA_NAME: &str = "mooring-embedded-ca";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a usable key (delete ca.crt and ca.key to generate a new CA, then use the new kubeconfig): {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("{path} exists without {other}: delete both to generate a new CA")]
    HalfCa { path: PathBuf, other: PathBuf },
    #[error("cannot generate a certificate for {names:?}: {reason}")]
    Generate { names: Vec<String>, reason: String },
    #[error("cannot build the TLS server configuration: {0}")]
    Config(String),
}

/// The cluster's serving PKI: what clients must trust and what the server presents.
#[derive(Clone)]
pub struct Pki {
    /// PEM of the CA certificate, for kubeconfigs.
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

/// The CA's parameters. They are the same at every start, so the persisted CA key with
/// these parameters is the same issuer as the persisted `ca.crt`.
fn ca_params(year: i16) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, CA_NAME);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(i32::from(year) - 1, 1, 1);
    p.not_after = rcgen::date_time_ymd(i32::from(year) + 10, 1, 1);
    p
}

/// Load the CA of `dir` (generating it on first start) and issue a serving certificate
/// for `bind` and `hostnames`.
pub fn load_or_create(dir: &Path, bind: IpAddr, hostnames: &[String]) -> Result<Pki, TlsError> {
    let year = jiff::Zoned::now().year();
    let ca_cert = dir.join(CA_CERT_FILE);
    let ca_key = dir.join(CA_KEY_FILE);
    let read = |p: &Path| -> Result<Option<String>, TlsError> {
        match std::fs::read_to_string(p) {
            Ok(t) => {
                crate::files::make_private(p).map_err(|source| TlsError::Write {
                    path: p.to_path_buf(),
                    source,
                })?;
                Ok(Some(t))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(TlsError::Read {
                path: p.to_path_buf(),
                source,
            }),
        }
    };
    let write = |p: &Path, text: &str| {
        crate::files::write_private(p, text.as_bytes()).map_err(|source| TlsError::Write {
            path: p.to_path_buf(),
            source,
        })
    };
    let gen = |names: &[String], e: rcgen::Error| TlsError::Generate {
        names: names.to_vec(),
        reason: e.to_string(),
    };
    let (ca_pem, ca_key_pair) = match (read(&ca_cert)?, read(&ca_key)?) {
        (Some(cert), Some(key)) => {
            let kp = rcgen::KeyPair::from_pem(&key).map_err(|e| TlsError::BadKey {
                path: ca_key.clone(),
                reason: e.to_string(),
            })?;
            (cert, kp)
        }
        (None, None) => {
            let kp = rcgen::KeyPair::generate().map_err(|e| gen(&[CA_NAME.into()], e))?;
            let cert = ca_params(year)
                .self_signed(&kp)
                .map_err(|e| gen(&[CA_NAME.into()], e))?;
            write(&ca_key, &kp.serialize_pem())?;
            write(&ca_cert, &cert.pem())?;
            (cert.pem(), kp)
        }
        (Some(_), None) => {
            return Err(TlsError::HalfCa {
                path: ca_cert,
                other: ca_key,
            })
        }
        (None, Some(_)) => {
            return Err(TlsError::HalfCa {
                path: ca_key,
                other: ca_cert,
            })
        }
    };
    let issuer = rcgen::Issuer::new(ca_params(year), ca_key_pair);

    let mut names: Vec<String> = vec!["127.0.0.1".into(), "localhost".into(), "::1".into()];
    if !bind.is_unspecified() {
        names.push(bind.to_string());
    }
    names.extend(hostnames.iter().cloned());
    names.sort();
    names.dedup();
    let mut params = rcgen::CertificateParams::new(names.clone()).map_err(|e| gen(&names, e))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mooring-embedded-apiserver");
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = rcgen::date_time_ymd(i32::from(year) - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(i32::from(year) + 2, 1, 1);
    let key = rcgen::KeyPair::generate().map_err(|e| gen(&names, e))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| gen(&names, e))?;
    write(&dir.join(SERVER_KEY_FILE), &key.serialize_pem())?;
    write(&dir.join(SERVER_CERT_FILE), &cert.pem())?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Pki {
        ca_pem,
        server: Arc::new(config),
    })
}

/// A TLS server configuration from a PEM certificate chain and its PEM private key (PKCS#8,
/// PKCS#1 or SEC1), as an operator provides them (`mooring server --tls-cert --tls-key`,
/// a Kubernetes `kubernetes.io/tls` Secret): rustls' safe defaults, HTTP/1.1.
pub fn server_config_from_pem(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Config(format!("{}: {e}", cert_path.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Config(format!(
            "{}: no PEM certificate in it",
            cert_path.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        TlsError::Config(format!(
            "{}: not a PEM private key: {e}",
            key_path.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            TlsError::Config(format!(
                "{} and {}: {e}",
                cert_path.display(),
                key_path.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS listener for `axum::serve`: TCP connections are accepted at once and their
/// handshakes finished in separate tasks (with [`HANDSHAKE_TIMEOUT`]); only completed
/// ones are handed to the server.
pub struct TlsListener {
    local: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Serve TLS on `listener`, bound to `local`.
    pub fn new(
        listener: tokio::net::TcpListener,
        local: SocketAddr,
        config: Arc<rustls::ServerConfig>,
    ) -> Self {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let accept_loop = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // As axum's own loop: the error is per connection (or a full
                        // descriptor table); wait a little instead of spinning.
                        tracing::debug!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let handed = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = handed.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        TlsListener {
            local,
            ready,
            accept_loop,
        }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
