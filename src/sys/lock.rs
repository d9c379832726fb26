//! Record locks: `fcntl(F_SETLK / F_GETLK)` (process-associated, the classic POSIX locks) and
//! `fcntl(F_OFD_SETLK / F_OFD_GETLK)` (open-file-description locks, Linux 3.15+).

use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::io::Errno;

use super::last_errno;

/// Which family of record locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Classic POSIX locks, owned by the process.
    Process,
    /// Open-file-description locks, owned by the open file.
    OpenFile,
}

/// A lock type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// `F_RDLCK`.
    Read,
    /// `F_WRLCK`.
    Write,
    /// `F_UNLCK`.
    Unlock,
}

/// A lock that stands in the way, as `F_GETLK` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// The holder's pid (-1 for an open-file-description lock).
    pub pid: i32,
    /// First byte.
    pub start: u64,
    /// Length; 0 means to the end of the file, however long it grows.
    pub length: u64,
    /// Whether the holder's lock is shared (a read lock).
    pub shared: bool,
}

// Err only where open-file-description locks do not exist.
#[allow(clippy::unnecessary_wraps)]
fn commands(family: Family) -> Result<(i32, i32), Errno> {
    match family {
        Family::Process => Ok((libc::F_SETLK, libc::F_GETLK)),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Family::OpenFile => Ok((libc::F_OFD_SETLK, libc::F_OFD_GETLK)),
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        Family::OpenFile => Err(Errno::NOSYS),
    }
}

fn flock(kind: Type, start: u64, length: u64) -> Result<libc::flock, Errno> {
    // SAFETY: struct flock is plain integers; all-zero bytes are a valid value (and l_pid must be
    // 0 for open-file-description locks).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    let l_type = match kind {
        Type::Read => libc::F_RDLCK,
        Type::Write => libc::F_WRLCK,
        Type::Unlock => libc::F_UNLCK,
    };
    fl.l_type = l_type.try_into().map_err(|_| Errno::INVAL)?;
    fl.l_whence = libc::SEEK_SET.try_into().map_err(|_| Errno::INVAL)?;
    fl.l_start = libc::off_t::try_from(start).map_err(|_| Errno::OVERFLOW)?;
    fl.l_len = libc::off_t::try_from(length).map_err(|_| Errno::OVERFLOW)?;
    Ok(fl)
}

/// Sets (or clears) a lock without waiting: EAGAIN/EACCES when someone holds a conflicting one.
pub fn set(
    fd: BorrowedFd<'_>,
    family: Family,
    kind: Type,
    start: u64,
    length: u64,
) -> Result<(), Errno> {
    let (setlk, _) = commands(family)?;
    let fl = flock(kind, start, length)?;
    // SAFETY: `fd` is a live descriptor; `fl` is a valid struct flock read during the call.
    if unsafe { libc::fcntl(fd.as_raw_fd(), setlk, &fl) } < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// The first lock that would conflict with `kind` on the range, if any.
pub fn get(
    fd: BorrowedFd<'_>,
    family: Family,
    kind: Type,
    start: u64,
    length: u64,
) -> Result<Option<Conflict>, Errno> {
    let (_, getlk) = commands(family)?;
    let mut fl = flock(kind, start, length)?;
    // SAFETY: `fd` is a live descriptor; `fl` is a valid struct flock the kernel overwrites.
    if unsafe { libc::fcntl(fd.as_raw_fd(), getlk, &mut fl) } < 0 {
        return Err(last_errno());
    }
    if i32::from(fl.l_type) == libc::F_UNLCK {
        return Ok(None);
    }
    Ok(Some(Conflict {
        pid: fl.l_pid,
        start: u64::try_from(fl.l_start).unwrap_or(0),
        length: u64::try_from(fl.l_len).unwrap_or(0),
        shared: i32::from(fl.l_type) == libc::F_RDLCK,
    }))
}
