//! Templates: Go templates over the object, rendered in every string leaf.
//!
//! A `template.<name>` is YAML (`message`, `email.subject`, `slack.attachments`,
//! `webhook.<service>.body`, …); notifications-engine renders each string field with Go's
//! `text/template` over:
//!
//! - `.app`: the Application (the notified object) as JSON;
//! - `.context`: the ConfigMap's `context` (`argocdUrl`, …) plus `notificationType`;
//! - `.serviceType` and `.notificationType`: the type of the service being sent to
//!   (`slack`, `webhook`, …), so one template can differ per service, as the catalog's
//!   `{{if eq .serviceType "slack"}}`;
//! - `.secrets`: `argocd-notifications-secret`'s data, as Argo CD exposes it;
//! - `.event`: for an event trigger ([`crate::event`]), the Kubernetes Event;
//! - `.repo`: Argo CD's repository helpers, called with `call`: `RepoURLToHTTPS`,
//!   `FullNameByRepoURL`, `GetCommitMetadata SHA` (`.Message`, `.Author`, `.Date`,
//!   `.Tags`). Commit metadata is an input ([`Commits`]) the caller fetched; a commit it
//!   does not have renders empty fields, never an error or a panic.
//!
//! Rendering uses gtmpl with the engine's one Go-template function set
//! (`mooring_engine::appset::template::go_funcs`, the Sprig subset ApplicationSets use)
//! and its size limits. A missing field renders `<no value>`, as Go's default.
//!
//! gtmpl's functions are plain `fn` pointers, so `GetCommitMetadata` cannot capture the
//! caller's commits: they are lent to it through a thread-local for the duration of one
//! [`render`] call (set and cleared by a guard; rendering never crosses threads).

use gtmpl::{Context, Func, FuncError, Template, Value as GValue};
use mooring_engine::appset::template::{go_funcs, to_gvalue, MAX_OUTPUT_BYTES, MAX_TEMPLATE_BYTES};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// One commit's metadata, as `call .repo.GetCommitMetadata SHA` returns it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CommitMetadata {
    pub message: String,
    pub author: String,
    /// RFC 3339.
    pub date: String,
    pub tags: Vec<String>,
}

/// Commit metadata by full SHA.
pub type Commits = BTreeMap<String, CommitMetadata>;

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error("template `{template}` is not configured ({CONFIG_MAP} has no `template.{template}`)", CONFIG_MAP = crate::config::CONFIG_MAP)]
    Missing { template: String },
    #[error("template `{template}`, field `{field}`: {message}")]
    Render {
        template: String,
        field: String,
        message: String,
    },
}

thread_local! {
    static COMMITS: RefCell<Commits> = const { RefCell::new(Commits::new()) };
}

struct CommitsGuard;

impl CommitsGuard {
    fn lend(commits: &Commits) -> CommitsGuard {
        COMMITS.with(|c| *c.borrow_mut() = commits.clone());
        CommitsGuard
    }
}

impl Drop for CommitsGuard {
    fn drop(&mut self) {
        COMMITS.with(|c| c.borrow_mut().clear());
    }
}

/// What a template sees besides the object.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub object: &'a Value,
    pub context: &'a BTreeMap<String, String>,
    pub secrets: &'a BTreeMap<String, String>,
    pub service_type: &'a str,
    pub commits: &'a Commits,
    /// The Kubernetes Event an event trigger fired for (`.event`).
    pub event: Option<&'a Value>,
}

/// Render the named templates for one service type and merge them into one notification
/// (later templates' fields win, maps merged), as notifications-engine does for a
/// condition's `send` list.
pub fn render(
    templates: &BTreeMap<String, Value>,
    names: &[String],
    vars: Vars<'_>,
) -> Result<Value, TemplateError> {
    let _guard = CommitsGuard::lend(vars.commits);
    let data = data(vars);
    let mut out = Value::Object(Map::new());
    for name in names {
        let t = templates.get(name).ok_or_else(|| TemplateError::Missing {
            template: name.clone(),
        })?;
        let rendered = render_value(name, "", t, &data)?;
        merge(&mut out, rendered);
    }
    Ok(out)
}

