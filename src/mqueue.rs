//! POSIX message queues (Linux: the queue descriptor is a file descriptor, usable with
//! `select`). Waits are `mq_timedsend`/`mq_timedreceive` in slices of at most 50 ms on a
//! blocking descriptor, so a message that arrives during a wait costs one system call. The
//! slices are measured on `CLOCK_REALTIME`, as those calls require: a wall-clock step can lengthen
//! or shorten one slice, never the deadline, which is on the monotonic clock.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rustix::io::Errno;

use crate::error::{Error, PyRepr, Result};
use crate::pipe::read_proc_number;
use crate::sys::mqueue as sys;
use rustix::time::{ClockId, Timespec};

use crate::wait::{Deadline, Interrupt, SLICE};

pub use sys::Attr;

/// Highest priority plus one (`MQ_PRIO_MAX` on Linux).
pub const PRIO_MAX: u32 = 32768;
/// Longest name, without the leading slash (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// A queue name in the form the kernel wants: one leading slash, no other, 1-255 bytes after it.
pub fn normalize_name(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() || bare.len() > NAME_MAX || bare.contains('/') || bare.contains('\0') {
        return Err(Error::Invalid(format!(
            "invalid message queue name {}: a POSIX queue name is 1 to {NAME_MAX} bytes \
             without '/' or NUL, with an optional leading '/'",
            PyRepr(name)
        )));
    }
    Ok(format!("/{bare}"))
}

fn c_name(name: &str) -> Result<CString> {
    CString::new(name)
        .map_err(|_| Error::Invalid(format!("NUL byte in queue name {}", PyRepr(name))))
}

fn limit(name: &str) -> String {
    read_proc_number(&format!("/proc/sys/fs/mqueue/{name}"))
        .map_or_else(|| "unknown".into(), |n| n.to_string())
}

/// A POSIX message queue.
#[derive(Debug)]
pub struct MessageQueue {
    fd: OwnedFd,
    name: String,
    max_message_size: usize,
    max_messages: i64,
    closed: AtomicBool,
    rx: Mutex<Vec<u8>>,
}

impl MessageQueue {
    /// Opens the queue `name`, creating it (exclusively, with `mode`) when `create` is true.
    /// `max_messages` and `max_message_size` apply when creating; the system defaults
    /// (`/proc/sys/fs/mqueue/msg_default`, `msgsize_default`) otherwise.
    pub fn open(
        name: &str,
        create: bool,
        max_messages: Option<i64>,
        max_message_size: Option<i64>,
        mode: u32,
    ) -> Result<MessageQueue> {
        let name = normalize_name(name)?;
        let cname = c_name(&name)?;
        let mut oflag = libc::O_RDWR | libc::O_CLOEXEC;
        let mut sizes = None;
        if create {
            oflag |= libc::O_CREAT | libc::O_EXCL;
            if max_messages.is_some() || max_message_size.is_some() {
                let maxmsg = max_messages.unwrap_or_else(|| {
                    read_proc_number("/proc/sys/fs/mqueue/msg_default")
                        .map_or(10, |n| i64::try_from(n).unwrap_or(i64::MAX))
                });
                let msgsize = max_message_size.unwrap_or_else(|| {
                    read_proc_number("/proc/sys/fs/mqueue/msgsize_default")
                        .map_or(8192, |n| i64::try_from(n).unwrap_or(i64::MAX))
                });
                if maxmsg <= 0 || msgsize <= 0 {
                    return Err(Error::Invalid(format!(
                        "max_messages and max_message_size must be positive ({name})"
                    )));
                }
                sizes = Some((maxmsg, msgsize));
            }
        } else if max_messages.is_some() || max_message_size.is_some() {
            return Err(Error::Invalid(format!(
                "max_messages and max_message_size apply only when creating the queue ({name})"
            )));
        }
        let fd = sys::open(&cname, oflag, mode & 0o777, sizes)
            .map_err(|e| open_error(e, &name, sizes))?;
        if create {
            // The umask applied to the mode: set exactly the mode asked for.
            rustix::fs::fchmod(
                &fd,
                rustix::fs::Mode::from_bits_truncate((mode & 0o777) as _),
            )
            .map_err(|e| Error::os(e, "fchmod", &name))?;
        }
        let attr = sys::getattr(fd.as_fd()).map_err(|e| Error::os(e, "mq_getattr", &name))?;
        let size = usize::try_from(attr.max_message_size).unwrap_or(0);
        Ok(MessageQueue {
            fd,
            name,
            max_message_size: size,
            max_messages: attr.max_messages,
            closed: AtomicBool::new(false),
            rx: Mutex::new(vec![0u8; size.max(1)]),
        })
    }

