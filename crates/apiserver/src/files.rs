//! Private files: what a cluster (or `mooring up`) keeps on disk is readable by its owner
//! only.
//!
//! A data directory holds the SQLite database with its WAL and shared-memory files (every
//! Secret of the cluster: repository passwords, SSH keys, cluster bearer tokens), the
//! kubeconfig and token that open the API, and the TLS keys. The directory is 0700 and
//! each of those files 0600. Modes are set when a file is created *and* tightened when it
//! already exists, so a data directory left 0755/0644 by an older version (or a
//! careless `cp`) is closed at the next start. Files are created with their final mode
//! and tightened before anything is written into them, so there is no moment at which
//! the secret is readable by others.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Mode of private directories.
pub const DIR_MODE: u32 = 0o700;
/// Mode of private files.
pub const FILE_MODE: u32 = 0o600;

/// Create `dir` (and missing parents, 0700 too) or tighten it to 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
}

/// Tighten an existing file to 0600.
pub fn make_private(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
}

/// Tighten `path` to 0600 if it exists (SQLite's `-wal` and `-shm` come and go).
pub fn make_private_if_exists(path: &Path) -> std::io::Result<()> {
    match make_private(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Create (or truncate) `path` as a 0600 file, tightened before `contents` are written.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Create `path` as an empty 0600 file when it does not exist; tighten it when it does.
/// (SQLite gives its `-wal` and `-shm` files the mode of the database file.)
pub fn touch_private(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    make_private(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn created_and_tightened() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("a/b");
        private_dir(&dir).expect("dir");
        assert_eq!(mode(&dir), DIR_MODE);
        assert_eq!(mode(&tmp.path().join("a")), DIR_MODE);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        private_dir(&dir).expect("dir again");
        assert_eq!(mode(&dir), DIR_MODE);

        let f = dir.join("secret");
        std::fs::write(&f, "old").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private(&f, b"new").expect("write private");
        assert_eq!(mode(&f), FILE_MODE);
        assert_eq!(std::fs::read_to_string(&f).expect("read"), "new");

        let g = dir.join("db");
        touch_private(&g).expect("touch");
        assert_eq!(mode(&g), FILE_MODE);
        make_private_if_exists(&dir.join("absent")).expect("absent is fine");
    }
}
