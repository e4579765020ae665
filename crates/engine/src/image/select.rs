//! Which tag an image should run: filters, strategies, and what is deployed now.
//!
//! [`candidates`] filters a registry's tag list (`allow-tags`, `ignore-tags`, the version
//! constraint) and orders it best first per strategy; [`choose`] turns the registry's
//! [`TagInfo`]s into at most one [`ImageChange`]. [`current_images`] finds what the
//! rendered objects run now, so the watcher knows the "old" side and whether an image is
//! used at all.
//!
//! # Semantic versions as Image Updater reads them
//!
//! Image Updater uses Masterminds/semver: tags are parsed leniently (`v1.2.3`, `1.2`
//! and `1` are versions; `latest` is skipped), constraints are comma or space separated
//! comparators (AND) joined by `||` (OR): `=`, `!=`, `>`, `>=`, `<`, `<=`, `~1.2`
//! (patch updates), `^1.2` (minor updates; `^0.2` patch only), `1.2.x` / `1.2.*`
//! wildcards, hyphen ranges `1.2 - 1.4`. A pre-release tag only satisfies a constraint
//! whose comparators carry a pre-release (`>=1.0.0-0`). The `semver` crate does the
//! parsing and ordering of versions; its own requirement syntax differs (a bare version
//! means `^`, no `||`, no `!=`), so the comparators are evaluated here. With no
//! constraint every semantic-version tag is a candidate, pre-releases included, as in
//! Image Updater.
//!
//! The semver strategy never moves an image to a lower version than it runs: a change
//! is proposed only when the best candidate is newer than the deployed tag.

use std::cmp::Ordering;

use semver::Version;
use serde_json::Value;

use super::{
    ImageChange, ImageError, ImageRef, Platform, Strategy, TagFilter, TagInfo, WatchedImage,
};

/// Size limit of one compiled tag regexp (tenant input).
const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Longest tag regexp or glob accepted.
const MAX_PATTERN_LEN: usize = 1024;
/// Most comparators in one constraint.
const MAX_COMPARATORS: usize = 32;

/// Compile an `allow-tags` / `ignore-tags` regexp (RE2 syntax, as Go's `regexp`).
pub fn compile_regex(re: &str) -> Result<regex::Regex, String> {
    if re.len() > MAX_PATTERN_LEN {
        return Err(format!("regexp longer than {MAX_PATTERN_LEN} characters"));
    }
    regex::RegexBuilder::new(re)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("regexp {re:?}: {e}"))
}

/// Compile a glob with Go's `filepath.Match` syntax (`*`, `?`, `[a-z]`, `[^a-z]`).
pub fn compile_glob(glob: &str) -> Result<globset::GlobMatcher, String> {
    if glob.len() > MAX_PATTERN_LEN {
        return Err(format!("pattern longer than {MAX_PATTERN_LEN} characters"));
    }
    if glob.contains('{') || glob.contains('}') {
        return Err(format!("pattern {glob:?}: braces are not glob syntax here"));
    }
    // Go negates a class with `^`, globset with `!`.
    let translated = glob.replace("[^", "[!");
    globset::GlobBuilder::new(&translated)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("pattern {glob:?}: {e}"))
}

/// A compiled tag filter.
enum Matcher {
    Regexp(regex::Regex),
    Glob(globset::GlobMatcher),
}

impl Matcher {
    fn new(filter: &TagFilter) -> Result<Matcher, ImageError> {
        let err = ImageError::Other;
        Ok(match filter {
            TagFilter::Regexp(re) => Matcher::Regexp(compile_regex(re).map_err(err)?),
            TagFilter::Glob(g) => Matcher::Glob(compile_glob(g).map_err(err)?),
        })
    }

    fn is_match(&self, tag: &str) -> bool {
        match self {
            Matcher::Regexp(r) => r.is_match(tag),
            Matcher::Glob(g) => g.is_match(tag),
        }
    }
}

/// An image's `allow-tags` and `ignore-tags`, compiled once for a whole tag list.
pub struct TagFilters {
    allow: Option<Matcher>,
    ignore: Vec<Matcher>,
}

