//! The socket directory that remapped addresses live in, and its safety policy.
//!
//! Chosen from the argument, else `FASTIPC_SOCKET_DIR`, else `$XDG_RUNTIME_DIR/fastipc`, else
//! `/tmp/fastipc-<uid>`. Created 0700; refused if it is a symbolic link, not the effective user's,
//! or writable by others. A sticky world-writable directory (such as `/tmp`) named explicitly is
//! allowed, and reported as shared so that the caller can warn.
//!
//! The paths of Unix sockets, in that directory or anywhere else, are owned through a lock file
//! next to each (`<path>.lock`, `flock`ed by the socket that binds the path): whoever holds it
//! owns the path, unlinks a stale socket file left by a dead owner, and unlinks the path when it
//! closes only while the socket file is still the one it bound (its device and inode).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{FileType, FlockOperation, Mode, OFlags};
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

/// The proof that a socket owns its path: the lock it holds and the identity of the socket file it
/// bound, so that it unlinks the path only while it is still its own.
#[derive(Debug)]
pub(crate) struct PathOwnership {
    lock: OwnedFd,
    lock_path: PathBuf,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl PathOwnership {
    /// The socket path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Unlinks the socket file if it is still the one bound, then the lock file, then lets go
    /// of the lock.
    pub(crate) fn release(self) {
        if let Ok(st) = rustix::fs::lstat(&self.path) {
            if identity(&st) == (self.dev, self.ino) {
                let _ = rustix::fs::unlink(&self.path);
            }
        }
        // Still holding the lock: whoever opens the old lock file next sees that it was replaced.
        let _ = rustix::fs::unlink(&self.lock_path);
        drop(self.lock);
    }
}

/// A file's (device, inode): its identity. The field types differ between platforms.
#[allow(clippy::unnecessary_cast)]
fn identity(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

fn lock_path_for(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The lock of a socket path (`<path>.lock`, `flock`ed), held by whoever binds the path.
#[derive(Debug)]
pub(crate) struct PathLock {
    fd: OwnedFd,
    path: PathBuf,
}

impl PathLock {
    /// Records that the socket bound at `path` under this lock is now its owner's.
    pub(crate) fn own(self, path: &Path, what: &str) -> Result<PathOwnership> {
        let st = rustix::fs::lstat(path).map_err(|e| Error::os(e, "bind", what))?;
        let (dev, ino) = identity(&st);
        Ok(PathOwnership {
            lock: self.fd,
            lock_path: self.path,
            path: path.to_path_buf(),
            dev,
            ino,
        })
    }

    /// Lets go of a lock whose path could not be bound, leaving no lock file behind for a path
    /// that is not ours.
    pub(crate) fn abandon(self) {
        let _ = rustix::fs::unlink(&self.path);
    }
}

/// Takes the lock next to `path`, making sure the lock file is the one at the path now. A live
/// owner makes it `EADDRINUSE`; an owner passing through (binding, or closing) is waited for
/// briefly.
pub(crate) fn take_lock(path: &Path, what: &str) -> Result<PathLock> {
    const TRANSIENT_WAITS: u32 = 50;
    let lock_path = lock_path_for(path);
    let mut transient_waits = 0;
    for _ in 0..200 {
        let fd = rustix::fs::open(
            &lock_path,
            OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| Error::os(e, "lock", lock_path.display().to_string()))?;
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                // A holder with no socket file at the path is passing through: binding, or
                // closing (it unlinks the socket first). Wait for it briefly; a live listener
                // (socket present) makes the address busy at once.
                if transient_waits < TRANSIENT_WAITS && rustix::fs::lstat(path).is_err() {
                    transient_waits += 1;
                    drop(fd);
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                return Err(Error::os(Errno::ADDRINUSE, "listen", what));
            }
            Err(e) => return Err(Error::os(e, "lock", lock_path.display().to_string())),
        }
        let held = rustix::fs::fstat(&fd).map_err(|e| Error::os(e, "lock", what))?;
        match rustix::fs::lstat(&lock_path) {
            Ok(now) if now.st_dev == held.st_dev && now.st_ino == held.st_ino => {
                return Ok(PathLock {
                    fd,
                    path: lock_path,
                })
            }
            // The previous owner unlinked it between our open and our flock: take the new one.
            _ => continue,
        }
    }
    Err(Error::os(Errno::ADDRINUSE, "listen", what))
}
