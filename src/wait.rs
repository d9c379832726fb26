//! Blocking with deadlines, interrupt checks and EINTR handling: the one loop every blocking
//! operation of the crate runs in.
//!
//! Descriptors that fastipc reads and writes are blocking with `SO_RCVTIMEO`/`SO_SNDTIMEO` set to
//! [`SLICE`], so the hot path is a single system call that the kernel ends after at most one slice;
//! between slices the loop runs the caller's [`Interrupt`] check (Python's signal check) and looks
//! at the deadline. Deadlines shorter than a slice, and descriptors without those options, wait in
//! `poll` and then try the call without blocking.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Longest uninterrupted wait: the bound on how late a Ctrl-C or a close is noticed.
pub const SLICE: Duration = Duration::from_millis(50);

/// A point in time to give up at, or none.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// Never give up.
    pub const NEVER: Deadline = Deadline(None);

    /// A deadline `timeout` from now; `None` means never.
    pub fn after(timeout: Option<Duration>) -> Deadline {
        Deadline(timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future)))
    }

    /// Time left; `Some(ZERO)` once passed, `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// Called between slices of a wait; an error stops the operation (Python: a pending signal).
pub trait Interrupt {
    /// Checks whether the wait should stop.
    fn check(&mut self) -> Result<()>;
}

/// Never interrupts: for Rust callers.
pub struct Uninterrupted;

impl Interrupt for Uninterrupted {
    fn check(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Which readiness an operation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// Readable (or end of file, or error).
    Read,
    /// Writable.
    Write,
}

/// Waits up to `timeout` for `fd` to become ready; `Ok(false)` on timeout. EINTR counts as a
/// spurious wake-up (`Ok(false)`), so the caller's loop checks for signals.
pub fn poll_once(fd: BorrowedFd<'_>, ready: Ready, timeout: Duration) -> Result<bool, Errno> {
    let flags = match ready {
        Ready::Read => PollFlags::IN,
        Ready::Write => PollFlags::OUT,
    };
    let mut fds = [PollFd::from_borrowed_fd(fd, flags)];
    let spec = rustix::time::Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    match poll(&mut fds, Some(&spec)) {
        Ok(n) => Ok(n > 0),
        Err(Errno::INTR) => Ok(false),
        Err(e) => Err(e),
    }
}

/// What ended [`poll_beside`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beside {
    /// `fd` is readable (or at its end, or failed: the next call on it says which).
    Ready,
    /// The other descriptor is readable, or unusable: its owner has work.
    Other,
    /// Neither, within the time given (or a signal came: the caller checks).
    Neither,
}

/// Waits up to `timeout` for `fd` to be readable, unless `other` becomes readable first (an
/// event loop's own epoll descriptor: readable once anything it watches is ready). `other`
/// takes precedence when both are. EINTR counts as [`Beside::Neither`].
pub fn poll_beside(
    fd: BorrowedFd<'_>,
    other: BorrowedFd<'_>,
    timeout: Duration,
) -> Result<Beside, Errno> {
    let mut fds = [
        PollFd::from_borrowed_fd(fd, PollFlags::IN),
        PollFd::from_borrowed_fd(other, PollFlags::IN),
    ];
    let spec = rustix::time::Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    match poll(&mut fds, Some(&spec)) {
        Ok(0) | Err(Errno::INTR) => Ok(Beside::Neither),
        // Any event on `other` (readable, or POLLNVAL/POLLERR for a number that is no longer a
        // usable descriptor) hands the wait back to its owner.
        Ok(_) if !fds[1].revents().is_empty() => Ok(Beside::Other),
        Ok(_) => Ok(Beside::Ready),
        Err(e) => Err(e),
    }
}

/// How an operation is bounded in time.
pub struct Wait<'a> {
    /// When to give up.
    pub deadline: Deadline,
    /// Checked between slices.
    pub interrupt: &'a mut dyn Interrupt,
    /// Set when the object was closed by another thread: the wait ends with EBADF.
    pub closed: Option<&'a AtomicBool>,
    /// Whether a blocking call on the descriptor returns by itself after at most one slice
    /// (`SO_RCVTIMEO`/`SO_SNDTIMEO` set).
    pub sliced_fd: bool,
}