fn data(vars: Vars<'_>) -> GValue {
    let mut context: Map<String, Value> = vars
        .context
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    context.insert(
        "notificationType".into(),
        Value::String(vars.service_type.into()),
    );
    let secrets: Map<String, Value> = vars
        .secrets
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut m: HashMap<String, GValue> = HashMap::new();
    m.insert("app".into(), to_gvalue(vars.object, false));
    if let Some(event) = vars.event {
        m.insert("event".into(), to_gvalue(event, false));
    }
    m.insert("context".into(), to_gvalue(&Value::Object(context), false));
    m.insert("secrets".into(), to_gvalue(&Value::Object(secrets), false));
    m.insert(
        "serviceType".into(),
        GValue::String(vars.service_type.into()),
    );
    m.insert(
        "notificationType".into(),
        GValue::String(vars.service_type.into()),
    );
    // gtmpl calls a function-valued field with its receiver when the field is read (as
    // Go calls a method), so each field is a getter returning the helper `call` runs.
    let repo: HashMap<String, GValue> = [
        ("RepoURLToHTTPS", get_repo_url_to_https as Func),
        ("FullNameByRepoURL", get_full_name_by_repo_url as Func),
        ("GetCommitMetadata", get_get_commit_metadata as Func),
    ]
    .into_iter()
    .map(|(k, f)| (k.to_string(), GValue::from(f)))
    .collect();
    m.insert("repo".into(), GValue::Map(repo));
    GValue::Map(m)
}

fn render_value(
    template: &str,
    field: &str,
    v: &Value,
    data: &GValue,
) -> Result<Value, TemplateError> {
    Ok(match v {
        Value::String(s) => Value::String(render_str(template, field, s, data)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| render_value(template, &format!("{field}[{i}]"), x, data))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, x) in o {
                let f = if field.is_empty() {
                    k.clone()
                } else {
                    format!("{field}.{k}")
                };
                out.insert(k.clone(), render_value(template, &f, x, data)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn render_str(
    template: &str,
    field: &str,
    s: &str,
    data: &GValue,
) -> Result<String, TemplateError> {
    let err = |message: String| TemplateError::Render {
        template: template.to_string(),
        field: field.to_string(),
        message,
    };
    if !s.contains("{{") {
        return Ok(s.to_string());
    }
    if s.len() > MAX_TEMPLATE_BYTES {
        return Err(err(format!(
            "{} bytes is over the {MAX_TEMPLATE_BYTES}-byte limit",
            s.len()
        )));
    }
    let mut t = Template::default();
    t.add_funcs(go_funcs());
    t.add_funcs(&[(RANGEABLE, rangeable as Func)]);
    t.parse(range_missing_as_empty(s))
        .map_err(|e| err(format!("parsing: {e}")))?;
    let out = t
        .render(&Context::from(data.clone()))
        .map_err(|e| err(format!("rendering: {e}")))?;
    if out.len() > MAX_OUTPUT_BYTES {
        return Err(err(format!(
            "rendered {} bytes, over the {MAX_OUTPUT_BYTES}-byte limit",
            out.len()
        )));
    }
    Ok(out)
}

/// The function [`range_missing_as_empty`] wraps `range` pipelines in.
const RANGEABLE: &str = "mooringRangeable";

/// Go's `range` over a missing value (a field the object does not have, such as
/// `.app.status.conditions` of a healthy app) iterates zero times; gtmpl's is an error.
/// Every `{{range …}}` pipeline is wrapped in [`rangeable`], which turns a missing value
/// into an empty list and passes anything else through unchanged.
fn range_missing_as_empty(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 64);
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start + 2]);
        rest = &rest[start + 2..];
        let Some(end) = rest.find("}}") else {
            break;
        };
        let action = &rest[..end];
        rest = &rest[end..];
        let (lead, body) = match action.strip_prefix('-') {
            Some(b) => ("-", b),
            None => ("", action),
        };
        let trimmed = body.trim_start();
        let pad = &body[..body.len() - trimmed.len()];
        let Some(after) = trimmed
            .strip_prefix("range")
            .filter(|a| a.starts_with(char::is_whitespace))
        else {
            out.push_str(action);
            continue;
        };
        let (after, trail) = match after.trim_end().strip_suffix('-') {
            Some(a) => (a, " -"),
            None => (after.trim_end(), ""),
        };
        let (decl, pipeline) = match after.split_once(":=") {
            Some((d, p)) => (format!("{d}:="), p),
            None => (String::new(), after),
        };
        out.push_str(&format!(
            "{lead}{pad}range{decl} ({RANGEABLE} ({})){trail}",
            pipeline.trim()
        ));
    }
    out.push_str(rest);
    out
}

