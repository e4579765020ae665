//! Reading a tree of files through an injected reader.
//!
//! `core` and `engine` do no I/O, yet some rules are about files: which `health.lua`
//! scripts a `resource_customizations` tree defines, which `health_test.yaml` cases it
//! holds. Those rules are written against [`Files`], a reader the caller hands in, as
//! Gatekeeper's `gator verify` reads its suites through an `fs.FS`: the binary passes the
//! real file system (`mooring_source::files::StdFiles`, the one implementation over
//! `std::fs`), tests pass [`MemFiles`], and the rule is the same either way.
//!
//! The reader reports what an entry *is* without following symlinks, so the rules can
//! refuse them (nothing outside the tree is read); reading a file follows the path as the
//! operating system does, so callers check the entry first.

/// The file names kustomize recognises in a directory, in its order of preference (the
/// renderer, the image watcher's write-back and `mooring promote` look for the same ones).
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

/// What a path names, symlinks not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed by the rules that use [`Files`]).
    Symlink,
    /// Anything else: a socket, a device, a FIFO.
    Other,
}

/// One entry of a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    /// Size in bytes (of the link itself for a symlink).
    pub len: u64,
}

/// A read-only view of a file tree.
pub trait Files {
    /// What `path` is, without following a symlink; an error of kind
    /// [`io::ErrorKind::NotFound`] when nothing is there.
    fn entry(&self, path: &Path) -> io::Result<Entry>;
    /// The paths (`dir` joined with each name) of the entries of directory `dir`, in any
    /// order.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// The UTF-8 text of file `path`.
    fn read(&self, path: &Path) -> io::Result<String>;
}

/// A file tree held in memory: files with their text, directories implied by the files'
/// parents, and symlinks (which have no target: rules never follow them).
#[derive(Debug, Clone, Default)]
pub struct MemFiles {
    files: BTreeMap<PathBuf, String>,
    links: BTreeSet<PathBuf>,
}

impl MemFiles {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) the file `path` with `text`.
    pub fn with_file(mut self, path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.files.insert(path.into(), text.into());
        self
    }

    /// Add a symlink at `path`.
    pub fn with_symlink(mut self, path: impl Into<PathBuf>) -> Self {
        self.links.insert(path.into());
        self
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.files
            .keys()
            .chain(self.links.iter())
            .any(|p| p != path && p.starts_with(path))
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

impl Files for MemFiles {
    fn entry(&self, path: &Path) -> io::Result<Entry> {
        if self.links.contains(path) {
            return Ok(Entry {
                kind: EntryKind::Symlink,
                len: 0,
            });
        }
        if let Some(text) = self.files.get(path) {
            return Ok(Entry {
                kind: EntryKind::File,
                len: text.len() as u64,
            });
        }
        if self.is_dir(path) {
            return Ok(Entry {
                kind: EntryKind::Dir,
                len: 0,
            });
        }
        Err(not_found(path))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        if !self.is_dir(dir) {
            return Err(match self.entry(dir) {
                Ok(_) => io::Error::other(format!("{} is not a directory", dir.display())),
                Err(e) => e,
            });
        }
        let children: BTreeSet<PathBuf> = self
            .files
            .keys()
            .chain(self.links.iter())
            .filter_map(|p| {
                let rest = p.strip_prefix(dir).ok()?;
                let first = rest.components().next()?;
                Some(dir.join(first))
            })
            .collect();
        Ok(children.into_iter().collect())
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        if self.links.contains(path) {
            return Err(not_found(path));
        }
        match self.files.get(path) {
            Some(text) => Ok(text.clone()),
            None if self.is_dir(path) => Err(io::Error::other(format!(
                "{} is a directory",
                path.display()
            ))),
            None => Err(not_found(path)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_files_tree() {
        let files = MemFiles::new()
            .with_file("t/a/health.lua", "return {}")
            .with_file("t/b.txt", "x")
            .with_symlink("t/link");
        let kind = |p: &str| files.entry(Path::new(p)).map(|e| e.kind).ok();
        assert_eq!(kind("t"), Some(EntryKind::Dir));
        assert_eq!(kind("t/a"), Some(EntryKind::Dir));
        assert_eq!(kind("t/b.txt"), Some(EntryKind::File));
        assert_eq!(kind("t/link"), Some(EntryKind::Symlink));
        assert_eq!(kind("t/missing"), None);
        assert_eq!(
            files
                .entry(Path::new("t/missing"))
                .expect_err("absent")
                .kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            files.list(Path::new("t")).expect("a directory"),
            vec![
                PathBuf::from("t/a"),
                PathBuf::from("t/b.txt"),
                PathBuf::from("t/link")
            ]
        );
        assert!(files.list(Path::new("t/b.txt")).is_err());
        assert_eq!(
            files.read(Path::new("t/a/health.lua")).expect("a file"),
            "return {}"
        );
        assert!(files.read(Path::new("t/a")).is_err());
        assert_eq!(
            files
                .read(Path::new("t/link"))
                .expect_err("never followed")
                .kind(),
            io::ErrorKind::NotFound
        );
    }
}