    /// The name, with its leading slash.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The descriptor (pollable on Linux).
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Largest message.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Capacity in messages.
    pub fn max_messages(&self) -> i64 {
        self.max_messages
    }

    /// The attributes now (with the current number of messages).
    pub fn attributes(&self) -> Result<Attr> {
        sys::getattr(self.fd.as_fd()).map_err(|e| Error::os(e, "mq_getattr", &self.name))
    }

    /// Marks the queue closed: waits in other threads end with EBADF at their next slice.
    pub fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Runs a timed call (`op(until)`) in slices of at most [`SLICE`]: the queue descriptor is
    /// blocking, so a message arriving during a slice costs one system call.
    fn sliced<T>(
        &self,
        op_name: &'static str,
        timeout: Option<Duration>,
        interrupt: &mut dyn Interrupt,
        mut op: impl FnMut(&Timespec) -> std::result::Result<T, Errno>,
    ) -> Result<T> {
        let deadline = Deadline::after(timeout);
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::os(Errno::BADF, op_name, &self.name));
            }
            let left = deadline.remaining();
            let step = left.map_or(SLICE, |l| l.min(SLICE));
            match op(&realtime_after(step)) {
                Ok(value) => return Ok(value),
                Err(Errno::TIMEDOUT | Errno::AGAIN) => {
                    if left.is_some() && deadline.remaining() == Some(Duration::ZERO) {
                        return Err(Error::Timeout {
                            what: self.name.clone(),
                        });
                    }
                    interrupt.check()?;
                }
                Err(Errno::INTR) => interrupt.check()?,
                Err(e) => return Err(Error::os(e, op_name, &self.name)),
            }
        }
    }

    /// Sends `data` with `priority` (0 lowest, below [`PRIO_MAX`]), waiting while the queue is
    /// full.
    pub fn send(
        &self,
        data: &[u8],
        priority: u32,
        timeout: Option<Duration>,
        interrupt: &mut dyn Interrupt,
    ) -> Result<()> {
        if priority >= PRIO_MAX {
            return Err(Error::Invalid(format!(
                "priority must be from 0 to {} ({})",
                PRIO_MAX - 1,
                self.name
            )));
        }
        if data.len() > self.max_message_size {
            return Err(Error::MessageTooLarge {
                size: data.len() as u64,
                limit: self.max_message_size as u64,
                what: self.name.clone(),
            });
        }
        let fd = self.fd.as_fd();
        self.sliced("mq_send", timeout, interrupt, |at| {
            sys::send(fd, data, priority, at)
        })
    }

    /// Receives the oldest message of the highest priority: `(bytes, priority)`, waiting while
    /// the queue is empty.
    pub fn receive(
        &self,
        timeout: Option<Duration>,
        interrupt: &mut dyn Interrupt,
    ) -> Result<(Vec<u8>, u32)> {
        let mut buf = self.rx.lock().unwrap_or_else(PoisonError::into_inner);
        let fd = self.fd.as_fd();
        let (n, prio) = self.sliced("mq_receive", timeout, interrupt, |at| {
            sys::receive(fd, &mut buf, at)
        })?;
        Ok((buf[..n].to_vec(), prio))
    }

    /// Receives into `dst` (at least [`MessageQueue::max_message_size`] bytes).
    pub fn receive_into(
        &self,
        dst: &mut [u8],
        timeout: Option<Duration>,
        interrupt: &mut dyn Interrupt,
    ) -> Result<(usize, u32)> {
        if dst.len() < self.max_message_size {
            return Err(Error::Invalid(format!(
                "the buffer must hold max_message_size ({}) bytes ({})",
                self.max_message_size, self.name
            )));
        }
        let fd = self.fd.as_fd();
        self.sliced("mq_receive", timeout, interrupt, |at| {
            sys::receive(fd, &mut *dst, at)
        })
    }
}

