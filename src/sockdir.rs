//! The socket directory that remapped addresses live in, and its safety policy.
//!
//! Chosen from the argument, else `FASTIPC_SOCKET_DIR`, else `$XDG_RUNTIME_DIR/fastipc`, else
//! `/tmp/fastipc-<uid>`. Created 0700; refused if it is a symbolic link, not the effective user's,
//! or writable by others. A sticky world-writable directory (such as `/tmp`) named explicitly is
//! allowed, and reported as shared so that the caller can warn.

use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// A socket directory that passed the checks.
#[derive(Debug, Clone)]
pub struct SocketDir {
    /// Its path.
    pub path: PathBuf,
    /// True for an explicitly named shared sticky directory: interoperable, not private.
    pub shared: bool,
}

/// The directory used when none is given, and whether it was named explicitly (environment).
pub fn choose(explicit: Option<&Path>) -> (PathBuf, bool) {
    if let Some(dir) = explicit {
        return (dir.to_path_buf(), true);
    }
    if let Some(dir) = std::env::var_os("FASTIPC_SOCKET_DIR").filter(|d| !d.is_empty()) {
        return (PathBuf::from(dir), true);
    }
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return (Path::new(&run).join("fastipc"), false);
    }
    let uid = rustix::process::geteuid().as_raw();
    (PathBuf::from(format!("/tmp/fastipc-{uid}")), false)
}

fn unsafe_dir(errno: Errno, msg: &str, path: &Path) -> Error {
    Error::UnsafeDir {
        errno,
        msg: msg.to_string(),
        path: path.to_path_buf(),
    }
}

/// Chooses, creates if needed, and checks the socket directory (for listening).
pub fn prepare(explicit: Option<&Path>) -> Result<SocketDir> {
    let (path, named) = choose(explicit);
    match rustix::fs::mkdir(&path, Mode::RWXU) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(errno) => {
            return Err(Error::os(
                errno,
                "create socket directory",
                path.display().to_string(),
            ))
        }
    }
    check(path, named)
}

/// Chooses and checks the socket directory without creating it (for connecting: a missing
/// directory makes the connect itself fail with `ENOENT`, naming the address).
pub fn check_existing(explicit: Option<&Path>) -> Result<SocketDir> {
    let (path, named) = choose(explicit);
    match rustix::fs::lstat(&path) {
        Err(Errno::NOENT) => Ok(SocketDir {
            path,
            shared: false,
        }),
        _ => check(path, named),
    }
}

fn check(path: PathBuf, named: bool) -> Result<SocketDir> {
    let st = rustix::fs::lstat(&path)
        .map_err(|e| Error::os(e, "check socket directory", path.display().to_string()))?;
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind == FileType::Symlink {
        return Err(unsafe_dir(
            Errno::PERM,
            "socket directory is a symbolic link",
            &path,
        ));
    }
    if kind != FileType::Directory {
        return Err(unsafe_dir(
            Errno::NOTDIR,
            "socket directory is not a directory",
            &path,
        ));
    }
    let mode = st.st_mode & 0o7777;
    let others_write = mode & 0o022 != 0;
    let sticky_shared = mode & 0o1000 != 0 && mode & 0o002 != 0;
    if named && sticky_shared {
        return Ok(SocketDir { path, shared: true });
    }
    if st.st_uid != rustix::process::geteuid().as_raw() {
        return Err(unsafe_dir(
            Errno::PERM,
            "socket directory is not owned by the effective user",
            &path,
        ));
    }
    if others_write {
        return Err(unsafe_dir(
            Errno::PERM,
            "socket directory is writable by group or others",
            &path,
        ));
    }
    Ok(SocketDir {
        path,
        shared: false,
    })
}
