//! `mooring server`: the REST API (`/api/v1`), the Git and registry webhooks
//! (`/api/webhook`, `/api/webhook/registry`), `/metrics`, `/healthz` and `/readyz`, as
//! Argo CD's argocd-server, against a management cluster from a kubeconfig or the
//! in-cluster service account.
//!
//! Standalone, the server has no controller in its process: a webhook push sets Argo
//! CD's refresh annotations on what it concerns and the controller acts on them
//! (`mooring_server::refresh`); `/metrics` serves the server's own series (the
//! controller's are on the controller's `--metrics-address`). In `mooring up` the same
//! [`router`] is built with the controller of the process ([`mooring_server::Backend`]).
//!
//! `--tls-cert` and `--tls-key` (PEM) make it serve HTTPS only (rustls, HTTP/1.1); without
//! them it serves plain HTTP, for a TLS-terminating Ingress or a service mesh in front.

use super::ClusterArgs;
use anyhow::Context as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub address: std::net::IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// PEM certificate chain to serve HTTPS with (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// `/metrics` requires an API token (401 without one).
    #[arg(long)]
    pub metrics_auth: bool,
    /// Secret of the Git webhooks (GitHub's HMAC secret, GitLab's token) and the registry
    /// webhook's bearer token; the keys of `mooring-secret` win over it.
    #[arg(long, env = "MOORING_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
}

/// Every endpoint of the server: REST API, webhooks, metrics, probes. What `mooring
/// server` and `mooring up` both serve.
pub fn router(
    backend: mooring_server::Backend,
    client: mooring_k8s::kube::Client,
    control_plane: mooring_engine::project::ControlPlane,
    webhook_secret: Option<String>,
    metrics_auth: bool,
    secure_cookie: bool,
    offline: Option<mooring_controller::ControllerOptions>,
) -> axum::Router {
    let http_options = mooring_server::HttpOptions {
        webhook: mooring_server::WebhookSecrets {
            github: webhook_secret.clone(),
            gitlab: webhook_secret.clone(),
            registry: webhook_secret,
        },
        metrics_auth,
    };
    let (hooks, live) = match backend {
        mooring_server::Backend::InProcess(ctx) => (
            mooring_server::router(ctx.clone(), http_options),
            Some(mooring_server::api::live::Live::controller(ctx)),
        ),
        mooring_server::Backend::Standalone(_) => (
            mooring_server::standalone_router(client.clone(), control_plane.clone(), http_options),
            offline.map(|o| mooring_server::api::live::Live::offline(client.clone(), o)),
        ),
    };
    let ready_client = client.clone();
    let probes = super::probes(move || {
        let client = ready_client.clone();
        async move { super::management_ready(&client).await }
    });
    hooks.merge(probes).merge(mooring_server::api::router(
        client,
        mooring_server::api::ApiOptions {
            control_plane,
            live,
            secure_cookie,
            ..Default::default()
        },
    ))
}

/// `mooring server`: serve until SIGTERM or SIGINT (exit 0).
pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    // Read the certificate first: a bad one is a usage error before anything listens.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            mooring_apiserver::tls::server_config_from_pem(cert, key)
                .context("loading --tls-cert / --tls-key")?,
        ),
        _ => None,
    };
    let connected = super::connect(&args.cluster).await?;
    let app = router(
        mooring_server::Backend::Standalone(mooring_server::refresh::Annotator::new(
            connected.client.clone(),
            connected.control_plane.clone(),
        )),
        connected.client.clone(),
        connected.control_plane.clone(),
        args.webhook_secret.clone(),
        args.metrics_auth,
        tls.is_some(),
        // The views render as the controller does, with its repository settings.
        Some(
            crate::connect::offline_options(
                &connected.client,
                &connected.control_plane,
                "mooring-server-repos",
            )
            .await,
        ),
    );
    let listener = tokio::net::TcpListener::bind((args.address, args.port))
        .await
        .with_context(|| format!("listening on {}:{}", args.address, args.port))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "mooring server: {scheme}://{local} (web UI at /, /api/v1, /api/webhook, /metrics, /healthz, /readyz; control plane {})",
        connected.control_plane.namespace
    );
    if let Err(why) = super::management_ready(&connected.client).await {
        tracing::warn!("{why}");
    }
    let served = match tls {
        Some(config) => {
            let listener = mooring_apiserver::tls::TlsListener::new(listener, local, config);
            // The API's per-client limits read the peer as `ConnectInfo<SocketAddr>`.
            let app = app.layer(axum::middleware::from_fn(peer_address));
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<TlsPeer>(),
            )
            .with_graceful_shutdown(super::shutdown_signal())
            .await
        }
        None => {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(super::shutdown_signal())
            .await
        }
    };
    served.context("serving")?;
    println!("mooring server: stopped");
    Ok(ExitCode::SUCCESS)
}

/// The peer of a TLS connection (axum knows the plain TCP listener's only).
#[derive(Clone, Copy, Debug)]
struct TlsPeer(std::net::SocketAddr);

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, mooring_apiserver::tls::TlsListener>,
    > for TlsPeer
{
    fn connect_info(
        stream: axum::serve::IncomingStream<'_, mooring_apiserver::tls::TlsListener>,
    ) -> Self {
        TlsPeer(*stream.remote_addr())
    }
}

/// Give a TLS request its peer as `ConnectInfo<SocketAddr>`, as a plain one has.
async fn peer_address(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::extract::ConnectInfo;
    if let Some(ConnectInfo(TlsPeer(addr))) =
        req.extensions().get::<ConnectInfo<TlsPeer>>().copied()
    {
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    next.run(req).await
}