impl TagFilters {
    pub fn new(image: &WatchedImage) -> Result<TagFilters, ImageError> {
        Ok(TagFilters {
            allow: image.allow_tags.as_ref().map(Matcher::new).transpose()?,
            ignore: image
                .ignore_tags
                .iter()
                .map(Matcher::new)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether `allow-tags` and `ignore-tags` let `tag` through.
    pub fn allows(&self, tag: &str) -> bool {
        self.allow.as_ref().is_none_or(|a| a.is_match(tag))
            && !self.ignore.iter().any(|i| i.is_match(tag))
    }
}

/// Whether `allow-tags` and `ignore-tags` let `tag` through (compiles the filters: for
/// a list of tags use [`TagFilters`]).
pub fn tag_allowed(image: &WatchedImage, tag: &str) -> Result<bool, ImageError> {
    Ok(TagFilters::new(image)?.allows(tag))
}

/// Parse a tag as Masterminds' `NewVersion` does: an optional `v`, one to three numeric
/// parts (missing ones are 0), an optional `-prerelease` and `+build`.
pub fn parse_version(tag: &str) -> Option<Version> {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    let (t, build) = match t.split_once('+') {
        Some((a, b)) => (a, Some(b)),
        None => (t, None),
    };
    let (core, pre) = match t.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (t, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut full = String::new();
    for i in 0..3 {
        if i > 0 {
            full.push('.');
        }
        full.push_str(parts.get(i).copied().unwrap_or("0"));
    }
    if let Some(p) = pre {
        full.push('-');
        full.push_str(p);
    }
    if let Some(b) = build {
        full.push('+');
        full.push_str(b);
    }
    Version::parse(&full).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Tilde,
    Caret,
}

#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    /// The version with unspecified parts 0.
    version: Version,
    /// How many of major, minor, patch were given (a wildcard ends the count).
    given: usize,
}

/// A Masterminds/semver constraint: OR of ANDs of comparators.
#[derive(Debug, Clone)]
pub struct Constraint {
    groups: Vec<Vec<Comparator>>,
}

impl Constraint {
    pub fn parse(text: &str) -> Result<Constraint, ImageError> {
        let err =
            |reason: String| ImageError::Other(format!("version constraint {text:?}: {reason}"));
        if text.len() > MAX_PATTERN_LEN {
            return Err(err(format!("longer than {MAX_PATTERN_LEN} characters")));
        }
        let mut groups = Vec::new();
        let mut count = 0;
        for group in text.split("||") {
            let tokens: Vec<&str> = group
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
                .collect();
            if tokens.is_empty() {
                return Err(err("empty comparator list".into()));
            }
            let mut comps = Vec::new();
            let mut i = 0;
            while i < tokens.len() {
                let mut tok = tokens[i].to_string();
                // `>= 1.2`: an operator alone takes the next token.
                if tok.bytes().all(|b| b"=!<>~^".contains(&b)) {
                    i += 1;
                    let Some(next) = tokens.get(i) else {
                        return Err(err(format!("operator {tok:?} without a version")));
                    };
                    tok.push_str(next);
                }
                // Hyphen range `A - B`.
                if tokens.get(i + 1) == Some(&"-") {
                    let Some(hi) = tokens.get(i + 2) else {
                        return Err(err("hyphen range without an upper end".into()));
                    };
                    comps.push(comparator(&format!(">={tok}")).map_err(&err)?);
                    comps.push(comparator(&format!("<={hi}")).map_err(&err)?);
                    i += 3;
                } else {
                    comps.push(comparator(&tok).map_err(&err)?);
                    i += 1;
                }
                count += 1;
            }
            groups.push(comps);
        }
        if count > MAX_COMPARATORS {
            return Err(err(format!("more than {MAX_COMPARATORS} comparators")));
        }
        Ok(Constraint { groups })
    }

    /// Whether `v` satisfies the constraint.
    pub fn matches(&self, v: &Version) -> bool {
        self.groups.iter().any(|group| {
            // A pre-release satisfies a group only if the group names a pre-release.
            if !v.pre.is_empty() && !group.iter().any(|c| !c.version.pre.is_empty()) {
                return false;
            }
            group.iter().all(|c| c.matches(v))
        })
    }
}

fn comparator(tok: &str) -> Result<Comparator, String> {
    let ops: &[(&str, Op)] = &[
        (">=", Op::Ge),
        ("=>", Op::Ge),
        ("<=", Op::Le),
        ("=<", Op::Le),
        ("!=", Op::Ne),
        ("~>", Op::Tilde),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
        ("~", Op::Tilde),
        ("^", Op::Caret),
    ];
    let (op, rest) = ops
        .iter()
        .find_map(|(p, op)| tok.strip_prefix(p).map(|r| (*op, r)))
        .unwrap_or((Op::Eq, tok));
    let rest = rest.strip_prefix('v').unwrap_or(rest);
    let (core, suffix) = match rest.find(['-', '+']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return Err(format!("{tok:?} is not a version comparator"));
    }
    let mut nums = [0u64; 3];
    let mut given = 0;
    let mut wild = false;
    for (i, p) in parts.iter().enumerate() {
        if matches!(*p, "x" | "X" | "*") {
            wild = true;
            continue;
        }
        if wild || p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{tok:?} is not a version comparator"));
        }
        nums[i] = p
            .parse()
            .map_err(|_| format!("{tok:?}: number too large"))?;
        given = i + 1;
    }
    let text = format!("{}.{}.{}{suffix}", nums[0], nums[1], nums[2]);
    let version = Version::parse(&text).map_err(|e| format!("{tok:?}: {e}"))?;
    if given < 3 && !suffix.is_empty() {
        return Err(format!("{tok:?}: a pre-release needs major.minor.patch"));
    }
    Ok(Comparator { op, version, given })
}

impl Comparator {
    /// The exclusive upper end of the range the given parts describe (`1.2` → `1.3.0`).
    fn bump(&self, at: usize) -> Version {
        let v = &self.version;
        match at {
            0 => Version::new(v.major.saturating_add(1), 0, 0),
            1 => Version::new(v.major, v.minor.saturating_add(1), 0),
            _ => Version::new(v.major, v.minor, v.patch.saturating_add(1)),
        }
    }

    fn in_range(&self, v: &Version, upper: Option<Version>) -> bool {
        let lo = self.version.cmp_precedence(v) != Ordering::Greater;
        lo && upper.is_none_or(|u| v.cmp_precedence(&u) == Ordering::Less)
    }

    fn matches(&self, v: &Version) -> bool {
        let base = &self.version;
        let prefix_range = || {
            if self.given == 0 {
                true
            } else {
                self.in_range(v, Some(self.bump(self.given - 1)))
            }
        };
        match self.op {
            Op::Eq if self.given == 3 => base.cmp_precedence(v) == Ordering::Equal,
            Op::Eq => prefix_range(),
            Op::Ne if self.given == 3 => base.cmp_precedence(v) != Ordering::Equal,
            Op::Ne => !prefix_range(),
            Op::Gt if self.given == 3 => v.cmp_precedence(base) == Ordering::Greater,
            Op::Gt if self.given == 0 => false,
            Op::Gt => v.cmp_precedence(&self.bump(self.given - 1)) != Ordering::Less,
            Op::Ge => v.cmp_precedence(base) != Ordering::Less,
            Op::Lt => v.cmp_precedence(base) == Ordering::Less,
            Op::Le if self.given == 3 => v.cmp_precedence(base) != Ordering::Greater,
            Op::Le if self.given == 0 => true,
            Op::Le => v.cmp_precedence(&self.bump(self.given - 1)) == Ordering::Less,
            Op::Tilde => match self.given {
                0 => true,
                1 => self.in_range(v, Some(self.bump(0))),
                _ => self.in_range(v, Some(self.bump(1))),
            },
            Op::Caret => match self.given {
                0 => true,
                _ if base.major > 0 || self.given == 1 => self.in_range(v, Some(self.bump(0))),
                _ if base.minor > 0 || self.given == 2 => self.in_range(v, Some(self.bump(1))),
                _ => self.in_range(v, Some(self.bump(2))),
            },
        }
    }
}

/// Filter `tags` by `allow-tags`, `ignore-tags` and (semver) the constraint, and order
/// them best first: semver by version precedence, alphabetical by reverse byte order.
/// `newest-build` needs the build dates (see [`choose`]); here it keeps the tags in
/// reverse alphabetical order. `digest` keeps only the constraint's tag.
pub fn candidates(image: &WatchedImage, tags: &[String]) -> Result<Vec<String>, ImageError> {
    let filters = TagFilters::new(image)?;
    let mut allowed: Vec<String> = tags.iter().filter(|t| filters.allows(t)).cloned().collect();
    Ok(match image.strategy {
        Strategy::Semver => {
            let constraint = image
                .constraint
                .as_deref()
                .map(Constraint::parse)
                .transpose()?;
            let mut versions: Vec<(Version, String)> = allowed
                .into_iter()
                .filter_map(|t| parse_version(&t).map(|v| (v, t)))
                .filter(|(v, _)| constraint.as_ref().is_none_or(|c| c.matches(v)))
                .collect();
            versions.sort_by(|(a, ta), (b, tb)| b.cmp_precedence(a).then_with(|| tb.cmp(ta)));
            versions.into_iter().map(|(_, t)| t).collect()
        }
        Strategy::Alphabetical | Strategy::NewestBuild => {
            allowed.sort_by(|a, b| b.cmp(a));
            allowed
        }
        Strategy::Digest => allowed
            .into_iter()
            .filter(|t| image.constraint.as_deref() == Some(t.as_str()))
            .collect(),
    })
}

/// Whether `have` provides `want` (a wanted platform without variant takes any variant).
fn provides(have: &[Platform], want: &Platform) -> bool {
    have.iter().any(|p| {
        p.os == want.os
            && p.architecture == want.architecture
            && (want.variant.is_none() || p.variant == want.variant)
    })
}

/// The platform wanted when `<alias>.platforms` is not set.
pub fn default_platform() -> Platform {
    Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    }
}

/// Pick the tag `image` should run, given what the registry said about its tags, and
/// return the change from what runs now (`current` tag, `current_digest`), or `None` when
/// nothing should change. A tag lacking a wanted platform is skipped (a tag whose
/// platforms the registry did not report is kept). `newest-build` orders by the config's
/// `created` (tags without one last, then by name); `semver` never proposes a lower
/// version than the deployed one; `digest` proposes the constraint tag's digest when it
/// differs from `current_digest`.
pub fn choose(
    image: &WatchedImage,
    current: Option<&str>,
    current_digest: Option<&str>,
    infos: &[TagInfo],
) -> Result<Option<ImageChange>, ImageError> {
    let default = [default_platform()];
    let wanted: &[Platform] = if image.platforms.is_empty() {
        &default
    } else {
        &image.platforms
    };
    let usable: Vec<&TagInfo> = infos
        .iter()
        .filter(|i| i.platforms.is_empty() || wanted.iter().all(|w| provides(&i.platforms, w)))
        .collect();
    let names: Vec<String> = usable.iter().map(|i| i.tag.clone()).collect();
    let ordered = candidates(image, &names)?;
    let by_tag: std::collections::HashMap<&str, &TagInfo> =
        usable.iter().map(|i| (i.tag.as_str(), *i)).collect();
    let info_of = |t: &str| by_tag.get(t).copied();
    let best: Option<&TagInfo> = match image.strategy {
        Strategy::NewestBuild => {
            let mut with: Vec<&TagInfo> = ordered.iter().filter_map(|t| info_of(t)).collect();
            // `ordered` is reverse alphabetical; a stable sort by date keeps that for ties.
            with.sort_by(|a, b| match (&a.created, &b.created) {
                (Some(x), Some(y)) => y.cmp(x),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            });
            with.first().copied()
        }
        _ => ordered.first().and_then(|t| info_of(t)),
    };
    let Some(best) = best else {
        return Ok(None);
    };
    let change = |new_digest: Option<String>| {
        let manifest_name = image
            .kustomize_image_name
            .clone()
            .unwrap_or_else(|| image.image.name());
        let new_name = image
            .kustomize_image_name
            .as_ref()
            .map(|_| image.image.name());
        ImageChange {
            alias: image.alias.clone(),
            name: manifest_name,
            new_name,
            old: match (current, current_digest) {
                (_, Some(d)) if image.strategy == Strategy::Digest => Some(d.to_string()),
                (Some(t), _) => Some(t.to_string()),
                (None, d) => d.map(str::to_string),
            },
            new_tag: best.tag.clone(),
            new_digest,
        }
    };
    Ok(match image.strategy {
        Strategy::Digest => {
            if current_digest == Some(best.digest.as_str()) {
                None
            } else {
                Some(change(Some(best.digest.clone())))
            }
        }
        Strategy::Semver => {
            let newer = match current.and_then(parse_version) {
                Some(cur) => parse_version(&best.tag)
                    .is_some_and(|b| b.cmp_precedence(&cur) == Ordering::Greater),
                None => current != Some(best.tag.as_str()),
            };
            newer.then(|| change(None))
        }
        Strategy::NewestBuild | Strategy::Alphabetical => {
            (current != Some(best.tag.as_str())).then(|| change(None))
        }
    })
}

/// One image reference found in a rendered object or a kustomization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedImage {
    /// Where: `Kind/namespace/name container` or `kustomization images[i]`.
    pub place: String,
    pub image: ImageRef,
}

