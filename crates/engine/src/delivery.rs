//! The rules of the push and hybrid delivery models (`mooring promote`, `mooring deploy`),
//! as pure functions.
//!
//! # Hybrid: `mooring promote`
//!
//! The seed's CI deploy job bumps `targetRevision` with `yq`, commits and pushes to the
//! GitOps repository; the GitOps agent deploys. `mooring promote` is that job in one
//! command. What it changes is decided here:
//!
//! * `--image NAME=REF` is parsed by [`ImageSpec::parse`] with kustomize's
//!   `kustomize edit set image` syntax (`NAME=NEWNAME[:TAG][@DIGEST]`, `NAME:TAG`,
//!   `NAME@DIGEST`) and refused unless every part is made of the characters an image
//!   reference may hold: no newline, quote, space or `#` reaches the YAML file, and
//!   nothing starts with `-`.
//! * [`set_kustomize_image`] edits one entry of a kustomization's `images:` in its text
//!   (comments, order and the other entries kept byte for byte) and proves by parsing
//!   the result that nothing else changed. The targetRevision edit is
//!   [`crate::git_rollback::set_target_revision`], shared with `mooring rollback git`.
//! * [`promotion_message`] is the commit message (`promote APP: image NAME OLD → NEW`).
//! * [`env_app`] picks the Application of an environment (`--env`).
//!
//! # Push: `mooring deploy`
//!
//! Without a controller, what was applied before must be remembered to prune what no
//! longer renders. Mooring does it as kubectl's ApplySet (KEP-3659), so `kubectl apply
//! --prune --applyset` and `mooring deploy` see the same bookkeeping: a parent Secret
//! whose `applyset.kubernetes.io/id` label is [`applyset_id`] (a hash of the parent's
//! name, namespace, kind and group), annotated with the tooling and the group-kinds and
//! namespaces of its members ([`ApplySetRecord`]); every member labelled
//! `applyset.kubernetes.io/part-of: <id>`. Pruning deletes only objects carrying that
//! label that the new render no longer contains ([`prune_set`]): an object not in the
//! applyset is never touched.

use base64::Engine as _;
use serde_json::Value;
use sha2::Digest as _;
use std::collections::{BTreeMap, BTreeSet};

/// Argo CD's refusal of `argocd app sync --local` on an app with automated sync, which
/// would put Git's manifests back at once. The CLI and the controller both give it.
pub const LOCAL_SYNC_WITH_AUTOMATED: &str =
    "Cannot use local sync when Automatic Sync Policy is enabled except with --dry-run";

/// Why a delivery input is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeliveryError {
    /// `--image` is not `NAME=REF` (or `NAME:TAG`, `NAME@DIGEST`) of safe characters.
    #[error("--image {arg:?}: {reason}")]
    Image { arg: String, reason: String },
    /// The kustomization could not be edited safely.
    #[error("cannot set image {image:?} in {file}: {reason}")]
    Kustomization {
        file: String,
        image: String,
        reason: String,
    },
    /// No, or more than one, Application matches `--env`.
    #[error("--env {env}: {reason}")]
    Env { env: String, reason: String },
}

