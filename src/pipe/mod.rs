//! Pipes and FIFOs: the two ends as plain Rust types that own their descriptors.
//!
//! fastipc's ends are `O_NONBLOCK` and close-on-exec: a ready descriptor costs one system call,
//! and every wait is a `poll` of at most one slice. An end made inheritable (to hand it to a
//! child) is switched back to blocking mode, because the `O_NONBLOCK` flag belongs to the open
//! file description that the child shares; such an end polls before each call, and writes at
//! most `PIPE_BUF` bytes per call, which a writable pipe always accepts without blocking.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rustix::fs::OFlags;
use rustix::io::{Errno, FdFlags};

use crate::error::{Error, Result};
use crate::wait::{poll_once, Deadline, Interrupt, Ready, Wait, SLICE};

mod fifo;

pub use fifo::{mkfifo, open_fifo_reader, open_fifo_writer};

const NO_TIMEOUT: u64 = u64::MAX;
/// Bytes a pipe write is guaranteed to take atomically (and, when writable, without blocking).
pub const PIPE_BUF: usize = 4096;

/// What both ends share: the descriptor and its settings.
#[derive(Debug)]
struct End {
    fd: OwnedFd,
    what: String,
    closed: AtomicBool,
    nonblocking_fd: AtomicBool,
    timeout_ns: AtomicU64,
    blocking: AtomicBool,
    io: Mutex<()>,
}

impl End {
    fn new(fd: OwnedFd, what: String, nonblocking_fd: bool) -> End {
        End {
            fd,
            what,
            closed: AtomicBool::new(false),
            nonblocking_fd: AtomicBool::new(nonblocking_fd),
            timeout_ns: AtomicU64::new(NO_TIMEOUT),
            blocking: AtomicBool::new(true),
            io: Mutex::new(()),
        }
    }

    fn timeout(&self) -> Option<Duration> {
        if !self.blocking.load(Ordering::Relaxed) {
            return Some(Duration::ZERO);
        }
        match self.timeout_ns.load(Ordering::Relaxed) {
            NO_TIMEOUT => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    fn set_timeout(&self, timeout: Option<Duration>) {
        let ns = timeout.map_or(NO_TIMEOUT, |t| {
            u64::try_from(t.as_nanos()).unwrap_or(NO_TIMEOUT - 1)
        });
        self.timeout_ns.store(ns, Ordering::Relaxed);
        self.blocking.store(true, Ordering::Relaxed);
    }

    fn wait<'a>(&'a self, timeout: Option<Duration>, interrupt: &'a mut dyn Interrupt) -> Wait<'a> {
        Wait {
            deadline: Deadline::after(timeout),
            interrupt,
            closed: Some(&self.closed),
            sliced_fd: false,
        }
    }

    /// Runs `op` on the descriptor, waiting for `ready`. Without the end's blocking mode one
    /// attempt is made and EAGAIN is reported as such (`BlockingIOError` in Python).
    fn run<T>(
        &self,
        ready: Ready,
        op_name: &'static str,
        timeout: Option<Duration>,
        interrupt: &mut dyn Interrupt,
        mut op: impl FnMut() -> std::result::Result<T, Errno>,
    ) -> Result<T> {
        let fd = self.fd.as_fd();
        let shared = !self.nonblocking_fd.load(Ordering::Relaxed);
        let mut guarded = || {
            if shared && !poll_once(fd, ready, Duration::ZERO)? {
                return Err(Errno::AGAIN);
            }
            op()
        };
        if !self.blocking.load(Ordering::Relaxed) {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::os(Errno::BADF, op_name, &self.what));
            }
            return loop {
                match guarded() {
                    Err(Errno::INTR) => interrupt.check()?,
                    other => break other.map_err(|e| Error::os(e, op_name, &self.what)),
                }
            };
        }
        let mut wait = self.wait(timeout, interrupt);
        wait.run_eager(fd, ready, op_name, &self.what, guarded)
    }