/// Container fields of a Pod spec that hold images.
const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// The Pod spec inside a workload object, if it is one of the kinds that run Pods.
fn pod_spec(obj: &Value) -> Option<&Value> {
    let kind = obj.get("kind")?.as_str()?;
    match kind {
        "Pod" => obj.get("spec"),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "Rollout"
        | "ReplicationController"
        | "PodTemplate" => {
            let t = if kind == "PodTemplate" {
                obj.get("template")
            } else {
                obj.get("spec")?.get("template")
            };
            t?.get("spec")
        }
        "CronJob" => obj
            .get("spec")?
            .get("jobTemplate")?
            .get("spec")?
            .get("template")?
            .get("spec"),
        _ => None,
    }
}

/// Every container image in the rendered objects (Pods, Deployments, StatefulSets,
/// DaemonSets, ReplicaSets, Jobs, CronJobs, Argo Rollouts, PodTemplates). References
/// that do not parse are returned as errors naming the object, not skipped.
pub fn current_images(objects: &[Value]) -> (Vec<DeployedImage>, Vec<ImageError>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for obj in objects {
        let Some(spec) = pod_spec(obj) else { continue };
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let meta = obj.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let ns = meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or("");
        for list in CONTAINER_LISTS {
            let Some(items) = spec.get(*list).and_then(Value::as_array) else {
                continue;
            };
            for c in items {
                let Some(img) = c.get("image").and_then(Value::as_str) else {
                    continue;
                };
                let cname = c.get("name").and_then(Value::as_str).unwrap_or("");
                let place = format!("{kind}/{ns}/{name} {list}[{cname}]");
                match ImageRef::parse(img) {
                    Ok(image) => found.push(DeployedImage { place, image }),
                    Err(e) => errors.push(ImageError::Other(format!("{place}: {e}"))),
                }
            }
        }
    }
    (found, errors)
}

