//! Signals as IPC: a pollable receiver (signalfd, Linux) and sending a signal to a process or
//! group then waiting for it to exit (pidfd, Linux 5.3+, else polling).
#![cfg_attr(not(target_os = "linux"), allow(unused_imports, dead_code))]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Pid, Signal};

use crate::error::{Error, Result};
use crate::wait::{backoff, poll_once, Deadline, Interrupt, Ready, Wait, SLICE};

#[cfg(target_os = "linux")]
pub use crate::sys::signalfd::Info;

fn signal_arg(signo: i32) -> Result<Signal> {
    Signal::from_named_raw(signo)
        .ok_or_else(|| Error::Invalid(format!("{signo} is not a signal number")))
}

/// A receiver of chosen signals through a signalfd: the signals are blocked in the calling
/// thread (threads started later inherit that), so they stay pending and are read from the
/// descriptor instead of running a handler.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub struct SignalReceiver {
    fd: OwnedFd,
    signals: Vec<i32>,
    newly_blocked: Vec<i32>,
    thread: std::thread::ThreadId,
    closed: AtomicBool,
    restored: AtomicBool,
}

#[cfg(target_os = "linux")]
impl SignalReceiver {
    /// Blocks `signals` in the calling thread and opens a signalfd for them.
    pub fn new(signals: &[i32]) -> Result<SignalReceiver> {
        use crate::sys::signalfd as sys;
        if signals.is_empty() {
            return Err(Error::Invalid("no signals given".into()));
        }
        let mut set = sys::SigSet::empty();
        for &signo in signals {
            if signo == libc::SIGKILL || signo == libc::SIGSTOP {
                return Err(Error::Invalid(format!(
                    "signal {signo} (SIGKILL or SIGSTOP) cannot be caught"
                )));
            }
            set.add(signo)
                .map_err(|_| Error::Invalid(format!("{signo} is not a signal number")))?;
        }
        let old = sys::thread_mask().map_err(|e| Error::os(e, "pthread_sigmask", "signals"))?;
        let mut signals: Vec<i32> = signals.to_vec();
        signals.sort_unstable();
        signals.dedup();
        let newly_blocked: Vec<i32> = signals
            .iter()
            .copied()
            .filter(|&s| !old.contains(s))
            .collect();
        sys::change_thread_mask(&set, true)
            .map_err(|e| Error::os(e, "pthread_sigmask", "signals"))?;
        let fd = match sys::signalfd(&set) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = restore(&newly_blocked);
                return Err(Error::os(e, "signalfd", "signals"));
            }
        };
        Ok(SignalReceiver {
            fd,
            signals,
            newly_blocked,
            thread: std::thread::current().id(),
            closed: AtomicBool::new(false),
            restored: AtomicBool::new(false),
        })
    }

    /// The signals received.
    pub fn signals(&self) -> &[i32] {
        &self.signals
    }

    /// The descriptor: readable while a signal is pending.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Marks the receiver closed: waits in other threads end with EBADF.
    pub fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Waits for one signal.
    pub fn receive(
        &self,
        timeout: Option<Duration>,
        interrupt: &mut dyn Interrupt,
    ) -> Result<Info> {
        let fd = self.fd.as_fd();
        let mut wait = Wait {
            deadline: Deadline::after(timeout),
            interrupt,
            closed: Some(&self.closed),
            sliced_fd: false,
        };
        wait.run_eager(fd, Ready::Read, "read", "signalfd", || {
            crate::sys::signalfd::read(fd)
        })
    }

    /// Every signal pending now, without waiting.
    pub fn drain(&self) -> Result<Vec<Info>> {
        let mut out = Vec::new();
        loop {
            match crate::sys::signalfd::read(self.fd.as_fd()) {
                Ok(info) => out.push(info),
                Err(Errno::AGAIN) => return Ok(out),
                Err(Errno::INTR) => {}
                Err(e) => return Err(Error::os(e, "read", "signalfd")),
            }
        }
    }

    /// Unblocks, in the calling thread, the signals this receiver blocked (those that were not
    /// blocked before it), if it is the thread that created the receiver; returns whether it
    /// did. Pending instances are then delivered as usual (to Python's handler, or the default
    /// action).
    pub fn restore_mask(&self) -> Result<bool> {
        if std::thread::current().id() != self.thread || self.restored.swap(true, Ordering::AcqRel)
        {
            return Ok(false);
        }
        restore(&self.newly_blocked).map_err(|e| Error::os(e, "pthread_sigmask", "signals"))?;
        Ok(true)
    }
}