fn rangeable(args: &[GValue]) -> Result<GValue, FuncError> {
    match args {
        [GValue::NoValue | GValue::Nil] => Ok(GValue::Array(Vec::new())),
        [v] => Ok(v.clone()),
        _ => Err(FuncError::ExactlyXArgs(RANGEABLE.into(), 1)),
    }
}

/// Deep merge: objects key by key, anything else replaced.
fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn one_str(name: &str, args: &[GValue]) -> Result<String, FuncError> {
    match args {
        [GValue::String(s)] => Ok(s.clone()),
        [GValue::NoValue | GValue::Nil] => Ok(String::new()),
        [other] => Ok(other.to_string()),
        _ => Err(FuncError::ExactlyXArgs(name.into(), 1)),
    }
}

/// A repository URL as its HTTPS web address: `git@host:org/repo.git` and
/// `ssh://git@host[:port]/org/repo.git` → `https://host/org/repo`.
pub fn repo_url_to_https_str(url: &str) -> String {
    let url = url.trim();
    let (host, path) = if let Some(rest) = url.strip_prefix("ssh://") {
        let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        (
            host.split(':').next().unwrap_or(host).to_string(),
            path.to_string(),
        )
    } else if let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    {
        let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        (host.to_string(), path.to_string())
    } else if let Some((user_host, path)) = url.split_once(':') {
        let host = user_host.split_once('@').map_or(user_host, |(_, h)| h);
        (host.to_string(), path.to_string())
    } else {
        return url.to_string();
    };
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    format!("https://{host}/{path}")
}

fn get_repo_url_to_https(_receiver: &[GValue]) -> Result<GValue, FuncError> {
    Ok(GValue::from(repo_url_to_https as Func))
}

fn get_full_name_by_repo_url(_receiver: &[GValue]) -> Result<GValue, FuncError> {
    Ok(GValue::from(full_name_by_repo_url as Func))
}

fn get_get_commit_metadata(_receiver: &[GValue]) -> Result<GValue, FuncError> {
    Ok(GValue::from(get_commit_metadata as Func))
}

fn repo_url_to_https(args: &[GValue]) -> Result<GValue, FuncError> {
    Ok(GValue::String(repo_url_to_https_str(&one_str(
        "RepoURLToHTTPS",
        args,
    )?)))
}

fn full_name_by_repo_url(args: &[GValue]) -> Result<GValue, FuncError> {
    let https = repo_url_to_https_str(&one_str("FullNameByRepoURL", args)?);
    let path = https
        .strip_prefix("https://")
        .and_then(|r| r.split_once('/'))
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    Ok(GValue::String(path))
}