/// `CLOCK_REALTIME` now plus `step` (the clock of `mq_timedsend`/`mq_timedreceive`); a zero step
/// is a time already passed, so the call tries once.
fn realtime_after(step: Duration) -> Timespec {
    let now = rustix::time::clock_gettime(ClockId::Realtime);
    if step.is_zero() {
        return Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
    }
    let nanos = now.tv_nsec + i64::from(step.subsec_nanos());
    let secs = i64::try_from(step.as_secs()).unwrap_or(i64::MAX);
    Timespec {
        tv_sec: now
            .tv_sec
            .saturating_add(secs)
            .saturating_add(nanos / 1_000_000_000),
        tv_nsec: nanos % 1_000_000_000,
    }
}

/// Removes the queue's name; the queue lives on until its last descriptor is closed.
pub fn unlink(name: &str) -> Result<()> {
    let name = normalize_name(name)?;
    sys::unlink(&c_name(&name)?).map_err(|e| Error::os(e, "mq_unlink", &name))
}

fn open_error(errno: Errno, name: &str, sizes: Option<(i64, i64)>) -> Error {
    let msg = match errno {
        Errno::INVAL if sizes.is_some() => {
            let (maxmsg, msgsize) = sizes.unwrap_or_default();
            format!(
                "cannot create a queue of {maxmsg} messages of {msgsize} bytes: the limits are \
                 /proc/sys/fs/mqueue/msg_max = {} and msgsize_max = {} (root may exceed them up to \
                 the hard limits)",
                limit("msg_max"),
                limit("msgsize_max")
            )
        }
        Errno::NOSPC => format!(
            "too many message queues: /proc/sys/fs/mqueue/queues_max = {}",
            limit("queues_max")
        ),
        Errno::MFILE => "too many open descriptors, or the queues of this user would exceed \
                         RLIMIT_MSGQUEUE (ulimit -q)"
            .to_string(),
        Errno::NOSYS => {
            return Error::NotSupported(format!(
                "POSIX message queues are not available in this kernel ({name})"
            ))
        }
        _ => return Error::os(errno, "mq_open", name),
    };
    Error::OsMsg {
        errno,
        msg,
        what: name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::Uninterrupted;

    #[test]
    fn realtime_after_saturates() {
        assert_eq!(realtime_after(Duration::MAX).tv_sec, i64::MAX);
    }

    #[test]
    fn names() {
        assert_eq!(normalize_name("q").unwrap(), "/q");
        assert_eq!(normalize_name("/q").unwrap(), "/q");
        assert!(normalize_name("/").is_err());
        assert!(normalize_name("a/b").is_err());
        assert!(normalize_name(&"x".repeat(256)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn normalized_names_are_kernel_names(name in "\\PC{0,300}") {
            if let Ok(n) = normalize_name(&name) {
                proptest::prop_assert!(n.starts_with('/'));
                proptest::prop_assert!(!n[1..].contains('/') && !n.contains('\0'));
                proptest::prop_assert!((2..=NAME_MAX + 1).contains(&n.len()));
                proptest::prop_assert_eq!(normalize_name(&n).ok(), Some(n.clone()));
            } else {
                let bare = name.strip_prefix('/').unwrap_or(&name);
                proptest::prop_assert!(
                    bare.is_empty() || bare.len() > NAME_MAX || bare.contains('/') || bare.contains('\0')
                );
            }
        }
    }

    #[test]
    fn round_trip() {
        let name = format!("/fastipc-test-{}", std::process::id());
        let q = match MessageQueue::open(&name, true, Some(4), Some(128), 0o600) {
            Ok(q) => q,
            Err(Error::NotSupported(_)) => return,
            Err(e) => panic!("{e}"),
        };
        unlink(&name).unwrap();
        q.send(b"low", 1, None, &mut Uninterrupted).unwrap();
        q.send(b"high", 9, None, &mut Uninterrupted).unwrap();
        assert_eq!(
            q.receive(None, &mut Uninterrupted).unwrap(),
            (b"high".to_vec(), 9)
        );
        assert_eq!(
            q.receive(None, &mut Uninterrupted).unwrap(),
            (b"low".to_vec(), 1)
        );
        let r = q.receive(Some(Duration::from_millis(10)), &mut Uninterrupted);
        assert!(matches!(r, Err(Error::Timeout { .. })));
    }
}
