//! File locks on byte ranges: classic POSIX record locks (`fcntl(F_SETLK)`, owned by the
//! process) and open-file-description locks (`F_OFD_SETLK`, Linux 3.15+, owned by the open file).
//! Both kinds live in the same table of the kernel and conflict with each other, so either
//! interoperates with C programs that lock the same file with `fcntl`.
//!
//! Waiting: `F_SETLKW` can be ended only by a signal, which a library cannot safely arrange, so a
//! wait is a loop of `F_SETLK` attempts with exponential backoff from 50 µs up to 10 ms, the
//! deadline and the interrupt check honoured in between. The cost: up to ~10 ms of latency after
//! the holder releases, and no queueing (a waiter in `F_SETLKW` may get the lock first).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, PyRepr, Result};
use crate::sys::lock::{self, Family, Type};
use crate::wait::{backoff, Deadline, Interrupt};

pub use lock::Conflict;

/// Which kind of lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Classic POSIX record locks (per process; released when the process closes *any*
    /// descriptor of the file; not exclusive between threads of one process).
    Posix,
    /// Open-file-description locks (per open file: exclusive between threads and between
    /// `FileLock` objects, kept until this object closes).
    Ofd,
}

impl LockKind {
    /// Parses "posix" or "ofd".
    pub fn parse(text: &str) -> Result<LockKind> {
        match text {
            "posix" => Ok(LockKind::Posix),
            "ofd" => Ok(LockKind::Ofd),
            other => Err(Error::Invalid(format!(
                "kind must be 'posix' or 'ofd', not {}",
                PyRepr(other)
            ))),
        }
    }

    /// The name, as parsed.
    pub fn name(self) -> &'static str {
        match self {
            LockKind::Posix => "posix",
            LockKind::Ofd => "ofd",
        }
    }

    /// The best kind here: OFD locks where the kernel has them.
    pub fn default_here() -> LockKind {
        if cfg!(any(target_os = "linux", target_os = "android")) {
            LockKind::Ofd
        } else {
            LockKind::Posix
        }
    }

    fn family(self) -> Family {
        match self {
            LockKind::Posix => Family::Process,
            LockKind::Ofd => Family::OpenFile,
        }
    }
}

/// A lock on a byte range of a file (`length` 0: to the end, however long the file grows).
#[derive(Debug)]
pub struct FileLock {
    fd: OwnedFd,
    what: String,
    shared: bool,
    start: u64,
    length: u64,
    kind: LockKind,
    held: Mutex<bool>,
}

impl FileLock {
    /// Opens (creating with mode 0600 if missing, never following a symlink at the end) `path`
    /// for locking. A shared lock needs only read access, an exclusive one write access.
    pub fn open(
        path: &Path,
        shared: bool,
        start: u64,
        length: u64,
        kind: LockKind,
    ) -> Result<FileLock> {
        let what = path.display().to_string();
        if i64::try_from(start).is_err() || i64::try_from(length).is_err() {
            return Err(Error::Invalid(format!(
                "start and length must fit in off_t ({what})"
            )));
        }
        let base = OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY;
        let mode = Mode::from_bits_truncate(0o600);
        let open = |access: OFlags| {
            rustix::fs::open(path, base | OFlags::CREATE | access, mode).or_else(|e| match e {
                // Not ours to create (read-only directory): open what is there.
                Errno::ACCESS | Errno::ROFS => rustix::fs::open(path, base | access, mode),
                e => Err(e),
            })
        };
        let fd = if shared {
            open(OFlags::RDWR).or_else(|_| open(OFlags::RDONLY))
        } else {
            open(OFlags::RDWR)
        }
        .map_err(|e| Error::os(e, "open", &what))?;
        Ok(FileLock {
            fd,
            what,
            shared,
            start,
            length,
            kind,
            held: Mutex::new(false),
        })
    }

    /// The path.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The descriptor.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Which kind of lock.
    pub fn kind(&self) -> LockKind {
        self.kind
    }

    /// Whether the lock is shared.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// The range: `(start, length)`.
    pub fn range(&self) -> (u64, u64) {
        (self.start, self.length)
    }

