//! POSIX message queues (`mq_open` and friends). On Linux a queue descriptor is a file
//! descriptor: it is owned as an `OwnedFd` and waited on with `poll`.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::io::Errno;

use super::last_errno;

/// The attributes of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Largest number of messages the queue holds.
    pub max_messages: i64,
    /// Largest size of one message in bytes.
    pub max_message_size: i64,
    /// Messages in the queue now.
    pub current_messages: i64,
    /// Whether the descriptor is non-blocking.
    pub nonblocking: bool,
}

fn zeroed_attr() -> libc::mq_attr {
    // SAFETY: mq_attr is a plain struct of integers (with private padding) for which all-zero
    // bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

/// `mq_open(name, oflag, mode, attr)`; `sizes` is `(max_messages, max_message_size)` when
/// creating with explicit attributes. The kernel always sets close-on-exec.
pub fn open(
    name: &CStr,
    oflag: i32,
    mode: u32,
    sizes: Option<(i64, i64)>,
) -> Result<OwnedFd, Errno> {
    let mut attr = zeroed_attr();
    let attr_ptr = match sizes {
        Some((maxmsg, msgsize)) => {
            attr.mq_maxmsg = maxmsg as libc::c_long;
            attr.mq_msgsize = msgsize as libc::c_long;
            &raw mut attr
        }
        None => std::ptr::null_mut(),
    };
    // SAFETY: `name` is NUL-terminated; mq_open reads `attr` (or ignores NULL) only during the
    // call; the variadic mode is passed as mode_t as the C prototype expects.
    let mqd = unsafe { libc::mq_open(name.as_ptr(), oflag, mode as libc::mode_t, attr_ptr) };
    if mqd < 0 {
        return Err(last_errno());
    }
    // SAFETY: on Linux a message queue descriptor is a file descriptor, new and owned by nobody.
    Ok(unsafe { OwnedFd::from_raw_fd(mqd) })
}

/// `mq_unlink(name)`.
pub fn unlink(name: &CStr) -> Result<(), Errno> {
    // SAFETY: `name` is NUL-terminated and only read.
    if unsafe { libc::mq_unlink(name.as_ptr()) } < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// `mq_getattr`.
// c_long is i32 on 32-bit targets: the conversions are not useless there.
#[allow(clippy::useless_conversion)]
pub fn getattr(mqd: BorrowedFd<'_>) -> Result<Attr, Errno> {
    let mut attr = zeroed_attr();
    // SAFETY: `mqd` is a live queue descriptor; `attr` is writable storage for the call.
    if unsafe { libc::mq_getattr(mqd.as_raw_fd(), &raw mut attr) } < 0 {
        return Err(last_errno());
    }
    Ok(Attr {
        max_messages: i64::from(attr.mq_maxmsg),
        max_message_size: i64::from(attr.mq_msgsize),
        current_messages: i64::from(attr.mq_curmsgs),
        nonblocking: attr.mq_flags & libc::c_long::from(libc::O_NONBLOCK) != 0,
    })
}

fn timespec(at: &rustix::time::Timespec) -> libc::timespec {
    // SAFETY: timespec is plain integers; all-zero bytes are a valid value (and cover the
    // padding of 32-bit targets).
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    ts.tv_sec = at.tv_sec as libc::time_t;
    ts.tv_nsec = at.tv_nsec as _;
    ts
}

/// `mq_timedsend` until `at` (`CLOCK_REALTIME`): ETIMEDOUT when the queue stays full until then
/// (at once if `at` has passed).
pub fn send(
    mqd: BorrowedFd<'_>,
    data: &[u8],
    priority: u32,
    at: &rustix::time::Timespec,
) -> Result<(), Errno> {
    let ts = timespec(at);
    // SAFETY: `data` is valid for reads of `data.len()` bytes and `ts` is a valid timespec,
    // both during the call only.
    let rc = unsafe {
        libc::mq_timedsend(
            mqd.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            priority,
            &raw const ts,
        )
    };
    if rc < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// `mq_timedreceive` into `buf` (at least the queue's message size) until `at`
/// (`CLOCK_REALTIME`); returns `(length, priority)`, ETIMEDOUT when the queue stays empty.
pub fn receive(
    mqd: BorrowedFd<'_>,
    buf: &mut [u8],
    at: &rustix::time::Timespec,
) -> Result<(usize, u32), Errno> {
    let mut priority: libc::c_uint = 0;
    let ts = timespec(at);
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, `priority` for one c_uint and
    // `ts` is a valid timespec, all during the call only.
    let n = unsafe {
        libc::mq_timedreceive(
            mqd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            &raw mut priority,
            &raw const ts,
        )
    };
    match usize::try_from(n) {
        Ok(n) => Ok((n, priority)),
        Err(_) => Err(last_errno()),
    }
}
