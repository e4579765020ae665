//! The real file system behind [`mooring_core::files::Files`].
//!
//! Rules that read a local tree (custom health checks, `mooring health test`) are written
//! in `engine` against the `Files` reader and do no I/O themselves; this is the one
//! implementation over `std::fs` that the controller and the CLI hand them. It lives here
//! because this crate is where Mooring already reads local trees (directory sources).
//! Entries are described with `symlink_metadata`, so a symlink is reported as one and
//! never followed by the rules.

use mooring_core::files::{Entry, EntryKind, Files};
use std::io;
use std::path::{Path, PathBuf};

/// The process's file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFiles;

impl Files for StdFiles {
    fn entry(&self, path: &Path) -> io::Result<Entry> {
        let meta = std::fs::symlink_metadata(path)?;
        let kind = if meta.file_type().is_symlink() {
            EntryKind::Symlink
        } else if meta.is_dir() {
            EntryKind::Dir
        } else if meta.is_file() {
            EntryKind::File
        } else {
            EntryKind::Other
        };
        Ok(Entry {
            kind,
            len: meta.len(),
        })
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            out.push(entry?.path());
        }
        Ok(out)
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_without_following_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f.txt");
        std::fs::write(&file, "hello").expect("write");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).expect("mkdir");
        let link = dir.path().join("link");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        let files = StdFiles;
        assert_eq!(
            files.entry(&file).expect("file"),
            Entry {
                kind: EntryKind::File,
                len: 5
            }
        );
        assert_eq!(files.entry(&sub).expect("dir").kind, EntryKind::Dir);
        #[cfg(unix)]
        assert_eq!(files.entry(&link).expect("link").kind, EntryKind::Symlink);
        assert_eq!(
            files
                .entry(&dir.path().join("missing"))
                .expect_err("absent")
                .kind(),
            io::ErrorKind::NotFound
        );
        let mut listed = files.list(dir.path()).expect("list");
        listed.sort();
        let mut want = vec![file.clone(), sub];
        #[cfg(unix)]
        want.push(link);
        want.sort();
        assert_eq!(listed, want);
        assert_eq!(files.read(&file).expect("read"), "hello");
    }
}