    /// Whether this object holds the lock.
    pub fn held(&self) -> bool {
        *self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_type(&self) -> Type {
        if self.shared {
            Type::Read
        } else {
            Type::Write
        }
    }

    fn set(&self, kind: Type) -> std::result::Result<(), Errno> {
        lock::set(
            self.fd.as_fd(),
            self.kind.family(),
            kind,
            self.start,
            self.length,
        )
    }

    /// Takes the lock: `Ok(true)` once held, `Ok(false)` if not taken (`blocking` false, or the
    /// deadline passed). Taking a lock this object holds already returns `Ok(true)`.
    pub fn acquire(
        &self,
        blocking: bool,
        timeout: Option<Duration>,
        interrupt: &mut dyn Interrupt,
    ) -> Result<bool> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if *held {
            return Ok(true);
        }
        let attempt = || match self.set(self.lock_type()) {
            Ok(()) => Ok(Some(())),
            Err(Errno::AGAIN | Errno::ACCESS | Errno::INTR) => Ok(None),
            Err(Errno::NOLCK) => Err(Error::OsMsg {
                errno: Errno::NOLCK,
                msg: "no locks available (the kernel's lock table, or a file system without locks)"
                    .into(),
                what: self.what.clone(),
            }),
            Err(Errno::INVAL) if self.kind == LockKind::Ofd => Err(Error::NotSupported(format!(
                "open-file-description locks are not available here: use kind='posix' ({})",
                self.what
            ))),
            Err(e) => Err(Error::os(e, "fcntl(F_SETLK)", &self.what)),
        };
        let deadline = if blocking {
            Deadline::after(timeout)
        } else {
            Deadline::after(Some(Duration::ZERO))
        };
        match backoff(
            deadline,
            interrupt,
            Duration::from_micros(50),
            Duration::from_millis(10),
            &self.what,
            attempt,
        ) {
            Ok(()) => {
                *held = true;
                Ok(true)
            }
            Err(Error::Timeout { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Releases the lock; EPERM-like `Invalid` if it is not held.
    pub fn release(&self) -> Result<()> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if !*held {
            return Err(Error::Invalid(format!(
                "release of a lock that is not held ({})",
                self.what
            )));
        }
        self.set(Type::Unlock)
            .map_err(|e| Error::os(e, "fcntl(F_UNLCK)", &self.what))?;
        *held = false;
        Ok(())
    }

    /// The first lock held by someone else that conflicts with this one (`F_GETLK`), if any. The
    /// pid is that of the holder of a POSIX lock, -1 for an open-file-description lock.
    pub fn conflict(&self) -> Result<Option<Conflict>> {
        // Ask in both families: an OFD query reports POSIX holders with pid -1, a POSIX query
        // reports both, with the pid for POSIX holders. The POSIX query ignores this process's
        // own POSIX locks, the OFD query this object's own OFD lock.
        let posix = lock::get(
            self.fd.as_fd(),
            Family::Process,
            self.lock_type(),
            self.start,
            self.length,
        )
        .map_err(|e| Error::os(e, "fcntl(F_GETLK)", &self.what))?;
        match self.kind {
            LockKind::Posix => Ok(posix),
            LockKind::Ofd => {
                let ofd = lock::get(
                    self.fd.as_fd(),
                    Family::OpenFile,
                    self.lock_type(),
                    self.start,
                    self.length,
                )
                .map_err(|e| Error::os(e, "fcntl(F_OFD_GETLK)", &self.what))?;
                Ok(match (ofd, posix) {
                    (None, _) => None,
                    (Some(o), Some(p))
                        if o.start == p.start && o.length == p.length && p.pid > 0 =>
                    {
                        Some(p)
                    }
                    (Some(o), _) => Some(o),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::Uninterrupted;

    #[test]
    fn ofd_locks_exclude_each_other() {
        let path = std::env::temp_dir().join(format!("fastipc-test-lock-{}", std::process::id()));
        let a = FileLock::open(&path, false, 0, 0, LockKind::Ofd).unwrap();
        let b = FileLock::open(&path, false, 0, 0, LockKind::Ofd).unwrap();
        assert!(a.acquire(true, None, &mut Uninterrupted).unwrap());
        assert!(!b
            .acquire(true, Some(Duration::from_millis(20)), &mut Uninterrupted)
            .unwrap());
        let c = b.conflict().unwrap().unwrap();
        assert_eq!((c.start, c.length, c.shared), (0, 0, false));
        a.release().unwrap();
        assert!(b.acquire(false, None, &mut Uninterrupted).unwrap());
        std::fs::remove_file(&path).unwrap();
    }
}
