//! Who is subscribed to what: an object's destinations per trigger, as Argo CD finds them.
//!
//! Three sources, merged and deduplicated:
//!
//! - the ConfigMap's `subscriptions` whose `selector` matches the object's labels;
//! - the object's annotations `notifications.argoproj.io/subscribe.<trigger>.<service>:
//!   r1;r2` (recipients split on `;`, blanks dropped; an empty value is one empty
//!   recipient, for services such as webhooks that take none) and
//!   `notifications.argoproj.io/subscribe.<service>: …` (no trigger: the service's
//!   `defaultTriggers.<service>`, else `defaultTriggers`);
//! - the same annotations on the object's AppProject (Argo CD subscribes every
//!   Application of a project this way).
//!
//! A `subscriptions` recipient is `service:recipient` (or `service` alone).

use crate::config::Config;
use crate::state::Destination;
use std::collections::{BTreeMap, BTreeSet};

/// The annotation prefix of subscriptions.
pub const PREFIX: &str = "notifications.argoproj.io/subscribe.";

/// Destinations by trigger, each list sorted and without duplicates.
pub type Destinations = BTreeMap<String, Vec<Destination>>;

/// An object's destinations.
pub fn destinations(
    config: &Config,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    project_annotations: &BTreeMap<String, String>,
) -> Destinations {
    let mut out: BTreeMap<String, BTreeSet<Destination>> = BTreeMap::new();
    for sub in &config.subscriptions {
        let matches = mooring_core::selector::LabelSelector::parse(&sub.selector)
            .map(|s| s.matches(labels))
            // Config::parse rejects a bad selector; a config built by hand matches nothing.
            .unwrap_or(false);
        if !matches {
            continue;
        }
        let triggers = if sub.triggers.is_empty() {
            &config.default_triggers
        } else {
            &sub.triggers
        };
        for r in &sub.recipients {
            let (service, recipient) = r.split_once(':').unwrap_or((r.as_str(), ""));
            for t in triggers {
                out.entry(t.clone()).or_default().insert(Destination {
                    service: service.trim().to_string(),
                    recipient: recipient.trim().to_string(),
                });
            }
        }
    }
    for source in [annotations, project_annotations] {
        from_annotations(config, source, &mut out);
    }
    out.into_iter()
        .map(|(t, d)| (t, d.into_iter().collect()))
        .collect()
}

fn from_annotations(
    config: &Config,
    annotations: &BTreeMap<String, String>,
    out: &mut BTreeMap<String, BTreeSet<Destination>>,
) {
    for (k, v) in annotations {
        let Some(rest) = k.strip_prefix(PREFIX) else {
            continue;
        };
        let (trigger, service) = match rest.split_once('.') {
            Some((t, s)) => (Some(t), s),
            None => (None, rest),
        };
        let recipients: Vec<String> = if v.is_empty() {
            vec![String::new()]
        } else {
            v.split(';')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect()
        };
        let triggers: Vec<String> = match trigger {
            Some(t) => vec![t.to_string()],
            None => config
                .service_default_triggers
                .get(service)
                .unwrap_or(&config.default_triggers)
                .clone(),
        };
        for t in triggers {
            for r in &recipients {
                out.entry(t.clone()).or_default().insert(Destination {
                    service: service.to_string(),
                    recipient: r.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn d(service: &str, recipient: &str) -> Destination {
        Destination {
            service: service.into(),
            recipient: recipient.into(),
        }
    }

    #[test]
    fn annotations_project_defaults_and_global_subscriptions() {
        let (config, errors) = Config::parse(
            &map(&[
                ("defaultTriggers", "[on-sync-succeeded]"),
                ("defaultTriggers.mail", "[on-sync-failed, on-deleted]"),
                (
                    "subscriptions",
                    "- recipients: ['slack:ml-alerts', 'hook']\n  triggers: [on-health-degraded]\n  selector: team=ml\n- recipients: ['slack:all']\n",
                ),
            ]),
            &BTreeMap::new(),
        );
        assert!(errors.is_empty(), "{errors:?}");
        let annotations = map(&[
            (
                "notifications.argoproj.io/subscribe.on-sync-succeeded.slack",
                "ops; ml ;;",
            ),
            ("notifications.argoproj.io/subscribe.mail", "a@x.io"),
            ("notifications.argoproj.io/subscribe.on-deployed.hook", ""),
            ("unrelated", "x"),
        ]);
        let project = map(&[(
            "notifications.argoproj.io/subscribe.on-sync-succeeded.slack",
            "ops;proj",
        )]);
        let got = destinations(&config, &map(&[("team", "ml")]), &annotations, &project);
        assert_eq!(
            got["on-sync-succeeded"],
            vec![
                d("slack", "all"),
                d("slack", "ml"),
                d("slack", "ops"),
                d("slack", "proj")
            ]
        );
        assert_eq!(got["on-sync-failed"], vec![d("mail", "a@x.io")]);
        assert_eq!(got["on-deleted"], vec![d("mail", "a@x.io")]);
        assert_eq!(got["on-deployed"], vec![d("hook", "")]);
        assert_eq!(
            got["on-health-degraded"],
            vec![d("hook", ""), d("slack", "ml-alerts")]
        );
        let other = destinations(
            &config,
            &map(&[("team", "web")]),
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        assert!(!other.contains_key("on-health-degraded"));
        assert_eq!(other["on-sync-succeeded"], vec![d("slack", "all")]);
    }
}
