//! Writes to a pipe that never kill the process with `SIGPIPE`.
//!
//! A write to a pipe or FIFO whose readers are all gone raises `SIGPIPE` in the writing thread,
//! then fails with `EPIPE`. Sockets have `MSG_NOSIGNAL`; pipes have nothing like it. Where the
//! signal's disposition is the default (terminate: a C host embedding Python, a CLI tool that
//! restored it), the write is done with `SIGPIPE` blocked in the calling thread; a `SIGPIPE` that
//! the write raised is then consumed with `sigwait`, which returns at once (unless one was pending
//! already, which stays pending), and the thread's mask is restored. Elsewhere (ignored, as
//! Python sets it at startup, or caught) the write is a plain write: one extra system call, the
//! disposition's query, per write.

use std::mem::MaybeUninit;

use rustix::io::Errno;

/// `SIGPIPE` alone.
fn sigpipe_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the whole set; sigaddset then only changes it. Neither
    // can fail for a valid pointer and signal number.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        set.assume_init()
    }
}

/// Whether `SIGPIPE` would terminate the process: its disposition is `SIG_DFL`.
fn sigpipe_kills() -> bool {
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a NULL new action only queries the current one into `old`, valid storage.
    let rc = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: on success sigaction filled `old`; on failure it is all zeroes (still valid).
    let old = unsafe { old.assume_init() };
    // On a failure to ask, take the safe side.
    rc != 0 || old.sa_sigaction == libc::SIG_DFL
}

/// Whether `SIGPIPE` is pending for this thread or the process.
fn sigpipe_pending() -> bool {
    let mut pending = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: `pending` is valid storage that sigpending fills.
    let rc = unsafe { libc::sigpending(pending.as_mut_ptr()) };
    // SAFETY: filled by sigpending, or all zeroes (the empty set on every libc) on failure.
    let pending = unsafe { pending.assume_init() };
    // SAFETY: `pending` is an initialised set, only read.
    rc == 0 && unsafe { libc::sigismember(&raw const pending, libc::SIGPIPE) } == 1
}

/// Consumes the `SIGPIPE` pending for this thread, if one is (it is blocked, so `sigwait`
/// returns at once; `sigtimedwait` would do the same but is missing on some platforms).
fn consume_sigpipe(set: &libc::sigset_t) {
    if !sigpipe_pending() {
        return;
    }
    let mut signo = 0;
    // SAFETY: `set` is an initialised set, only read; `signo` is valid storage. The signal is
    // pending and blocked, so the call does not wait.
    unsafe { libc::sigwait(set, &raw mut signo) };
}

/// Runs `write` (a write to a pipe) so that it cannot raise `SIGPIPE` into the process: its
/// `EPIPE` is the only report of a reader gone.
pub fn without_sigpipe<T>(write: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
    if !sigpipe_kills() {
        return write();
    }
    let set = sigpipe_set();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `set` is initialised and only read; `old` is valid storage filled by the call.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, old.as_mut_ptr()) };
    if rc != 0 {
        return Err(Errno::from_raw_os_error(rc));
    }
    // SAFETY: filled by the successful pthread_sigmask above.
    let old = unsafe { old.assume_init() };
    let was_pending = sigpipe_pending();
    let result = write();
    if result.as_ref().err() == Some(&Errno::PIPE) && !was_pending {
        consume_sigpipe(&set);
    }
    // SAFETY: `old` is the mask saved above; restoring it cannot fail with valid arguments.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &raw const old, std::ptr::null_mut()) };
    result
}