#[cfg(target_os = "linux")]
impl Drop for SignalReceiver {
    /// A receiver dropped without [`SignalReceiver::restore_mask`] still gives its signals back
    /// when dropped on the thread that created it.
    fn drop(&mut self) {
        let _ = self.restore_mask();
    }
}

#[cfg(target_os = "linux")]
fn restore(signals: &[i32]) -> std::result::Result<(), Errno> {
    use crate::sys::signalfd as sys;
    let mut set = sys::SigSet::empty();
    for &s in signals {
        set.add(s)?;
    }
    sys::change_thread_mask(&set, false)
}

/// Sends `signo` to process `pid` (or to process group `pid` if `group`), then waits until that
/// process (the group's leader for a group) has exited. `Ok(())` once it has; `Error::Timeout` at
/// the deadline. An exited but not yet reaped process (a zombie) counts as exited; fastipc never
/// reaps it, so the parent's own `wait` still gets its status.
///
/// For a single process a pidfd is opened first and the signal sent through it, so a recycled
/// pid can never receive the signal; exit is then awaited by polling the pidfd. Without pidfds
/// (kernels before 5.3) the exit is awaited by probing with signal 0 and `/proc/<pid>/stat`
/// with backoff up to 10 ms.
pub fn signal_and_wait(
    pid: i32,
    signo: i32,
    group: bool,
    timeout: Option<Duration>,
    interrupt: &mut dyn Interrupt,
) -> Result<()> {
    let what = if group {
        format!("process group {pid}")
    } else {
        format!("process {pid}")
    };
    let pid_t = if pid > 0 { Pid::from_raw(pid) } else { None }
        .ok_or_else(|| Error::Invalid(format!("pid must be a positive process id, not {pid}")))?;
    let deadline = Deadline::after(timeout);
    let pidfd = open_pidfd(pid_t);
    let send = |sig: Signal| -> Result<()> {
        let r = match (&pidfd, group) {
            (Some(fd), false) => rustix::process::pidfd_send_signal(fd, sig),
            (_, true) => rustix::process::kill_process_group(pid_t, sig),
            (None, false) => rustix::process::kill_process(pid_t, sig),
        };
        r.map_err(|e| Error::os(e, "kill", &what))
    };
    if signo != 0 {
        send(signal_arg(signo)?)?;
    } else if pidfd.is_none() && !group {
        rustix::process::test_kill_process(pid_t).map_err(|e| Error::os(e, "kill", &what))?;
    }
    match pidfd {
        Some(fd) => wait_pidfd(fd.as_fd(), deadline, interrupt, &what),
        None => backoff(
            deadline,
            interrupt,
            Duration::from_micros(100),
            Duration::from_millis(10),
            &what,
            || Ok(if exited(pid) { Some(()) } else { None }),
        ),
    }
}

fn open_pidfd(pid: Pid) -> Option<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

fn wait_pidfd(
    fd: BorrowedFd<'_>,
    deadline: Deadline,
    interrupt: &mut dyn Interrupt,
    what: &str,
) -> Result<()> {
    loop {
        let left = deadline.remaining();
        let step = left.map_or(SLICE, |l| l.min(SLICE));
        if poll_once(fd, Ready::Read, step).map_err(|e| Error::os(e, "poll", what))? {
            return Ok(());
        }
        if deadline.remaining() == Some(Duration::ZERO) {
            return Err(Error::Timeout {
                what: what.to_string(),
            });
        }
        interrupt.check()?;
    }
}

/// Whether `pid` is gone or a zombie.
fn exited(pid: i32) -> bool {
    let Some(p) = Pid::from_raw(pid) else {
        return true;
    };
    if rustix::process::test_kill_process(p) == Err(Errno::SRCH) {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::wait::Uninterrupted;

    #[test]
    fn wait_for_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).expect("a pid fits an i32");
        let r = signal_and_wait(
            pid,
            0,
            false,
            Some(Duration::from_millis(30)),
            &mut Uninterrupted,
        );
        assert!(matches!(r, Err(Error::Timeout { .. })));
        signal_and_wait(
            pid,
            libc::SIGTERM,
            false,
            Some(Duration::from_secs(5)),
            &mut Uninterrupted,
        )
        .unwrap();
        child.wait().unwrap();
    }
}
