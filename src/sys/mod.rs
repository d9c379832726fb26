//! The operating-system calls that `rustix` does not cover, through `libc`. The only place of the
//! core with `unsafe`: every block says why it holds in a `// SAFETY:` comment. (The Python
//! buffer protocol's `unsafe` lives in `py/buffer.rs`, with the bindings it serves.)

// The crate denies `unsafe_code`; libc calls on raw memory and descriptors are this module's job.
#![allow(unsafe_code)]

pub mod creds;
#[cfg(target_vendor = "apple")]
pub mod fifo;
pub mod lock;
#[cfg(target_os = "linux")]
pub mod mqueue;
pub mod mutex;
pub mod sem;
pub mod shm;
pub mod sigbus;
#[cfg(target_os = "linux")]
pub mod signalfd;
pub mod sigpipe;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod sysvmsg;

use rustix::io::Errno;

/// The errno of the last failed libc call of this thread.
pub(crate) fn last_errno() -> Errno {
    Errno::from_raw_os_error(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// An absolute `CLOCK_REALTIME` time `after` from now, as the timed waits of POSIX want it.
#[allow(dead_code)]
pub(crate) fn realtime_after(after: std::time::Duration) -> libc::timespec {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    let mut sec = now
        .tv_sec
        .saturating_add(i64::try_from(after.as_secs()).unwrap_or(i64::MAX));
    let mut nsec = now.tv_nsec as i64 + i64::from(after.subsec_nanos());
    if nsec >= 1_000_000_000 {
        sec = sec.saturating_add(1);
        nsec -= 1_000_000_000;
    }
    libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    }
}

/// Duplicates a descriptor number handed over from Python (close-on-exec); `EBADF` if it is not
/// open. The caller keeps its own descriptor.
#[cfg(feature = "python")]
pub fn dup_raw(fd: i32) -> Result<std::os::fd::OwnedFd, Errno> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_DUPFD_CLOEXEC only reads the descriptor number; on a number that is not open it
    // fails with EBADF and touches nothing.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(last_errno());
    }
    // SAFETY: `new` was just returned by the kernel and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(new) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn realtime_after_saturates() {
        // The longest wait is the end of time, not a time in the past.
        let until = super::realtime_after(std::time::Duration::MAX);
        assert_eq!(until.tv_sec, libc::time_t::MAX);
    }
}
