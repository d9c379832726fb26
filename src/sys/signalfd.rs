//! `signalfd` and the thread's signal mask (`pthread_sigmask`).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::io::Errno;

use super::last_errno;

/// A set of signals.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl SigSet {
    /// The empty set.
    pub fn empty() -> SigSet {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it fully.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is valid writable storage.
        unsafe { libc::sigemptyset(&raw mut set) };
        SigSet(set)
    }

    /// Adds `signo`; EINVAL for a number that is not a signal.
    pub fn add(&mut self, signo: i32) -> Result<(), Errno> {
        // SAFETY: `self.0` is an initialised sigset_t.
        if unsafe { libc::sigaddset(&raw mut self.0, signo) } < 0 {
            return Err(Errno::INVAL);
        }
        Ok(())
    }

    /// Whether `signo` is in the set.
    pub fn contains(&self, signo: i32) -> bool {
        // SAFETY: `self.0` is an initialised sigset_t, only read.
        unsafe { libc::sigismember(&raw const self.0, signo) == 1 }
    }
}

/// The calling thread's signal mask.
pub fn thread_mask() -> Result<SigSet, Errno> {
    let mut old = SigSet::empty();
    // SAFETY: a NULL new set only queries; `old.0` is writable storage.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &raw mut old.0) };
    if rc != 0 {
        return Err(Errno::from_raw_os_error(rc));
    }
    Ok(old)
}

/// Blocks (`block`) or unblocks the signals of `set` in the calling thread.
pub fn change_thread_mask(set: &SigSet, block: bool) -> Result<(), Errno> {
    let how = if block {
        libc::SIG_BLOCK
    } else {
        libc::SIG_UNBLOCK
    };
    // SAFETY: `set.0` is an initialised sigset_t; the old mask is not asked for.
    let rc = unsafe { libc::pthread_sigmask(how, &raw const set.0, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(Errno::from_raw_os_error(rc));
    }
    Ok(())
}

/// A new signalfd for `set`, close-on-exec and non-blocking.
pub fn signalfd(set: &SigSet) -> Result<OwnedFd, Errno> {
    // SAFETY: -1 asks for a new descriptor; `set.0` is an initialised sigset_t read in the call.
    let fd =
        unsafe { libc::signalfd(-1, &raw const set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: signalfd returned a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One signal read from a signalfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// The signal number.
    pub signo: i32,
    /// The sender's pid (0 for the kernel).
    pub pid: i32,
    /// The sender's real uid.
    pub uid: u32,
    /// `si_code` (`SI_USER`, `SI_QUEUE`, `CLD_EXITED` ...).
    pub code: i32,
    /// Exit status or signal, for SIGCHLD.
    pub status: i32,
    /// The value sent with sigqueue.
    pub value: i64,
}

/// Reads one signal without waiting: EAGAIN when none is pending.
pub fn read(fd: BorrowedFd<'_>) -> Result<Info, Errno> {
    // SAFETY: signalfd_siginfo is plain integers; all-zero bytes are valid.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is writable storage of `size` bytes; the kernel writes whole records only.
    let n = unsafe { libc::read(fd.as_raw_fd(), (&raw mut info).cast(), size) };
    let Ok(n) = usize::try_from(n) else {
        return Err(last_errno());
    };
    if n != size {
        return Err(Errno::IO);
    }
    Ok(Info {
        signo: i32::try_from(info.ssi_signo).map_err(|_| Errno::IO)?,
        pid: i32::try_from(info.ssi_pid).map_err(|_| Errno::IO)?,
        uid: info.ssi_uid,
        code: info.ssi_code,
        status: info.ssi_status,
        // The sigval's 64 bits unchanged, read as a signed number.
        value: i64::from_ne_bytes(info.ssi_ptr.to_ne_bytes()),
    })
}