/// One image change as `kustomize edit set image` takes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// The image name the manifests use (`images[].name`).
    pub name: String,
    /// `newName`, when the image moves to another repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// `newTag`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_tag: Option<String>,
    /// `digest` (`sha256:…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl ImageSpec {
    /// Parse `NAME=NEWNAME[:TAG][@DIGEST]`, `NAME=:TAG`, `NAME:TAG` or `NAME@DIGEST`.
    pub fn parse(arg: &str) -> Result<ImageSpec, DeliveryError> {
        let err = |reason: &str| DeliveryError::Image {
            arg: arg.to_string(),
            reason: reason.to_string(),
        };
        if let Some(bad) = arg.chars().find(|c| !image_char(*c)) {
            return Err(err(&format!(
                "{bad:?} is not allowed in an image reference (letters, digits and . _ - / : @ = only)"
            )));
        }
        let (name, reference) = match arg.split_once('=') {
            Some((n, r)) => (n, r),
            None => {
                // NAME:TAG or NAME@DIGEST: the tag's colon is the last one after the last
                // slash (a registry port has a slash after it).
                let (name_tag, digest) = split_digest(arg);
                let (name, tag) = split_tag(name_tag);
                if tag.is_none() && digest.is_none() {
                    return Err(err("give NAME=REF, NAME:TAG or NAME@DIGEST"));
                }
                return ImageSpec::checked(arg, name, None, tag, digest);
            }
        };
        if reference.contains('=') {
            return Err(err("more than one '='"));
        }
        let (name_tag, digest) = split_digest(reference);
        let (new_name, tag) = split_tag(name_tag);
        let new_name = (!new_name.is_empty() && new_name != name).then_some(new_name);
        if new_name.is_none() && tag.is_none() && digest.is_none() {
            return Err(err("REF names no new image, tag or digest"));
        }
        ImageSpec::checked(arg, name, new_name, tag, digest)
    }

    fn checked(
        arg: &str,
        name: &str,
        new_name: Option<&str>,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<ImageSpec, DeliveryError> {
        let err = |reason: String| DeliveryError::Image {
            arg: arg.to_string(),
            reason,
        };
        for (what, part) in [("NAME", Some(name)), ("the new name", new_name)] {
            let Some(part) = part else { continue };
            if part.is_empty() {
                return Err(err(format!("{what} is empty")));
            }
            if part.starts_with(['-', '.', '/', ':']) || part.ends_with('/') || part.contains("//")
            {
                return Err(err(format!("{what} {part:?} is not an image name")));
            }
        }
        if let Some(t) = tag {
            // The OCI distribution spec's tag grammar: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !ok {
                return Err(err(format!("tag {t:?} is not a valid tag")));
            }
        }
        if let Some(d) = digest {
            let ok = d.split_once(':').is_some_and(|(alg, hex)| {
                !alg.is_empty()
                    && alg.chars().all(|c| c.is_ascii_alphanumeric())
                    && hex.len() >= 32
                    && hex.chars().all(|c| c.is_ascii_hexdigit())
            });
            if !ok {
                return Err(err(format!("digest {d:?} is not ALGORITHM:HEX")));
            }
        }
        Ok(ImageSpec {
            name: name.to_string(),
            new_name: new_name.map(str::to_string),
            new_tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// The reference the manifests get: `NEWNAME[:TAG][@DIGEST]`.
    pub fn reference(&self) -> String {
        let mut s = self.new_name.clone().unwrap_or_else(|| self.name.clone());
        if let Some(t) = &self.new_tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

fn image_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@' | '=')
}

fn split_digest(s: &str) -> (&str, Option<&str>) {
    match s.split_once('@') {
        Some((a, d)) => (a, Some(d)),
        None => (s, None),
    }
}

fn split_tag(s: &str) -> (&str, Option<&str>) {
    let after_slash = s.rfind('/').map_or(0, |i| i + 1);
    match s[after_slash..].rfind(':') {
        Some(i) => (&s[..after_slash + i], Some(&s[after_slash + i + 1..])),
        None => (s, None),
    }
}

/// The `images:` entry for `spec.name` in the kustomization `doc`, as `name: REF` text
/// (`old` of the commit message), if any.
pub fn current_image(doc: &Value, name: &str) -> Option<String> {
    let entry = doc
        .get("images")?
        .as_array()?
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?;
    let field = |k: &str| entry.get(k).and_then(scalar_text);
    let mut s = field("newName").unwrap_or_else(|| name.to_string());
    if let Some(t) = field("newTag") {
        s.push(':');
        s.push_str(&t);
    }
    if let Some(d) = field("digest") {
        s.push('@');
        s.push_str(&d);
    }
    Some(s)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Set image `spec` in the kustomization text `text` (file `file`): the matching
/// `images:` entry's `newName`/`newTag`/`digest` lines are replaced (a tag clears a
/// digest and a digest a tag, as `kustomize edit set image`), a missing entry is appended
/// to the list, a missing list to the file. Every other byte is kept; the result is
/// parsed to prove that only that entry changed.
pub fn set_kustomize_image(
    file: &str,
    text: &str,
    spec: &ImageSpec,
) -> Result<String, DeliveryError> {
    let err = |reason: String| DeliveryError::Kustomization {
        file: file.to_string(),
        image: spec.name.clone(),
        reason,
    };
    let before =
        mooring_core::yaml::parse_one(text).map_err(|e| err(format!("it does not parse: {e}")))?;
    if !before.is_object() {
        return Err(err("it is not a mapping".into()));
    }
    let wanted: Vec<(&str, Option<String>)> = vec![
        ("newName", spec.new_name.clone()),
        ("newTag", spec.new_tag.clone()),
        ("digest", spec.digest.clone()),
    ];
    // `kustomize edit set image` semantics: a tag replaces a digest and the other way
    // round; a new name alone keeps the version.
    let version_given = spec.new_tag.is_some() || spec.digest.is_some();
    let quoted = |v: &str| format!("\"{v}\"");

    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let images_line = lines.iter().position(|l| {
        l.strip_prefix("images:")
            .is_some_and(|rest| rest.trim().is_empty() || rest.trim_start().starts_with('#'))
    });
    let out = match images_line {
        None => {
            if before.get("images").is_some() {
                return Err(err(
                    "images: is not a block list at the top level (flow style is not edited)"
                        .into(),
                ));
            }
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("images:\n");
            out.push_str(&new_entry("- ", "  ", spec, &quoted));
            out
        }
        Some(at) => {
            // The list's lines: indented, or `-` entries at column 0, or blank/comments.
            let mut end = at + 1;
            while end < lines.len() {
                let l = lines[end];
                let t = l.trim_start();
                if t.is_empty() || t.starts_with('#') || l.starts_with([' ', '\t', '-']) {
                    end += 1;
                } else {
                    break;
                }
            }
            // Trailing blank and comment lines belong to what follows.
            while end > at + 1 && {
                let t = lines[end - 1].trim_start();
                t.is_empty() || t.starts_with('#')
            } {
                end -= 1;
            }
            let dash_col = lines[at + 1..end]
                .iter()
                .find(|l| l.trim_start().starts_with('-'))
                .map(|l| l.len() - l.trim_start().len());
            let Some(dash_col) = dash_col else {
                return Err(err("images: has no block-list entries".into()));
            };
            // Entries: [start, end) line ranges.
            let mut entries: Vec<(usize, usize)> = Vec::new();
            for (i, l) in lines.iter().enumerate().take(end).skip(at + 1) {
                let col = l.len() - l.trim_start().len();
                if col == dash_col && l.trim_start().starts_with('-') {
                    if let Some(last) = entries.last_mut() {
                        last.1 = i;
                    }
                    entries.push((i, end));
                }
            }
            let key_col = dash_col + 2;
            let key_of = |l: &str| -> Option<(String, usize)> {
                let col = l.len() - l.trim_start().len();
                let body = if col == dash_col && l.trim_start().starts_with("- ") {
                    &l[dash_col + 2..]
                } else if col == key_col {
                    &l[key_col..]
                } else {
                    return None;
                };
                let (k, _) = body.split_once(':')?;
                let k = k.trim().trim_matches(['"', '\'']);
                Some((k.to_string(), l.len() - body.len()))
            };
            let value_of = |l: &str, start: usize| -> String {
                let v = l[start..].split_once(':').map_or("", |(_, v)| v);
                let v = v.split(" #").next().unwrap_or("").trim();
                v.trim_matches(['"', '\'']).to_string()
            };
            let matching = entries.iter().find(|(s, e)| {
                lines[*s..*e].iter().any(|l| {
                    key_of(l)
                        .is_some_and(|(k, start)| k == "name" && value_of(l, start) == spec.name)
                })
            });
            let mut out = String::with_capacity(text.len() + 64);
            match matching {
                None => {
                    for l in &lines[..end] {
                        out.push_str(l);
                    }
                    if !out.ends_with('\n') {
                        out.push('\n');
                    }
                    let dash = format!("{}- ", " ".repeat(dash_col));
                    let indent = " ".repeat(key_col);
                    out.push_str(&new_entry(&dash, &indent, spec, &quoted));
                    for l in &lines[end..] {
                        out.push_str(l);
                    }
                }
                Some(&(s, e)) => {
                    for l in &lines[..s] {
                        out.push_str(l);
                    }
                    let mut written: BTreeSet<&str> = BTreeSet::new();
                    let mut kept: Vec<String> = Vec::new();
                    for l in &lines[s..e] {
                        let Some((k, start)) = key_of(l) else {
                            kept.push(l.to_string());
                            continue;
                        };
                        match wanted.iter().find(|(w, _)| *w == k) {
                            Some((key, Some(v))) => {
                                written.insert(key);
                                let eol = if l.ends_with('\n') { "\n" } else { "" };
                                let comment = l[start..]
                                    .find(" #")
                                    .map(|c| l[start + c..].trim_end_matches(['\n', '\r']))
                                    .unwrap_or("");
                                kept.push(format!(
                                    "{}{key}: {}{comment}{eol}",
                                    &l[..start],
                                    quoted(v)
                                ));
                            }
                            Some((key, None)) => {
                                let clear = *key != "newName" && version_given;
                                if clear {
                                    if l.trim_start().starts_with("- ") {
                                        return Err(err(format!(
                                            "the entry starts with {key}; put name first"
                                        )));
                                    }
                                    // dropped: the new version replaces it
                                } else {
                                    kept.push(l.to_string());
                                }
                            }
                            None => kept.push(l.to_string()),
                        }
                    }
                    // Missing keys go after the entry's last key line.
                    let mut extra = String::new();
                    for (key, v) in &wanted {
                        if let (Some(v), false) = (v, written.contains(key)) {
                            extra.push_str(&format!(
                                "{}{key}: {}\n",
                                " ".repeat(key_col),
                                quoted(v)
                            ));
                        }
                    }
                    let last_kept_key = kept
                        .iter()
                        .rposition(|l| key_of(l).is_some())
                        .map_or(kept.len(), |i| i + 1);
                    for (i, l) in kept.iter().enumerate() {
                        if i == last_kept_key {
                            if !out.ends_with('\n') {
                                out.push('\n');
                            }
                            out.push_str(&extra);
                        }
                        out.push_str(l);
                    }
                    if last_kept_key == kept.len() {
                        if !out.ends_with('\n') && !extra.is_empty() {
                            out.push('\n');
                        }
                        out.push_str(&extra);
                    }
                    for l in &lines[e..] {
                        out.push_str(l);
                    }
                }
            }
            out
        }
    };
    // Proof: the document is the old one with that one entry set.
    let after = mooring_core::yaml::parse_one(&out)
        .map_err(|e| err(format!("the edited file does not parse: {e}")))?;
    let mut expected = before.clone();
    set_entry(&mut expected, spec, version_given);
    if after != expected {
        return Err(err(
            "the edit would change more than that images: entry (unusual YAML layout)".into(),
        ));
    }
    Ok(out)
}

fn new_entry(
    dash: &str,
    indent: &str,
    spec: &ImageSpec,
    quoted: &dyn Fn(&str) -> String,
) -> String {
    let mut s = format!("{dash}name: {}\n", quoted(&spec.name));
    for (k, v) in [
        ("newName", &spec.new_name),
        ("newTag", &spec.new_tag),
        ("digest", &spec.digest),
    ] {
        if let Some(v) = v {
            s.push_str(&format!("{indent}{k}: {}\n", quoted(v)));
        }
    }
    s
}

/// The parsed effect of [`set_kustomize_image`] on the document.
fn set_entry(doc: &mut Value, spec: &ImageSpec, version_given: bool) {
    let Some(obj) = doc.as_object_mut() else {
        return;
    };
    let images = obj.entry("images").or_insert_with(|| Value::Array(vec![]));
    if images.is_null() {
        *images = Value::Array(vec![]);
    }
    let Some(list) = images.as_array_mut() else {
        return;
    };
    let pos = list
        .iter()
        .position(|e| e.get("name").and_then(Value::as_str) == Some(spec.name.as_str()));
    let entry = match pos {
        Some(i) => &mut list[i],
        None => {
            list.push(serde_json::json!({"name": spec.name}));
            let last = list.len() - 1;
            &mut list[last]
        }
    };
    let Some(e) = entry.as_object_mut() else {
        return;
    };
    for (k, v) in [
        ("newName", &spec.new_name),
        ("newTag", &spec.new_tag),
        ("digest", &spec.digest),
    ] {
        match v {
            Some(v) => {
                e.insert(k.to_string(), Value::String(v.clone()));
            }
            None if k != "newName" && version_given => {
                e.remove(k);
            }
            None => {}
        }
    }
}

/// What a promotion changes, for its commit message and report.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Promotion {
    /// `spec.source.targetRevision` (or one source's) of the Application manifest.
    TargetRevision { old: String, new: String },
    /// One kustomize image of the app's overlay.
    Image {
        name: String,
        old: Option<String>,
        new: String,
    },
}

impl Promotion {
    /// `targetRevision OLD → NEW` / `image NAME OLD → NEW`.
    pub fn summary(&self) -> String {
        match self {
            Promotion::TargetRevision { old, new } => {
                format!("targetRevision {} → {new}", or_none(old))
            }
            Promotion::Image { name, old, new } => format!(
                "image {name} {} → {new}",
                old.as_deref().map_or("(none)", or_none)
            ),
        }
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "(none)"
    } else {
        s
    }
}

/// The commit message of a promotion: `promote APP: <summary>`, then who promoted it and
/// the caller's message, if any.
pub fn promotion_message(
    app: &str,
    promotion: &Promotion,
    initiator: &str,
    message: Option<&str>,
) -> String {
    let mut m = format!("promote {app}: {}\n\n", promotion.summary());
    if let Some(extra) = message.map(str::trim).filter(|s| !s.is_empty()) {
        m.push_str(extra);
        m.push_str("\n\n");
    }
    m.push_str(&format!(
        "Promoted-by: {}\n",
        initiator.split_whitespace().collect::<Vec<_>>().join(" ")
    ));
    m
}

/// The Application of environment `env` among `apps` (name and labels) for `app`: the one
/// named `APP-ENV`, else the one labelled `environment: ENV` whose name is `APP` or starts
/// with `APP-`.
pub fn env_app(
    apps: &[(String, BTreeMap<String, String>)],
    app: &str,
    env: &str,
) -> Result<String, DeliveryError> {
    let named = format!("{app}-{env}");
    if apps.iter().any(|(n, _)| *n == named) {
        return Ok(named);
    }
    let prefix = format!("{app}-");
    let labelled: Vec<&str> = apps
        .iter()
        .filter(|(n, l)| {
            l.get("environment").map(String::as_str) == Some(env)
                && (n == app || n.starts_with(&prefix))
        })
        .map(|(n, _)| n.as_str())
        .collect();
    match labelled.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(DeliveryError::Env {
            env: env.to_string(),
            reason: format!(
                "no Application named {named}, nor one named {app} or {app}-… labelled environment: {env}"
            ),
        }),
        many => Err(DeliveryError::Env {
            env: env.to_string(),
            reason: format!("several Applications match: {}", many.join(", ")),
        }),
    }
}

/// Label every ApplySet member carries: the applyset's id.
pub const APPLYSET_PART_OF: &str = "applyset.kubernetes.io/part-of";
/// Label of the parent: the applyset's id.
pub const APPLYSET_ID: &str = "applyset.kubernetes.io/id";
/// Annotation of the parent: the tool that manages the set (`NAME/VERSION`).
pub const APPLYSET_TOOLING: &str = "applyset.kubernetes.io/tooling";
/// Annotation of the parent: the members' `Kind.group`s, sorted, comma-separated.
pub const APPLYSET_GROUP_KINDS: &str = "applyset.kubernetes.io/contains-group-kinds";
/// Annotation of the parent: namespaces of members other than the parent's own.
pub const APPLYSET_NAMESPACES: &str = "applyset.kubernetes.io/additional-namespaces";

/// The applyset id of a parent object (KEP-3659):
/// `applyset-<base64url(sha256(NAME.NAMESPACE.KIND.GROUP))>-v1`, unpadded.
pub fn applyset_id(name: &str, namespace: &str, kind: &str, group: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{name}.{namespace}.{kind}.{group}").as_bytes());
    format!(
        "applyset-{}-v1",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// One member of an applyset, as the parent's annotations and the prune need it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Member {
    pub group: String,
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl Member {
    /// `Kind.group` (`Deployment.apps`, `ConfigMap` for the core group), as the
    /// `contains-group-kinds` annotation lists it.
    pub fn group_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

/// The parent's annotations for a set of members.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ApplySetRecord {
    /// `contains-group-kinds`.
    pub group_kinds: String,
    /// `additional-namespaces`.
    pub namespaces: String,
}

impl ApplySetRecord {
    /// Both records' group-kinds and namespaces (sorted, no repeats): what the parent
    /// says while a deploy that changes the set is under way, so an interrupted run
    /// leaves no member untracked.
    pub fn union(&self, other: &ApplySetRecord) -> ApplySetRecord {
        let join = |a: &str, b: &str| {
            let all: BTreeSet<&str> = a
                .split(',')
                .chain(b.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            all.into_iter().collect::<Vec<_>>().join(",")
        };
        ApplySetRecord {
            group_kinds: join(&self.group_kinds, &other.group_kinds),
            namespaces: join(&self.namespaces, &other.namespaces),
        }
    }
}

/// The annotations of the parent (in `parent_namespace`) recording `members`.
pub fn applyset_record(members: &[Member], parent_namespace: &str) -> ApplySetRecord {
    let gks: BTreeSet<String> = members.iter().map(Member::group_kind).collect();
    let nss: BTreeSet<&str> = members
        .iter()
        .map(|m| m.namespace.as_str())
        .filter(|n| !n.is_empty() && *n != parent_namespace)
        .collect();
    ApplySetRecord {
        group_kinds: gks.into_iter().collect::<Vec<_>>().join(","),
        namespaces: nss.into_iter().collect::<Vec<_>>().join(","),
    }
}

/// Parse `contains-group-kinds` (`Deployment.apps,ConfigMap`) into `(group, kind)`s.
pub fn parse_group_kinds(annotation: &str) -> Vec<(String, String)> {
    annotation
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|gk| match gk.split_once('.') {
            Some((kind, group)) => (group.to_string(), kind.to_string()),
            None => (String::new(), gk.to_string()),
        })
        .collect()
}

/// What to prune: the live objects labelled as members of the applyset (`live`) that
/// the new render (`rendered`) no longer contains, sorted.
pub fn prune_set(live: &[Member], rendered: &[Member]) -> Vec<Member> {
    let keep: BTreeSet<&Member> = rendered.iter().collect();
    let mut out: Vec<Member> = live.iter().filter(|m| !keep.contains(m)).cloned().collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests;
