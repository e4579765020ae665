//! Writing a chosen image back: the files a Git write-back commits, the override an
//! `argocd` write-back patches onto the Application, and the commit message.
//!
//! - [`edit_kustomization`]: `write-back-target: kustomization`. Sets `images:` entries
//!   as `kustomize edit set image` does. Unlike kustomize (which re-serialises the whole
//!   file and drops comments), only the `images:` block is rewritten: the rest of the file
//!   keeps its bytes, comments and order. The result is parsed again and must equal the
//!   intended structure, so a file the text edit cannot handle safely (a flow-style
//!   top-level mapping, a duplicated key) is an error rather than a corrupted commit.
//! - [`parameter_file`]: Argo CD's `.argocd-source-<app>.yaml` (the default target), the
//!   file Argo CD's repo-server merges over `spec.source` before rendering (Mooring's
//!   renderer reads it too: `mooring_render::with_parameter_files`). Existing entries for
//!   other images and other keys are kept.
//! - [`argocd_override`]: `write-back-method: argocd`, a JSON merge patch of the
//!   Application's `spec.source` (`kustomize.images` or `helm.parameters`, whole lists,
//!   because a merge patch replaces arrays).
//! - [`commit_message`]: Image Updater's default message, or the admin's template.
//!
//! Every YAML input goes through the core's safe parser (size cap, alias budget).

use serde_json::{json, Map, Value};

use super::{ImageChange, ImageError, ImageRef, WatchedImage};

pub use mooring_core::files::KUSTOMIZATION_FILES;

