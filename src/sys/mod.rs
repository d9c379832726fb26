//! The operating-system calls that `rustix` does not cover, through `libc`. The only place of the
//! core with `unsafe`: every block says why it holds in a `// SAFETY:` comment. (The Python
//! buffer protocol's `unsafe` lives in `py/buffer.rs`, with the bindings it serves.)

pub mod creds;
#[cfg(target_vendor = "apple")]
pub mod fifo;
pub mod lock;
#[cfg(target_os = "linux")]
pub mod mqueue;
#[cfg(target_os = "linux")]
pub mod signalfd;
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
