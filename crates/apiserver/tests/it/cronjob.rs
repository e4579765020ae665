//! The CronJob controller on the simulation clock (speed 20: a minute is 3 s).

use crate::kubectl::ok;
use crate::support::{client, eventually, send, start};
use serde_json::{json, Value};

const CRONJOBS: &str = "/apis/batch/v1/namespaces/demo/cronjobs";

fn cronjob(name: &str, schedule: &str, spec: Value, run_seconds: &str) -> Value {
    let mut cj = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {"schedule": schedule,
            "jobTemplate": {"metadata": {"labels": {"job": name}},
                "spec": {"template": {"metadata": {"annotations": {"sim.mooring.dev/run-seconds": run_seconds}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}}});
    if let (Some(s), Some(extra)) = (cj["spec"].as_object_mut(), spec.as_object()) {
        s.extend(extra.clone());
    }
    cj
}

async fn jobs_of(kc: &mooring_k8s::kube::Client, name: &str) -> Vec<Value> {
    let (_, list) = send(
        kc,
        "GET",
        &format!("/apis/batch/v1/namespaces/demo/jobs?labelSelector=job%3D{name}"),
        None,
    )
    .await;
    list["items"].as_array().cloned().unwrap_or_default()
}

async fn event_messages(kc: &mooring_k8s::kube::Client, name: &str, reason: &str) -> Vec<String> {
    let (_, events) = send(
        kc,
        "GET",
        &format!("/api/v1/namespaces/demo/events?fieldSelector=involvedObject.name%3D{name}"),
        None,
    )
    .await;
    events["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["reason"] == reason)
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

fn complete(job: &Value) -> bool {
    job["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Complete" && c["status"] == "True")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_every_minute_creates_jobs_that_complete_and_history_limits_prune_them() {
    let c = start(None).await;
    let kc = client(&c).await;
    ok(
        &c,
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n"),
    )
    .await;
    let (code, v) = send(
        &kc,
        "POST",
        CRONJOBS,
        Some(cronjob(
            "tick",
            "* * * * *",
            json!({"successfulJobsHistoryLimit": 2}),
            "1",
        )),
    )
    .await;
    assert_eq!(code, 200, "{v}");

    // Jobs complete, and more than the limit were created: the oldest were deleted.
    eventually(60, "four Jobs created and two pruned", || async {
        let created = event_messages(&kc, "tick", "SuccessfulCreate").await.len();
        let deleted = event_messages(&kc, "tick", "SuccessfulDelete").await.len();
        (created >= 4 && deleted >= 2).then_some(())
    })
    .await;
    let jobs = jobs_of(&kc, "tick").await;
    let done = jobs.iter().filter(|j| complete(j)).count();
    assert!(
        done <= 2,
        "history limit 2, found {done} completed: {jobs:?}"
    );
    let job = jobs.iter().find(|j| complete(j)).expect("a completed Job");
    let name = job["metadata"]["name"].as_str().expect("name");
    let minutes: i64 = name
        .strip_prefix("tick-")
        .and_then(|m| m.parse().ok())
        .expect("tick-{minutes}");
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(job["metadata"]["ownerReferences"][0]["controller"], true);
    let scheduled = job["metadata"]["annotations"]
        ["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        .as_str()
        .expect("scheduled timestamp");
    let t = mooring_core::time::parse(scheduled).expect("RFC 3339");
    assert_eq!(t.as_second(), minutes * 60);

    let (_, cj) = send(&kc, "GET", &format!("{CRONJOBS}/tick"), None).await;
    assert!(cj["status"]["lastScheduleTime"].is_string(), "{cj}");
    assert!(cj["status"]["lastSuccessfulTime"].is_string(), "{cj}");
    assert!(!event_messages(&kc, "tick", "SawCompletedJob")
        .await
        .is_empty());
    let out = ok(&c, &["get", "cronjobs", "-n", "demo"], None).await;
    assert!(out.contains("tick") && out.contains("* * * * *"), "{out}");

    // Suspended: nothing more starts.
    let req = http::Request::patch(format!("{CRONJOBS}/tick"))
        .header("content-type", "application/merge-patch+json")
        .body(br#"{"spec":{"suspend":true}}"#.to_vec())
        .expect("request");
    kc.request_text(req).await.expect("suspend");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = event_messages(&kc, "tick", "SuccessfulCreate").await.len();
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(
        event_messages(&kc, "tick", "SuccessfulCreate").await.len(),
        before
    );
    c.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_concurrency_policies_and_invalid_schedules() {
    let c = start(None).await;
    let kc = client(&c).await;
    ok(
        &c,
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n"),
    )
    .await;
    // Jobs that never finish (a day of simulated run time), every minute.
    let forever = "86400";
    for (name, policy) in [
        ("allow", "Allow"),
        ("forbid", "Forbid"),
        ("replace", "Replace"),
    ] {
        let (code, v) = send(
            &kc,
            "POST",
            CRONJOBS,
            Some(cronjob(
                name,
                "*/1 * * * *",
                json!({"concurrencyPolicy": policy, "timeZone": "Europe/Paris"}),
                forever,
            )),
        )
        .await;
        assert_eq!(code, 200, "{v}");
    }
    eventually(60, "three schedules passed", || async {
        (event_messages(&kc, "allow", "SuccessfulCreate").await.len() >= 3).then_some(())
    })
    .await;
    // Allow: they accumulate, as in Kubernetes (all in status.active).
    let (_, allow) = send(&kc, "GET", &format!("{CRONJOBS}/allow"), None).await;
    assert!(
        allow["status"]["active"]
            .as_array()
            .is_some_and(|a| a.len() >= 3),
        "{allow}"
    );
    // Forbid: one Job, later schedules skipped.
    eventually(30, "forbid skips", || async {
        (!event_messages(&kc, "forbid", "JobAlreadyActive")
            .await
            .is_empty())
        .then_some(())
    })
    .await;
    assert_eq!(jobs_of(&kc, "forbid").await.len(), 1);
    // Replace: the running Job is deleted for the new one.
    eventually(30, "replace deletes", || async {
        (!event_messages(&kc, "replace", "SuccessfulDelete")
            .await
            .is_empty())
        .then_some(())
    })
    .await;
    let (_, replace) = send(&kc, "GET", &format!("{CRONJOBS}/replace"), None).await;
    assert_eq!(
        replace["status"]["active"].as_array().map(Vec::len),
        Some(1),
        "{replace}"
    );
    // The scheduled timestamp is written in the CronJob's zone.
    let job = &jobs_of(&kc, "forbid").await[0];
    let ts = job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        .as_str()
        .expect("timestamp");
    assert!(ts.ends_with("+01:00") || ts.ends_with("+02:00"), "{ts}");

    // Invalid CronJobs: 422, nothing stored.
    let before = c.api.store.count("batch/cronjobs");
    for (what, body) in [
        (
            "garbage schedule",
            cronjob("x1", "every tuesday", json!({}), "1"),
        ),
        ("six fields", cronjob("x2", "0 * * * * *", json!({}), "1")),
        ("minute 61", cronjob("x3", "61 * * * *", json!({}), "1")),
        (
            "TZ prefix",
            cronjob("x4", "TZ=UTC 0 * * * *", json!({}), "1"),
        ),
        (
            "CRON_TZ prefix",
            cronjob("x5", "CRON_TZ=Europe/Paris 0 * * * *", json!({}), "1"),
        ),
        (
            "unknown time zone",
            cronjob(
                "x6",
                "0 * * * *",
                json!({"timeZone": "Mars/Olympus_Mons"}),
                "1",
            ),
        ),
        (
            "concurrency policy",
            cronjob(
                "x7",
                "0 * * * *",
                json!({"concurrencyPolicy": "Sometimes"}),
                "1",
            ),
        ),
        (
            "negative deadline",
            cronjob(
                "x8",
                "0 * * * *",
                json!({"startingDeadlineSeconds": -5}),
                "1",
            ),
        ),
        (
            "name too long",
            cronjob(&"n".repeat(53), "0 * * * *", json!({}), "1"),
        ),
        ("empty schedule", cronjob("x9", "", json!({}), "1")),
        (
            "absurd schedule",
            cronjob("x10", &"1,".repeat(20_000), json!({}), "1"),
        ),
    ] {
        let (code, v) = send(&kc, "POST", CRONJOBS, Some(body)).await;
        assert_eq!(
            (code, v["reason"].as_str()),
            (422, Some("Invalid")),
            "{what}: {v}"
        );
    }
    let (_, v) = send(
        &kc,
        "POST",
        CRONJOBS,
        Some(cronjob("x4", "TZ=UTC 0 * * * *", json!({}), "1")),
    )
    .await;
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("use timeZone field instead"),
        "{v}"
    );
    assert_eq!(c.api.store.count("batch/cronjobs"), before);
    c.stop();
}