impl Wait<'_> {
    /// Runs `op` until it succeeds, fails for real, the deadline passes (`Error::Timeout`), the
    /// interrupt check fails, or the object is closed. `op(nonblocking)` must not block when
    /// `nonblocking` is true and must return EAGAIN/EWOULDBLOCK or EINTR to be retried.
    pub fn run<T>(
        &mut self,
        fd: BorrowedFd<'_>,
        ready: Ready,
        op_name: &'static str,
        what: &str,
        mut op: impl FnMut(bool) -> Result<T, Errno>,
    ) -> Result<T> {
        loop {
            if self.closed.is_some_and(|c| c.load(Ordering::Acquire)) {
                return Err(Error::os(Errno::BADF, op_name, what));
            }
            let remaining = self.deadline.remaining();
            let last = remaining == Some(Duration::ZERO);
            let result = match remaining {
                Some(left) if left.is_zero() => op(true),
                Some(left) if left < SLICE || !self.sliced_fd => {
                    poll_once(fd, ready, left.min(SLICE))
                        .map_err(|e| Error::os(e, op_name, what))?;
                    op(true)
                }
                None if !self.sliced_fd => {
                    poll_once(fd, ready, SLICE).map_err(|e| Error::os(e, op_name, what))?;
                    op(true)
                }
                _ => op(false),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(Errno::AGAIN | Errno::INTR | Errno::INPROGRESS) => {
                    if last {
                        return Err(Error::Timeout {
                            what: what.to_string(),
                        });
                    }
                    self.interrupt.check()?;
                }
                Err(errno) => return Err(Error::os(errno, op_name, what)),
            }
        }
    }
}

impl Wait<'_> {
    /// Like [`Wait::run`] for descriptors whose calls never block (`O_NONBLOCK`): tries `op`
    /// first and polls only when it reports EAGAIN, so a ready descriptor costs one system call.
    /// The interrupt check runs when a slice passes without readiness (or on EINTR).
    pub fn run_eager<T>(
        &mut self,
        fd: BorrowedFd<'_>,
        ready: Ready,
        op_name: &'static str,
        what: &str,
        mut op: impl FnMut() -> Result<T, Errno>,
    ) -> Result<T> {
        loop {
            if self.closed.is_some_and(|c| c.load(Ordering::Acquire)) {
                return Err(Error::os(Errno::BADF, op_name, what));
            }
            match op() {
                Ok(value) => return Ok(value),
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(errno) => return Err(Error::os(errno, op_name, what)),
            }
            let left = match self.deadline.remaining() {
                Some(left) if left.is_zero() => {
                    return Err(Error::Timeout {
                        what: what.to_string(),
                    })
                }
                Some(left) => left.min(SLICE),
                None => SLICE,
            };
            if !poll_once(fd, ready, left).map_err(|e| Error::os(e, op_name, what))? {
                self.interrupt.check()?;
            }
        }
    }
}

/// Retries `attempt` (which returns `Ok(None)` for "not yet") with exponential backoff from
/// `first` up to `cap` between attempts, until it succeeds, fails, the deadline passes
/// (`Error::Timeout`) or the interrupt check fails (at least every [`SLICE`]). For the primitives
/// that have no descriptor to wait on: the latency after the awaited event is at most `cap`.
pub fn backoff<T>(
    deadline: Deadline,
    interrupt: &mut dyn Interrupt,
    first: Duration,
    cap: Duration,
    what: &str,
    mut attempt: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let mut delay = first;
    let mut since_check = Duration::ZERO;
    loop {
        if let Some(value) = attempt()? {
            return Ok(value);
        }
        let nap = match deadline.remaining() {
            Some(left) if left.is_zero() => {
                return Err(Error::Timeout {
                    what: what.to_string(),
                })
            }
            Some(left) => left.min(delay),
            None => delay,
        };
        std::thread::sleep(nap);
        since_check += nap;
        if since_check >= SLICE / 2 {
            since_check = Duration::ZERO;
            interrupt.check()?;
        }
        delay = (delay * 2).min(cap);
    }
}

/// Converts a Python-style timeout in seconds (`None` forever, `>= 0`) to a duration.
pub fn timeout_from_secs(secs: Option<f64>) -> Result<Option<Duration>> {
    match secs {
        None => Ok(None),
        Some(s) if s.is_nan() || s < 0.0 => Err(Error::Invalid(format!(
            "timeout must be None or a non-negative number of seconds, not {s}"
        ))),
        Some(s) if s > 1e12 => Ok(None),
        Some(s) => Ok(Some(Duration::from_secs_f64(s))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_once_takes_any_duration() {
        use std::os::fd::AsFd;
        // A wait longer than a timespec's seconds can say is capped, not wrapped negative.
        let (reader, writer) = rustix::pipe::pipe().expect("pipe");
        assert_eq!(rustix::io::write(&writer, b"x"), Ok(1));
        assert_eq!(
            poll_once(reader.as_fd(), Ready::Read, Duration::MAX),
            Ok(true)
        );
        assert_eq!(
            poll_once(reader.as_fd(), Ready::Read, Duration::ZERO),
            Ok(true)
        );
    }
}
