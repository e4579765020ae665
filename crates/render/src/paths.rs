//! Path safety: everything rendered must resolve (after following symlinks) to a place
//! inside the exported tree `root`.

use crate::RenderError;
use std::path::{Component, Path, PathBuf};

/// The canonical root and the canonical application directory inside it.
pub(crate) struct AppDir {
    pub root: PathBuf,
    pub dir: PathBuf,
}

/// Canonicalize `root` (which must exist).
pub(crate) fn canonical_root(root: &Path) -> Result<PathBuf, RenderError> {
    root.canonicalize().map_err(|e| RenderError::io(root, e))
}

/// Check `source.path` lexically (relative, no `..`), then resolve it inside `root`.
pub(crate) fn resolve_app_dir(root: &Path, path: Option<&str>) -> Result<AppDir, RenderError> {
    let root = canonical_root(root)?;
    let raw = path.unwrap_or("");
    let rel = check_relative(raw)?;
    let joined = root.join(&rel);
    let dir = match joined.canonicalize() {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RenderError::PathNotFound { path: raw.into() })
        }
        Err(e) => return Err(RenderError::io(joined, e)),
    };
    if !dir.starts_with(&root) {
        return Err(RenderError::OutsideRoot {
            path: format!("source path {raw:?}"),
            target: dir.display().to_string(),
        });
    }
    if !dir.is_dir() {
        return Err(RenderError::NotADirectory { path: raw.into() });
    }
    Ok(AppDir { root, dir })
}

/// Argo CD accepts `""`, `"."` and `"./x"`; refuse absolute paths and `..` anywhere.
pub(crate) fn check_relative(raw: &str) -> Result<PathBuf, RenderError> {
    let invalid = |reason| RenderError::InvalidPath {
        path: raw.into(),
        reason,
    };
    if raw.contains('\0') {
        return Err(invalid("it contains a NUL byte"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err(invalid("`..` would leave the repository")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid("it is absolute"));
            }
        }
    }
    Ok(out)
}

/// Canonicalize `p` and require it inside `root`. `what` describes the reference for
/// the error message (e.g. a file name or "resource ../x in apps/a/kustomization.yaml").
pub(crate) fn inside_root(root: &Path, p: &Path, what: &str) -> Result<PathBuf, RenderError> {
    let canon = p.canonicalize().map_err(|e| RenderError::io(p, e))?;
    if canon.starts_with(root) {
        Ok(canon)
    } else {
        Err(RenderError::OutsideRoot {
            path: what.into(),
            target: canon.display().to_string(),
        })
    }
}

/// `p` relative to `root` with `/` separators, `.` for the root itself.
pub(crate) fn repo_relative(root: &Path, p: &Path) -> String {
    match p.strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
        Ok(rel) => rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => p.display().to_string(),
    }
}

/// Size check shared by every file read.
pub(crate) fn check_size(path: &Path, display: &str, limit: u64) -> Result<u64, RenderError> {
    let size = std::fs::metadata(path)
        .map_err(|e| RenderError::io(path, e))?
        .len();
    if size > limit {
        return Err(RenderError::FileTooLarge {
            file: display.into(),
            size,
            limit,
        });
    }
    Ok(size)
}

/// Read a UTF-8 file after the size check (a file may grow between the check and the
/// read, so the read itself is bounded too).
pub(crate) fn read_capped(path: &Path, display: &str, limit: u64) -> Result<String, RenderError> {
    use std::io::Read;
    check_size(path, display, limit)?;
    let f = std::fs::File::open(path).map_err(|e| RenderError::io(path, e))?;
    let mut buf = Vec::new();
    f.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| RenderError::io(path, e))?;
    if buf.len() as u64 > limit {
        return Err(RenderError::FileTooLarge {
            file: display.into(),
            size: buf.len() as u64,
            limit,
        });
    }
    String::from_utf8(buf).map_err(|_| {
        RenderError::io(
            display,
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(check_relative("").expect("ok"), PathBuf::new());
        assert_eq!(check_relative("./a/b").expect("ok"), PathBuf::from("a/b"));
        assert!(check_relative("../x").is_err());
        assert!(check_relative("a/../../x").is_err());
        assert!(check_relative("/etc").is_err());
    }
}