/// The tag and digest `image` runs with in `deployed` (the first use; Docker Hub names
/// normalised). `None` when no object uses the image.
pub fn current_tag<'a>(
    image: &WatchedImage,
    deployed: &'a [DeployedImage],
) -> Option<(Option<&'a str>, Option<&'a str>)> {
    let wanted = match &image.kustomize_image_name {
        Some(k) => ImageRef::parse(k).ok(),
        None => None,
    };
    deployed
        .iter()
        .find(|d| {
            d.image.same_image(&image.image)
                || wanted.as_ref().is_some_and(|w| d.image.same_image(w))
        })
        .map(|d| (d.image.tag.as_deref(), d.image.digest.as_deref()))
}

/// The current tag and digest of `name` set by a kustomize `images:` list (the source's
/// `spec.source.kustomize.images` strings `name=newName:tag@digest`, or a
/// kustomization's entries), so the watcher knows the old value before rendering.
pub fn kustomize_image_override(
    images: &[String],
    name: &str,
) -> Option<(Option<String>, Option<String>)> {
    let target = ImageRef::parse(name).ok()?;
    images.iter().find_map(|entry| {
        let (n, rest) = match entry.split_once('=') {
            Some((n, r)) => (n, r),
            None => {
                let r = ImageRef::parse(entry).ok()?;
                let n = r.name();
                return target
                    .same_image(&ImageRef::parse(&n).ok()?)
                    .then(|| (r.tag.clone(), r.digest.clone()));
            }
        };
        let n = ImageRef::parse(n).ok()?;
        if !n.same_image(&target) {
            return None;
        }
        let r = ImageRef::parse(rest).ok()?;
        Some((r.tag, r.digest))
    })
}

#[cfg(test)]
mod tests;