/// The repository-relative directory of `write-back-target: kustomization[:PATH]`:
/// `PATH` relative to the source path, or from the repository root with a leading `/`;
/// no `PATH` is the source path itself. `..` is resolved lexically and may not leave the
/// repository. `""` is the root.
pub fn kustomization_dir(source_path: &str, target: Option<&str>) -> Result<String, ImageError> {
    let err = |r: &str| {
        ImageError::Other(format!(
            "write-back-target kustomization:{}: {r}",
            target.unwrap_or("")
        ))
    };
    let (base, rel) = match target {
        None => ("", source_path),
        Some(t) if t.starts_with('/') => ("", t),
        Some(t) => (source_path, t),
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in base.split('/').chain(rel.split('/')) {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(err("leaves the repository"));
                }
            }
            c if c.contains(['\\', '\0']) => return Err(err("not a path")),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Largest file written back.
const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

fn parse_yaml(what: &str, text: &str) -> Result<Value, ImageError> {
    mooring_core::yaml::parse_one(text).map_err(|e| ImageError::Other(format!("{what}: {e}")))
}

/// The image reference a change deploys, `newName:tag[@digest]` (kustomize image syntax).
fn target_ref(change: &ImageChange) -> String {
    let name = change.new_name.as_deref().unwrap_or(&change.name);
    match &change.new_digest {
        Some(d) => format!("{name}:{}@{d}", change.new_tag),
        None => format!("{name}:{}", change.new_tag),
    }
}

fn check_change(change: &ImageChange) -> Result<(), ImageError> {
    ImageRef::parse(&change.name)?;
    if let Some(n) = &change.new_name {
        ImageRef::parse(n)?;
    }
    ImageRef::parse(&target_ref(change))?;
    Ok(())
}

/// Set `changes` in a kustomization's `images:` as `kustomize edit set image` would
/// (each change's entry gets `newName`, `newTag` and `digest`; a stale digest is removed;
/// a missing entry or list is added), keeping every other byte: the edit of `mooring
/// promote --image` ([`crate::delivery::set_kustomize_image`]), so both write-backs edit
/// kustomizations one way.
pub fn edit_kustomization(text: &str, changes: &[ImageChange]) -> Result<String, ImageError> {
    if text.len() > MAX_OUTPUT_BYTES {
        return Err(ImageError::Other(format!(
            "kustomization is larger than {MAX_OUTPUT_BYTES} bytes"
        )));
    }
    let mut out = text.to_string();
    for change in changes {
        check_change(change)?;
        let spec = crate::delivery::ImageSpec {
            name: change.name.clone(),
            new_name: change.new_name.clone(),
            new_tag: Some(change.new_tag.clone()),
            digest: change.new_digest.clone(),
        };
        out = crate::delivery::set_kustomize_image("kustomization", &out, &spec)
            .map_err(|e| ImageError::Other(e.to_string()))?;
    }
    Ok(out)
}

/// What a parameter file (or an `argocd` override) sets for the images.
#[derive(Debug, Clone, Copy)]
pub enum ParameterKind<'a> {
    /// `kustomize.images`: `name=newName:tag[@digest]` strings.
    Kustomize,
    /// `helm.parameters`: the watched images, for their `helm.image-*` parameter names
    /// (default `image.name` and `image.tag`), matched to the changes by alias (or name).
    Helm { images: &'a [WatchedImage] },
}

/// The kustomize image override string for a change (`name=newName:tag@digest`, or
/// `name:tag@digest` when the name is kept), as `argocd app set --kustomize-image`.
pub fn kustomize_image_string(change: &ImageChange) -> String {
    match &change.new_name {
        Some(n) if *n != change.name => format!("{}={}", change.name, target_ref(change)),
        _ => target_ref(change),
    }
}

/// The name part of a kustomize image override string.
fn kustomize_string_name(s: &str) -> String {
    if let Some((n, _)) = s.split_once('=') {
        return n.to_string();
    }
    let no_digest = s.split('@').next().unwrap_or(s);
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[last_slash..].rfind(':') {
        Some(i) => no_digest[..last_slash + i].to_string(),
        None => no_digest.to_string(),
    }
}

fn merge_kustomize_images(
    existing: &[Value],
    changes: &[ImageChange],
) -> Result<Vec<Value>, ImageError> {
    let mut out: Vec<Value> = existing.to_vec();
    for change in changes {
        check_change(change)?;
        let s = Value::String(kustomize_image_string(change));
        match out.iter().position(|e| {
            e.as_str().map(kustomize_string_name).as_deref() == Some(change.name.as_str())
        }) {
            Some(i) => out[i] = s,
            None => out.push(s),
        }
    }
    Ok(out)
}

/// The Helm parameters (name, value) for one change.
fn helm_params(
    change: &ImageChange,
    images: &[WatchedImage],
) -> Result<Vec<(String, String)>, ImageError> {
    let image = images
        .iter()
        .find(|i| match (&change.alias, &i.alias) {
            (Some(a), Some(b)) => a == b,
            (None, None) => i.image.name() == change.name,
            _ => false,
        })
        .ok_or_else(|| {
            ImageError::Other(format!(
                "no watched image for the change of {}",
                change.name
            ))
        })?;
    let name = change
        .new_name
        .clone()
        .unwrap_or_else(|| image.image.name());
    if let Some(spec) = &image.helm_image_spec {
        let value = match &change.new_digest {
            Some(d) => format!("{name}:{}@{d}", change.new_tag),
            None => format!("{name}:{}", change.new_tag),
        };
        return Ok(vec![(spec.clone(), value)]);
    }
    let tag_value = match &change.new_digest {
        Some(d) => d.clone(),
        None => change.new_tag.clone(),
    };
    Ok(vec![
        (
            image
                .helm_image_name
                .clone()
                .unwrap_or_else(|| "image.name".into()),
            name,
        ),
        (
            image
                .helm_image_tag
                .clone()
                .unwrap_or_else(|| "image.tag".into()),
            tag_value,
        ),
    ])
}

fn merge_helm_parameters(
    existing: &[Value],
    changes: &[ImageChange],
    images: &[WatchedImage],
) -> Result<Vec<Value>, ImageError> {
    let mut out: Vec<Value> = existing.to_vec();
    for change in changes {
        check_change(change)?;
        for (name, value) in helm_params(change, images)? {
            let p = json!({ "name": name, "value": value, "forcestring": true });
            match out
                .iter()
                .position(|e| e.get("name").and_then(Value::as_str) == Some(name.as_str()))
            {
                Some(i) => out[i] = p,
                None => out.push(p),
            }
        }
    }
    Ok(out)
}

fn list_at<'a>(v: &'a Value, section: &str, key: &str) -> Result<&'a [Value], ImageError> {
    match v.get(section).and_then(|s| s.get(key)) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(ImageError::Other(format!("{section}.{key} is not a list"))),
    }
}

