//! `mooring app rollback`: the verified rollback of `mooring_controller::app_rollback`,
//! printed for an operator (or as JSON), with the destination's pods, the Event on the
//! Application and the optional monitoring webhook.

use crate::output::{emit, print_table, Output};
use mooring_controller::app_rollback::{self, RollbackReport, RollbackRequest};
use mooring_core::app::ApplicationDestination;
use mooring_k8s::kube;
use serde_json::json;
use std::process::ExitCode;

pub async fn run(
    m: &crate::connect::Management,
    req: RollbackRequest,
    webhook: Option<&str>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let report = app_rollback::run(&m.client, &req, &mut |line: &str| eprintln!("{line}")).await?;
    let pods = match destination_client(m, &report.destination).await {
        Ok(c) => app_rollback::pod_table(&c, report.destination_namespace()).await,
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = app_rollback::record_event(&m.client, &report).await {
        eprintln!("warning: {e}");
    }
    let body = app_rollback::event_body(&report);
    let delivered = match webhook {
        Some(url) => {
            let outbound = mooring_controller::outbound::Outbound::new(m.namespace());
            outbound.load_config(m.client.clone()).await;
            Some(app_rollback::post_event(outbound, url, &report).await)
        }
        None => None,
    };
    if output == Output::Table {
        print_report(&report, &pods);
        if let Some(d) = &delivered {
            match d {
                Ok(status) if (200..300).contains(status) => {
                    println!("Webhook:    {} sent (HTTP {status})", report.event_name())
                }
                Ok(status) => eprintln!("warning: the webhook answered HTTP {status}"),
                Err(e) => eprintln!("warning: the webhook was not reached: {e}"),
            }
        }
    } else {
        let v = json!({
            "application": report.application,
            "fromRevision": report.from_revision,
            "toRevision": report.to_revision,
            "succeeded": report.succeeded,
            "problems": report.problems,
            "pods": pods.as_ref().ok(),
            "event": body,
            "webhook": delivered.map(|d| match d {
                Ok(status) => json!({"status": status}),
                Err(e) => json!({"error": e}),
            }),
        });
        emit(&v, output)?;
    }
    Ok(if report.succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_report(r: &RollbackReport, pods: &Result<Vec<Vec<String>>, String>) {
    println!("Application: {}", r.application);
    println!("From:        {}", r.from_revision);
    println!("To:          {}", r.to_revision);
    if r.succeeded {
        println!(
            "Result:      rolled back: Synced and Healthy at {}",
            r.to_revision
        );
    } else {
        println!("Result:      rollback FAILED");
        for p in &r.problems {
            println!("  - {p}");
        }
    }
    println!();
    match pods {
        Ok(rows) if rows.len() > 1 => {
            println!("Pods in {}:", r.destination_namespace());
            print_table(rows);
        }
        Ok(_) => println!("No pods in {}.", r.destination_namespace()),
        Err(e) => eprintln!("warning: {e}"),
    }
}

/// A client for the app's destination cluster: the management cluster, or the registered
/// cluster Secret whose server (or name) the destination names.
async fn destination_client(
    m: &crate::connect::Management,
    d: &ApplicationDestination,
) -> anyhow::Result<kube::Client> {
    if d.is_in_cluster() {
        return Ok(m.client.clone());
    }
    for s in crate::connect::cluster_secrets(m).await? {
        let v = serde_json::to_value(&s)?;
        if let Ok(e) = mooring_k8s::registry::parse_secret(&v) {
            if d.server.as_deref() == Some(e.server.as_str())
                || d.name.as_deref() == Some(e.name.as_str())
            {
                return Ok(mooring_k8s::registry::client(&e).await?);
            }
        }
    }
    anyhow::bail!(
        "the destination cluster {} is not registered (see `mooring cluster list`)",
        d.server
            .as_deref()
            .or(d.name.as_deref())
            .unwrap_or_default()
    )
}
