//! `mooring up`'s disaster-recovery part: the plans and Applications in REPO's `dr/`
//! directory are registered when the fleet (`--clusters`) has the regions they name, so
//! `mooring up --clusters 'us-west-2:region=us-west-2;eu-west-1:region=eu-west-1'` on the
//! example starts the primary and standby regions, their Applications and the plan, and
//! `mooring dr drill ml-platform` runs at once. Without those clusters `dr/` is skipped,
//! with the `--clusters` value that would register it.
//!
//! The plan's checks reach the regions' load-balancer addresses (loopback ranges, one per
//! embedded cluster), which the outbound allowlist refuses by default: when the admin has
//! not written `outbound.allow`, `up` opens exactly those ranges (and says so).

use mooring_engine::project::ControlPlane;
use mooring_k8s::kube;
use serde_json::{json, Value};
use std::path::Path;

/// What `up` registered, skipped and wants to say.
#[derive(Default)]
pub struct Outcome {
    pub registered: Vec<(String, String)>,
    pub skipped: Vec<(String, String)>,
    pub notes: Vec<String>,
    /// The local name server of the plans' DNS records, kept running while `up` runs.
    pub dns: Option<mooring_controller::dr::local_dns::LocalBind>,
}

/// The objects of `dr/*.yaml`.
fn documents(repo: &Path) -> Result<Vec<(String, Value)>, (String, String)> {
    let dir = repo.join("dr");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = format!("dr/{}", f.file_name().unwrap_or_default().to_string_lossy());
        let docs = std::fs::read_to_string(&f)
            .map_err(|e| e.to_string())
            .and_then(|t| mooring_core::yaml::parse_all(&t).map_err(|e| e.to_string()))
            .map_err(|e| (name.clone(), format!("does not parse: {e}")))?;
        out.extend(docs.into_iter().map(|d| (name.clone(), d)));
    }
    Ok(out)
}

/// Register `dr/` when the fleet has every region its plans name.
pub async fn register(
    client: &kube::Client,
    control_plane: &ControlPlane,
    repo: &Path,
    fleet: &[String],
) -> Outcome {
    let mut out = Outcome::default();
    let docs = match documents(repo) {
        Ok(d) => d,
        Err(skip) => {
            out.skipped.push(skip);
            return out;
        }
    };
    let plans: Vec<&(String, Value)> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == mooring_core::dr::KIND)
        .collect();
    if plans.is_empty() {
        return out;
    }
    let mut needed: Vec<String> = Vec::new();
    for (_, p) in &plans {
        for side in ["primary", "standby"] {
            if let Some(c) = p
                .pointer(&format!("/spec/{side}/cluster"))
                .and_then(Value::as_str)
            {
                if !needed.iter().any(|n| n == c) {
                    needed.push(c.to_string());
                }
            }
        }
    }
    let missing: Vec<&String> = needed.iter().filter(|n| !fleet.contains(n)).collect();
    if !missing.is_empty() {
        let value: Vec<String> = needed.iter().map(|n| format!("{n}:region={n}")).collect();
        out.skipped.push((
            "dr/ (disaster recovery)".into(),
            format!(
                "its plans need the clusters {}: start with --clusters '{}'",
                needed.join(", "),
                value.join(";")
            ),
        ));
        return out;
    }
    // Applications first, then the plans that name them (their name server started here
    // when it is a loopback address: the example's records live in a local BIND).
    let mut prepared: Vec<(String, Value)> = Vec::new();
    for (file, p) in &plans {
        let mut p = p.clone();
        local_dns(client, control_plane, &mut p, &mut out).await;
        prepared.push((file.clone(), p));
    }
    let mut ordered: Vec<(&String, &Value)> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == "Application")
        .map(|(f, d)| (f, d))
        .collect();
    ordered.extend(prepared.iter().map(|(f, d)| (f, d)));
    for (file, obj) in ordered {
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        match crate::registration::register(client, control_plane, obj).await {
            Ok(id) => out.registered.push((kind, id)),
            Err(why) => out.skipped.push((
                format!(
                    "{kind} {} ({file})",
                    obj.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                ),
                why,
            )),
        }
    }
    out.notes.push(format!(
        "try: mooring dr status {0}; mooring dr validate {0}; mooring dr drill {0}",
        plans[0]
            .1
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("PLAN")
    ));
    out
}