fn get_commit_metadata(args: &[GValue]) -> Result<GValue, FuncError> {
    let sha = one_str("GetCommitMetadata", args)?;
    let meta = COMMITS.with(|c| c.borrow().get(&sha).cloned().unwrap_or_default());
    let v = serde_json::json!({
        "Message": meta.message,
        "Author": meta.author,
        "Date": meta.date,
        "Tags": meta.tags,
    });
    Ok(to_gvalue(&v, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn templates() -> BTreeMap<String, Value> {
        let mut t = BTreeMap::new();
        t.insert(
            "a".to_string(),
            json!({
                "message": "{{if eq .serviceType \"slack\"}}:ok:{{end}} {{.app.metadata.name}} at {{.context.argocdUrl}} ({{.context.notificationType}})",
                "webhook": {"hook": {"method": "POST", "body": "{\"rev\": \"{{.app.status.sync.revision}}\"}"}},
                "slack": {"attachments": "[{\"title\": \"{{ .app.metadata.name}}\"}]"}
            }),
        );
        t.insert(
            "b".to_string(),
            json!({
                "message": "by {{(call .repo.GetCommitMetadata .app.status.sync.revision).Author}}: {{(call .repo.GetCommitMetadata .app.status.sync.revision).Message}} [{{call .repo.RepoURLToHTTPS .app.spec.source.repoURL}}] {{call .repo.FullNameByRepoURL .app.spec.source.repoURL}} {{.secrets.token}} {{.app.nope}}"
            }),
        );
        t.insert(
            "bad".to_string(),
            json!({"message": "{{.app.metadata.name"}),
        );
        t
    }

    fn app() -> Value {
        json!({
            "metadata": {"name": "model-a"},
            "spec": {"source": {"repoURL": "git@github.com:acme/models.git"}},
            "status": {"sync": {"revision": "abc"}}
        })
    }

    fn vars<'a>(
        app: &'a Value,
        ctx: &'a BTreeMap<String, String>,
        commits: &'a Commits,
        service_type: &'a str,
    ) -> Vars<'a> {
        Vars {
            object: app,
            context: ctx,
            secrets: ctx,
            service_type,
            commits,
            event: None,
        }
    }

    #[test]
    fn every_leaf_rendered_and_merged() {
        let app = app();
        let ctx: BTreeMap<String, String> = [
            ("argocdUrl".to_string(), "https://cd".to_string()),
            ("token".to_string(), "t0k".to_string()),
        ]
        .into();
        let mut commits = Commits::new();
        commits.insert(
            "abc".into(),
            CommitMetadata {
                message: "fix".into(),
                author: "Ada".into(),
                ..Default::default()
            },
        );
        let out = render(
            &templates(),
            &["a".into()],
            vars(&app, &ctx, &commits, "slack"),
        )
        .expect("render");
        assert_eq!(out["message"], ":ok: model-a at https://cd (slack)");
        assert_eq!(out["webhook"]["hook"]["body"], "{\"rev\": \"abc\"}");
        assert_eq!(out["slack"]["attachments"], "[{\"title\": \"model-a\"}]");
        let out = render(
            &templates(),
            &["a".into(), "b".into()],
            vars(&app, &ctx, &commits, "webhook"),
        )
        .expect("render");
        assert_eq!(
            out["message"],
            "by Ada: fix [https://github.com/acme/models] acme/models t0k <no value>"
        );
        assert_eq!(out["webhook"]["hook"]["method"], "POST");
        // No metadata for the commit: empty fields, no error.
        let out = render(
            &templates(),
            &["b".into()],
            vars(&app, &ctx, &Commits::new(), "webhook"),
        )
        .expect("render");
        let m = out["message"].as_str().expect("s");
        assert!(m.starts_with("by :  ["), "{m}");
    }

    #[test]
    fn errors_name_the_template_and_field() {
        let app = app();
        let ctx = BTreeMap::new();
        let e = render(
            &templates(),
            &["bad".into()],
            vars(&app, &ctx, &Commits::new(), "slack"),
        )
        .expect_err("bad");
        assert!(e.to_string().contains("`bad`, field `message`"), "{e}");
        let e = render(
            &templates(),
            &["nope".into()],
            vars(&app, &ctx, &Commits::new(), "slack"),
        )
        .expect_err("missing");
        assert!(e.to_string().contains("template.nope"), "{e}");
        let mut huge = BTreeMap::new();
        huge.insert(
            "h".to_string(),
            json!({"message": format!("{{{{.app.metadata.name}}}}{}", "x".repeat(MAX_TEMPLATE_BYTES))}),
        );
        assert!(render(
            &huge,
            &["h".into()],
            vars(&app, &ctx, &Commits::new(), "slack")
        )
        .is_err());
    }

    #[test]
    fn range_over_missing_is_empty() {
        for (input, want) in [
            (
                "{{range $i, $c := .x}}a{{end}}",
                "{{range $i, $c := (mooringRangeable (.x))}}a{{end}}",
            ),
            (
                "{{- range .x -}}a{{end}}",
                "{{- range (mooringRangeable (.x)) -}}a{{end}}",
            ),
            ("{{ .rangeX }}{{ranger}}", "{{ .rangeX }}{{ranger}}"),
        ] {
            assert_eq!(range_missing_as_empty(input), want, "{input}");
        }
        let app = json!({"status": {"conditions": [{"type": "A"}, {"type": "B"}]}});
        let ctx = BTreeMap::new();
        let mut t = BTreeMap::new();
        t.insert(
            "r".to_string(),
            json!({"message": "[{{range $i, $c := .app.status.conditions}}{{if $i}},{{end}}{{$c.type}}{{end}}][{{range .app.status.nope}}x{{end}}]"}),
        );
        let out = render(
            &t,
            &["r".into()],
            vars(&app, &ctx, &Commits::new(), "slack"),
        )
        .expect("render");
        assert_eq!(out["message"], "[A,B][]");
    }

    #[test]
    fn repo_urls() {
        for (input, want) in [
            (
                "git@github.com:acme/models.git",
                "https://github.com/acme/models",
            ),
            (
                "ssh://git@gitlab.example.com:2222/acme/models.git",
                "https://gitlab.example.com/acme/models",
            ),
            (
                "https://user@github.com/acme/models.git",
                "https://github.com/acme/models",
            ),
            (
                "https://github.com/acme/models",
                "https://github.com/acme/models",
            ),
        ] {
            assert_eq!(repo_url_to_https_str(input), want, "{input}");
        }
    }
}