    fn set_inheritable(&self, inheritable: bool) -> Result<()> {
        let err = |e| Error::os(e, "fcntl", &self.what);
        let flags = if inheritable {
            FdFlags::empty()
        } else {
            FdFlags::CLOEXEC
        };
        rustix::io::fcntl_setfd(&self.fd, flags).map_err(err)?;
        let fl = rustix::fs::fcntl_getfl(&self.fd).map_err(err)?;
        let fl = if inheritable {
            fl - OFlags::NONBLOCK
        } else {
            fl | OFlags::NONBLOCK
        };
        rustix::fs::fcntl_setfl(&self.fd, fl).map_err(err)?;
        self.nonblocking_fd.store(!inheritable, Ordering::Relaxed);
        Ok(())
    }

    fn inheritable(&self) -> Result<bool> {
        let flags =
            rustix::io::fcntl_getfd(&self.fd).map_err(|e| Error::os(e, "fcntl", &self.what))?;
        Ok(!flags.contains(FdFlags::CLOEXEC))
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn capacity(&self) -> Result<usize> {
        rustix::pipe::fcntl_getpipe_size(&self.fd)
            .map_err(|e| Error::os(e, "F_GETPIPE_SZ", &self.what))
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn capacity(&self) -> Result<usize> {
        Err(Error::NotSupported(
            "the pipe capacity is known on Linux only".into(),
        ))
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn set_capacity(&self, size: usize) -> Result<usize> {
        rustix::pipe::fcntl_setpipe_size(&self.fd, size).map_err(|e| match e {
            Errno::PERM => Error::OsMsg {
                errno: e,
                msg: format!(
                    "cannot set the pipe capacity to {size} bytes: above /proc/sys/fs/pipe-max-size ({}) \
                     or the per-user pipe limits (/proc/sys/fs/pipe-user-pages-*)",
                    read_proc_number("/proc/sys/fs/pipe-max-size").unwrap_or(0)
                ),
                what: self.what.clone(),
            },
            Errno::BUSY => Error::OsMsg {
                errno: e,
                msg: format!("cannot shrink the pipe to {size} bytes: it holds more data than that"),
                what: self.what.clone(),
            },
            e => Error::os(e, "F_SETPIPE_SZ", &self.what),
        })
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn set_capacity(&self, _size: usize) -> Result<usize> {
        Err(Error::NotSupported(
            "the pipe capacity can be set on Linux only".into(),
        ))
    }
}

/// A number from a `/proc/sys` file.
pub fn read_proc_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

macro_rules! end_accessors {
    () => {
        /// The descriptor.
        pub fn as_fd(&self) -> BorrowedFd<'_> {
            self.0.fd.as_fd()
        }

        /// What the end is: "pipe" or the FIFO's path.
        pub fn what(&self) -> &str {
            &self.0.what
        }

        /// Marks the end closed: waits in other threads end with EBADF at their next slice.
        pub fn mark_closed(&self) {
            self.0.closed.store(true, Ordering::Release);
        }

        /// The timeout of the end's operations (`Some(ZERO)` in non-blocking mode).
        pub fn timeout(&self) -> Option<Duration> {
            self.0.timeout()
        }

        /// Sets the timeout (None: wait forever) and leaves non-blocking mode.
        pub fn set_timeout(&self, timeout: Option<Duration>) {
            self.0.set_timeout(timeout)
        }

        /// Non-blocking mode: each operation tries once and fails with EAGAIN.
        pub fn set_blocking(&self, blocking: bool) {
            if blocking {
                self.0.set_timeout(None);
            } else {
                self.0.blocking.store(false, Ordering::Relaxed);
            }
        }

        /// Whether the end is in blocking mode.
        pub fn blocking(&self) -> bool {
            self.0.blocking.load(Ordering::Relaxed)
        }

        /// Clears (`true`) or sets close-on-exec. An inheritable end is also switched to a
        /// blocking descriptor, as a child expects.
        pub fn set_inheritable(&self, inheritable: bool) -> Result<()> {
            self.0.set_inheritable(inheritable)
        }

        /// Whether the descriptor survives exec.
        pub fn inheritable(&self) -> Result<bool> {
            self.0.inheritable()
        }

        /// The pipe's capacity in bytes (Linux).
        pub fn capacity(&self) -> Result<usize> {
            self.0.capacity()
        }

        /// Sets the pipe's capacity (`F_SETPIPE_SZ`, Linux); returns the size the kernel chose.
        pub fn set_capacity(&self, size: usize) -> Result<usize> {
            self.0.set_capacity(size)
        }

        /// Takes the descriptor out, for the caller to own.
        pub fn into_fd(self) -> OwnedFd {
            self.0.fd
        }
    };
}

/// The reading end of a pipe or FIFO.
#[derive(Debug)]
pub struct PipeReader(End);

/// The writing end of a pipe or FIFO.
#[derive(Debug)]
pub struct PipeWriter(End);

/// A new pipe: `(reader, writer)`, close-on-exec.
pub fn pipe() -> Result<(PipeReader, PipeWriter)> {
    let (r, w) = new_pipe().map_err(|e| Error::os(e, "pipe", "pipe"))?;
    Ok((
        PipeReader(End::new(r, "pipe".into(), true)),
        PipeWriter(End::new(w, "pipe".into(), true)),
    ))
}

#[cfg(not(target_vendor = "apple"))]
fn new_pipe() -> std::result::Result<(OwnedFd, OwnedFd), Errno> {
    use rustix::pipe::PipeFlags;
    rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)
}

/// Apple has no `pipe2`: the flags are set right after `pipe` (a `fork` in another thread in
/// between may inherit the descriptors).
#[cfg(target_vendor = "apple")]
fn new_pipe() -> std::result::Result<(OwnedFd, OwnedFd), Errno> {
    let (r, w) = rustix::pipe::pipe()?;
    for fd in [&r, &w] {
        rustix::io::fcntl_setfd(fd, FdFlags::CLOEXEC)?;
        rustix::fs::fcntl_setfl(fd, rustix::fs::fcntl_getfl(fd)? | OFlags::NONBLOCK)?;
    }
    Ok((r, w))
}

impl PipeReader {
    end_accessors!();

    /// Adopts a descriptor (made non-blocking and close-on-exec).
    pub fn adopt(fd: OwnedFd, what: String) -> Result<PipeReader> {
        let end = End::new(fd, what, true);
        end.set_inheritable(false)?;
        Ok(PipeReader(end))
    }

    /// Reads at most `dst.len()` bytes; 0 at end of file (every writer closed).
    pub fn read(&self, dst: &mut [u8], interrupt: &mut dyn Interrupt) -> Result<usize> {
        self.read_within(dst, self.timeout(), interrupt)
    }

    fn read_within(
        &self,
        dst: &mut [u8],
        timeout: Option<Duration>,
        interrupt: &mut dyn Interrupt,
    ) -> Result<usize> {
        if dst.is_empty() {
            return Ok(0);
        }
        self.0.run(Ready::Read, "read", timeout, interrupt, || {
            rustix::io::read(&self.0.fd, &mut *dst)
        })
    }

    /// Reads exactly `dst.len()` bytes within the end's timeout: `Eof` if the pipe ends before
    /// any, `Truncated` part way. Reads from several threads do not interleave.
    pub fn read_exact(&self, dst: &mut [u8], interrupt: &mut dyn Interrupt) -> Result<()> {
        let _guard = self.0.io.lock().unwrap_or_else(PoisonError::into_inner);
        let deadline = Deadline::after(self.timeout());
        let mut got = 0;
        while got < dst.len() {
            let left = deadline.remaining();
            let n = self.read_within(&mut dst[got..], left, interrupt)?;
            if n == 0 {
                return Err(if got == 0 {
                    Error::Eof {
                        what: self.0.what.clone(),
                    }
                } else {
                    Error::Truncated {
                        expected: dst.len() as u64,
                        received: got as u64,
                        what: self.0.what.clone(),
                    }
                });
            }
            got += n;
        }
        Ok(())
    }

    /// Bytes waiting in the pipe (FIONREAD).
    pub fn available(&self) -> Result<u64> {
        rustix::io::ioctl_fionread(&self.0.fd).map_err(|e| Error::os(e, "FIONREAD", &self.0.what))
    }

    /// Whether a read would not wait (data or end of file) within `timeout`.
    pub fn poll(&self, timeout: Option<Duration>, interrupt: &mut dyn Interrupt) -> Result<bool> {
        let deadline = Deadline::after(timeout);
        loop {
            if self.0.closed.load(Ordering::Acquire) {
                return Err(Error::os(Errno::BADF, "poll", &self.0.what));
            }
            let left = deadline.remaining().unwrap_or(SLICE).min(SLICE);
            if poll_once(self.0.fd.as_fd(), Ready::Read, left)
                .map_err(|e| Error::os(e, "poll", &self.0.what))?
            {
                return Ok(true);
            }
            if deadline.remaining() == Some(Duration::ZERO) {
                return Ok(false);
            }
            interrupt.check()?;
        }
    }
}

impl PipeWriter {
    end_accessors!();

    /// Adopts a descriptor (made non-blocking and close-on-exec).
    pub fn adopt(fd: OwnedFd, what: String) -> Result<PipeWriter> {
        let end = End::new(fd, what, true);
        end.set_inheritable(false)?;
        Ok(PipeWriter(end))
    }

    fn write_within(
        &self,
        data: &[u8],
        timeout: Option<Duration>,
        interrupt: &mut dyn Interrupt,
    ) -> Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let shared = !self.0.nonblocking_fd.load(Ordering::Relaxed);
        let chunk = if shared {
            &data[..data.len().min(PIPE_BUF)]
        } else {
            data
        };
        // A reader gone is EPIPE (BrokenPipeError), never a SIGPIPE that kills the process.
        self.0.run(Ready::Write, "write", timeout, interrupt, || {
            crate::sys::sigpipe::without_sigpipe(|| rustix::io::write(&self.0.fd, chunk))
        })
    }

    /// Writes some of `data` (at least one byte unless it is empty); returns how much.
    /// EPIPE (`BrokenPipeError`) when every reader is gone.
    pub fn write(&self, data: &[u8], interrupt: &mut dyn Interrupt) -> Result<usize> {
        self.write_within(data, self.timeout(), interrupt)
    }

    /// Writes every byte of `data` within the end's timeout. Writes from several threads do not
    /// interleave; a timeout may leave part of `data` written.
    pub fn write_all(&self, data: &[u8], interrupt: &mut dyn Interrupt) -> Result<()> {
        let _guard = self.0.io.lock().unwrap_or_else(PoisonError::into_inner);
        let deadline = Deadline::after(self.timeout());
        let mut sent = 0;
        while sent < data.len() {
            sent += self.write_within(&data[sent..], deadline.remaining(), interrupt)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::Uninterrupted;

    #[test]
    fn pipe_round_trip() {
        let (r, w) = pipe().unwrap();
        w.write_all(b"hello", &mut Uninterrupted).unwrap();
        let mut buf = [0u8; 5];
        r.read_exact(&mut buf, &mut Uninterrupted).unwrap();
        assert_eq!(&buf, b"hello");
        r.set_timeout(Some(Duration::from_millis(20)));
        assert!(matches!(
            r.read(&mut buf, &mut Uninterrupted),
            Err(Error::Timeout { .. })
        ));
        drop(w);
        assert_eq!(r.read(&mut buf, &mut Uninterrupted).unwrap(), 0);
    }

    #[test]
    fn inheritable_end_still_works() {
        let (r, w) = pipe().unwrap();
        w.set_inheritable(true).unwrap();
        assert!(w.inheritable().unwrap());
        let data = vec![7u8; 100_000];
        let t = std::thread::spawn(move || {
            w.write_all(&data, &mut Uninterrupted).unwrap();
        });
        let mut got = vec![0u8; 100_000];
        r.read_exact(&mut got, &mut Uninterrupted).unwrap();
        t.join().unwrap();
        assert!(got.iter().all(|&b| b == 7));
    }
}