/// A plan whose `rfc2136.server` is `127.0.0.1:PORT`: start BIND there for its zone and
/// write the TSIG key into the Secret the plan names; without BIND, leave the plan's DNS
/// step out (said in a note, not silently).
async fn local_dns(
    client: &kube::Client,
    control_plane: &ControlPlane,
    plan: &mut Value,
    out: &mut Outcome,
) {
    use mooring_controller::dr::local_dns::LocalBind;
    let Some(rfc) = plan
        .pointer("/spec/activation/dns/provider/rfc2136")
        .cloned()
    else {
        return;
    };
    let text = |p: &str, default: &'static str| -> String {
        rfc.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let Some(port) = text("/server", "")
        .strip_prefix("127.0.0.1:")
        .and_then(|p| p.parse::<u16>().ok())
    else {
        return;
    };
    let zone = text("/zone", "");
    let started = match LocalBind::binary() {
        Some(_) => LocalBind::start(&zone, Some(port), &[]).map_err(|e| e.to_string()),
        None => Err("BIND is not installed (apt-get install bind9 bind9-dnsutils)".to_string()),
    };
    let bind = match started {
        Ok(b) => b,
        Err(e) => {
            if let Some(a) = plan
                .pointer_mut("/spec/activation")
                .and_then(Value::as_object_mut)
            {
                a.remove("dns");
            }
            out.notes
                .push(format!("DNS switching left out of the plan: {e}"));
            return;
        }
    };
    let (key_name, algorithm) = (
        text("/tsig/keyName", "mooring"),
        text("/tsig/algorithm", "hmac-sha256"),
    );
    let (secret_name, secret_key) = (
        text("/tsig/secretRef/name", "dr-dns-tsig"),
        text("/tsig/secretRef/key", "secret"),
    );
    let key = bind.key(&algorithm);
    if key.name != key_name {
        out.notes.push(format!(
            "the local BIND's {algorithm} key is {:?}, the plan names {key_name:?}: BIND will refuse its updates",
            key.name
        ));
    }
    let ns = &control_plane.namespace;
    let secrets: kube::Api<mooring_k8s::k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), ns);
    let written = secrets
        .patch(
            &secret_name,
            &kube::api::PatchParams::apply("mooring-up").force(),
            &kube::api::Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": secret_name, "namespace": ns},
                "stringData": {secret_key: key.secret}})),
        )
        .await;
    match written {
        Ok(_) => out.notes.push(format!(
            "BIND serves {zone} on {} for the plan's records (dig @127.0.0.1 -p {port} inference.{zone})",
            bind.server()
        )),
        Err(e) => out
            .notes
            .push(format!("writing the TSIG Secret {secret_name}: {e}")),
    }
    out.dns = Some(bind);
}

/// Marks an `outbound.allow` that `mooring up` wrote (not the admin), so the next `up`
/// may replace it (a local server's port may have changed).
const WRITTEN_BY_UP: &str = "mooring.dev/outbound-allow-written-by";

/// Open the outbound allowlist to `entries` (the fleet's load-balancer ranges, a local
/// DNS server, the local registry: `why` says what needs them) unless the admin has
/// written one; returns what was done, for `up`'s summary.
pub async fn open_outbound(
    client: &kube::Client,
    namespace: &str,
    entries: &[String],
    why: &str,
) -> String {
    use mooring_k8s::k8s_openapi::api::core::v1::ConfigMap;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), namespace);
    let key = mooring_engine::outbound::CONFIG_KEY;
    let current = api
        .get_opt(crate::connect::SETTINGS_CONFIGMAP)
        .await
        .ok()
        .flatten();
    let by_up = current
        .as_ref()
        .and_then(|c| c.metadata.annotations.as_ref())
        .is_some_and(|a| a.contains_key(WRITTEN_BY_UP));
    let existing = current
        .and_then(|c| c.data)
        .and_then(|d| d.get(key).cloned());
    if let (Some(text), false) = (existing, by_up) {
        return format!(
            "outbound.allow is set by the admin ({} entries); {why} need {} open",
            text.lines().count(),
            entries.join(", ")
        );
    }
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": crate::connect::SETTINGS_CONFIGMAP, "namespace": namespace,
                     "annotations": {WRITTEN_BY_UP: "mooring up"}},
        "data": {key: entries.join("\n")},
    });
    match api
        .patch(
            crate::connect::SETTINGS_CONFIGMAP,
            // Its own field manager: an apply by `mooring-up` naming only this key would
            // drop the settings `up` applied before (repository aliases, Prometheus).
            &kube::api::PatchParams::apply("mooring-up-dr").force(),
            &kube::api::Patch::Apply(&cm),
        )
        .await
    {
        Ok(_) => format!("outbound.allow opened to {} for {why}", entries.join(", ")),
        Err(e) => format!(
            "could not open outbound.allow to {}: {e}",
            entries.join(", ")
        ),
    }
}