fn set_list(
    v: &mut Map<String, Value>,
    section: &str,
    key: &str,
    list: Vec<Value>,
) -> Result<(), ImageError> {
    let s = v
        .entry(section.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if s.is_null() {
        *s = Value::Object(Map::new());
    }
    let Some(obj) = s.as_object_mut() else {
        return Err(ImageError::Other(format!("{section} is not a mapping")));
    };
    obj.insert(key.to_string(), Value::Array(list));
    Ok(())
}

/// Argo CD's `.argocd-source-<app>.yaml` with the changes merged into `existing` (kept
/// keys and other images' entries stay).
pub fn parameter_file(
    existing: Option<&str>,
    changes: &[ImageChange],
    kind: ParameterKind<'_>,
) -> Result<String, ImageError> {
    let doc = match existing {
        Some(t) if !t.trim().is_empty() => parse_yaml("parameter file", t)?,
        _ => Value::Object(Map::new()),
    };
    let doc = if doc.is_null() {
        Value::Object(Map::new())
    } else {
        doc
    };
    let Some(map) = doc.as_object() else {
        return Err(ImageError::Other("parameter file is not a mapping".into()));
    };
    let mut map = map.clone();
    match kind {
        ParameterKind::Kustomize => {
            let list = merge_kustomize_images(list_at(&doc, "kustomize", "images")?, changes)?;
            set_list(&mut map, "kustomize", "images", list)?;
        }
        ParameterKind::Helm { images } => {
            let list =
                merge_helm_parameters(list_at(&doc, "helm", "parameters")?, changes, images)?;
            set_list(&mut map, "helm", "parameters", list)?;
        }
    }
    let out = serde_saphyr::to_string(&Value::Object(map.clone()))
        .map_err(|e| ImageError::Other(format!("parameter file: {e}")))?;
    if out.len() > MAX_OUTPUT_BYTES {
        return Err(ImageError::Other(format!(
            "parameter file would be larger than {MAX_OUTPUT_BYTES} bytes"
        )));
    }
    if parse_yaml("written parameter file", &out)? != Value::Object(map) {
        return Err(ImageError::Other(
            "parameter file does not read back as written".into(),
        ));
    }
    Ok(out)
}

/// The JSON merge patch of an Application that sets the changes as parameter overrides
/// of its single `spec.source` (`argocd` write-back). The lists are written whole (a
/// merge patch replaces arrays), starting from what `source` has.
pub fn argocd_override(
    source: &mooring_core::app::ApplicationSource,
    changes: &[ImageChange],
    kind: ParameterKind<'_>,
) -> Result<Value, ImageError> {
    Ok(json!({ "spec": { "source": source_override(source, changes, kind)? } }))
}

/// The `spec.source` fragment of [`argocd_override`] (for a multi-source Application the
/// caller places it into its `spec.sources` entry).
pub fn source_override(
    source: &mooring_core::app::ApplicationSource,
    changes: &[ImageChange],
    kind: ParameterKind<'_>,
) -> Result<Value, ImageError> {
    Ok(match kind {
        ParameterKind::Kustomize => {
            let existing: Vec<Value> = source
                .kustomize
                .as_ref()
                .map(|k| k.images.iter().cloned().map(Value::String).collect())
                .unwrap_or_default();
            json!({ "kustomize": { "images": merge_kustomize_images(&existing, changes)? } })
        }
        ParameterKind::Helm { images } => {
            let existing: Vec<Value> = match source.helm.as_ref().and_then(|h| h.get("parameters"))
            {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a.clone(),
                Some(_) => {
                    return Err(ImageError::Other(
                        "spec.source.helm.parameters is not a list".into(),
                    ));
                }
            };
            json!({ "helm": { "parameters": merge_helm_parameters(&existing, changes, images)? } })
        }
    })
}

/// Image Updater's commit message: `build: automatic update of APP`, a blank line, then
/// `updates image NAME tag 'OLD' to 'NEW'` per change. A `template` (the admin's,
/// `git.commit-message-template`; never from an annotation) may use `{{ .AppName }}` and
/// one level of `{{ range .AppChanges }}…{{ end }}` with `{{ .Image }}`, `{{ .OldTag }}`
/// and `{{ .NewTag }}`, with Go's `{{-` / `-}}` whitespace trimming; any other action is
/// an error naming it (Go's full `text/template` is not implemented).
pub fn commit_message(
    app: &str,
    changes: &[ImageChange],
    template: Option<&str>,
) -> Result<String, ImageError> {
    let Some(template) = template else {
        let mut s = format!("build: automatic update of {app}\n\n");
        for c in changes {
            s.push_str(&format!(
                "updates image {} tag '{}' to '{}'\n",
                change_image(c),
                c.old.as_deref().unwrap_or(""),
                change_new(c)
            ));
        }
        return Ok(s);
    };
    let err = |r: String| ImageError::Other(format!("commit message template: {r}"));
    let segments = template_segments(template).map_err(err)?;
    let mut out = String::new();
    let mut i = 0;
    while i < segments.len() {
        match &segments[i] {
            Segment::Text(t) => out.push_str(t),
            Segment::Action(a) if a == ".AppName" => out.push_str(app),
            Segment::Action(a) if a == "range .AppChanges" => {
                let end = segments[i + 1..]
                    .iter()
                    .position(|s| matches!(s, Segment::Action(a) if a == "end"))
                    .ok_or_else(|| err("range without {{ end }}".into()))?
                    + i
                    + 1;
                for c in changes {
                    for s in &segments[i + 1..end] {
                        match s {
                            Segment::Text(t) => out.push_str(t),
                            Segment::Action(a) => match a.as_str() {
                                ".Image" => out.push_str(&change_image(c)),
                                ".OldTag" => out.push_str(c.old.as_deref().unwrap_or("")),
                                ".NewTag" => out.push_str(&change_new(c)),
                                other => {
                                    return Err(err(format!(
                                        "{{{{ {other} }}}} is not supported inside range"
                                    )));
                                }
                            },
                        }
                    }
                }
                i = end;
            }
            Segment::Action(other) => {
                return Err(err(format!("{{{{ {other} }}}} is not supported")));
            }
        }
        i += 1;
    }
    Ok(out)
}

fn change_image(c: &ImageChange) -> String {
    c.new_name.clone().unwrap_or_else(|| c.name.clone())
}

fn change_new(c: &ImageChange) -> String {
    c.new_digest.clone().unwrap_or_else(|| c.new_tag.clone())
}

enum Segment {
    Text(String),
    Action(String),
}

/// Split a Go template into text and actions, applying `{{-` and `-}}` trimming.
fn template_segments(template: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut rest = template;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed {{{{ at {:?}", &after[..after.len().min(20)]))?;
        let inner = &after[..close];
        if inner
            .strip_prefix('-')
            .is_some_and(|s| s.starts_with([' ', '\t', '\n']))
        {
            text = text.trim_end();
        }
        segments.push(Segment::Text(text.to_string()));
        trim_next = inner.ends_with('-') && inner[..inner.len() - 1].ends_with([' ', '\t', '\n']);
        let action = inner.trim_start_matches('-').trim_end_matches('-').trim();
        segments.push(Segment::Action(action.to_string()));
        rest = &after[close + 2..];
    }
    segments.push(Segment::Text(if trim_next {
        rest.trim_start().to_string()
    } else {
        rest.to_string()
    }));
    Ok(segments)
}

#[cfg(test)]
mod tests;
