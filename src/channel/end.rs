//! One end of a channel: a segment of two rings (end 0 sends on ring 0 and receives on ring 1,
//! end 1 the other way round) and the other end's liveness.
//!
//! Liveness: an anonymous pair ([`pair`]) holds a pipe per end: each end holds the write side of
//! its own pipe and the read side of the peer's. The kernel counts holders across `fork` and
//! descriptor passing, so the read side reports hang-up exactly when every copy of the peer's
//! end is closed or its processes died (even by SIGKILL). A named channel, opened by an unrelated
//! process, records each end's pid and a closed flag in the segment; the peer is gone once its
//! flag is set or its process exited (a pidfd, on Linux). Both are checked before each sleep (at
//! least every 50 ms) and, on the send path, at most every 20 ms.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rustix::io::Errno;

use super::layout::{Kind, OFF_CLOSED, OFF_PID};
use super::local::Local;
use super::ring::Ring;
use super::segment::Segment;
use crate::error::{Error, Result};

/// How often a send that does not wait looks at the peer.
const SEND_CHECK_MS: u64 = 20;

#[derive(Debug)]
enum Liveness {
    Pipes {
        /// Held for our peer to watch; never written.
        mine: OwnedFd,
        /// Hangs up when the peer is gone.
        theirs: OwnedFd,
    },
    Named {
        pidfd: Mutex<Option<(u32, OwnedFd)>>,
    },
}

/// One end of a channel.
#[derive(Debug)]
pub struct End {
    seg: Segment,
    index: usize,
    live: Liveness,
    last_check: AtomicU64,
    local: Local,
}

fn hung_up(fd: BorrowedFd<'_>) -> bool {
    crate::wait::poll_once(fd, crate::wait::Ready::Read, Duration::ZERO).unwrap_or(false)
}

fn pipe_pair() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::os(e, "pipe", "channel"))
}

/// A connected pair of ends over an anonymous (sealed memfd) segment.
pub fn pair(capacity: u64) -> Result<(End, End)> {
    let seg = Segment::create(Kind::Channel, capacity, 0, None, 0o600)?;
    let fd =
        rustix::io::fcntl_dupfd_cloexec(seg.fd(), 0).map_err(|e| Error::os(e, "dup", "channel"))?;
    let other = Segment::from_fd(fd)?;
    let (r0, w0) = pipe_pair()?;
    let (r1, w1) = pipe_pair()?;
    let a = End::new(
        seg,
        0,
        Liveness::Pipes {
            mine: w0,
            theirs: r1,
        },
    );
    let b = End::new(
        other,
        1,
        Liveness::Pipes {
            mine: w1,
            theirs: r0,
        },
    );
    Ok((a, b))
}

impl End {
    fn new(seg: Segment, end: usize, live: Liveness) -> End {
        End {
            seg,
            index: end,
            live,
            last_check: AtomicU64::new(0),
            local: Local::default(),
        }
    }

    /// This handle's own state (closed, views held).
    pub fn local(&self) -> &Local {
        &self.local
    }

    /// Rebuilds an anonymous end from its descriptors (segment, own pipe, peer's pipe).
    pub fn from_fds(end: usize, seg: OwnedFd, mine: OwnedFd, theirs: OwnedFd) -> Result<End> {
        let seg = Segment::from_fd(seg)?;
        if seg.kind() != Kind::Channel || end > 1 {
            return Err(Error::Corrupt {
                what: "not a fastipc channel".into(),
            });
        }
        Ok(End::new(seg, end, Liveness::Pipes { mine, theirs }))
    }

    /// Creates the named channel `name` (this is end 0).
    pub fn create(name: &str, capacity: u64, mode: u32) -> Result<End> {
        let seg = Segment::create(Kind::Channel, capacity, 0, Some(name), mode)?;
        let end = End::new(
            seg,
            0,
            Liveness::Named {
                pidfd: Mutex::new(None),
            },
        );
        end.word(OFF_PID)
            .store(std::process::id(), Ordering::Release);
        Ok(end)
    }

    /// Opens the named channel `name` (end 1); `EEXIST` while another opener's end lives.
    pub fn open(name: &str) -> Result<End> {
        let seg = Segment::open(name)?;
        if seg.kind() != Kind::Channel {
            return Err(Error::Corrupt {
                what: format!("{name} is not a fastipc channel"),
            });
        }
        let end = End::new(
            seg,
            1,
            Liveness::Named {
                pidfd: Mutex::new(None),
            },
        );
        let slot = end.word(OFF_PID + 4);
        let closed = end.word(OFF_CLOSED + 4);
        let me = std::process::id();
        loop {
            let holder = slot.load(Ordering::Acquire);
            let free = holder == 0 || closed.load(Ordering::Acquire) != 0 || !pid_alive(holder);
            if !free {
                return Err(Error::OsMsg {
                    errno: Errno::EXIST,
                    msg: format!(
                        "the channel already has its other end open (by pid {holder}): a \
                         named channel has one opener"
                    ),
                    what: name.to_string(),
                });
            }
            if slot
                .compare_exchange(holder, me, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                closed.store(0, Ordering::Release);
                return Ok(end);
            }
        }
    }

    fn word(&self, off: usize) -> &std::sync::atomic::AtomicU32 {
        self.seg
            .region()
            .u32_at(off)
            .expect("segment header in range")
    }

    /// Which end this is (0 or 1).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The segment.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The ring this end sends on.
    pub fn tx(&self) -> &Ring {
        self.seg.ring(self.index)
    }

    /// The ring this end receives from.
    pub fn rx(&self) -> &Ring {
        self.seg.ring(1 - self.index)
    }

    /// The liveness descriptors of an anonymous end (own, peer's), to hand to another process.
    pub fn pipes(&self) -> Option<(BorrowedFd<'_>, BorrowedFd<'_>)> {
        match &self.live {
            Liveness::Pipes { mine, theirs } => Some((mine.as_fd(), theirs.as_fd())),
            Liveness::Named { .. } => None,
        }
    }

    /// Whether the other end is gone (closed everywhere, or its process died).
    pub fn peer_gone(&self) -> bool {
        match &self.live {
            Liveness::Pipes { theirs, .. } => hung_up(theirs.as_fd()),
            Liveness::Named { pidfd } => {
                let peer = 1 - self.index;
                if self.word(OFF_CLOSED + 4 * peer).load(Ordering::Acquire) != 0 {
                    return true;
                }
                let pid = self.word(OFF_PID + 4 * peer).load(Ordering::Acquire);
                if pid == 0 {
                    return false; // not opened yet
                }
                named_pid_gone(pidfd, pid)
            }
        }
    }

    /// The check for a send that does not wait: the peer, at most every 20 ms.
    pub fn send_check(&self) -> Result<()> {
        if self.peer_gone_paced(SEND_CHECK_MS) {
            return Err(broken());
        }
        Ok(())
    }

    /// [`End::peer_gone`], asked at most every `every_ms` milliseconds (by the coarse clock,
    /// a few nanoseconds): `false` in between.
    pub fn peer_gone_paced(&self, every_ms: u64) -> bool {
        let now = super::raw::coarse_ms() + 1;
        let last = self.last_check.load(Ordering::Relaxed);
        if now.saturating_sub(last) < every_ms && last != 0 {
            return false;
        }
        self.last_check.store(now, Ordering::Relaxed);
        self.peer_gone()
    }

    /// Marks a named end closed (anonymous ends close by dropping their descriptors).
    pub fn mark_closed(&self) {
        if matches!(self.live, Liveness::Named { .. }) {
            self.word(OFF_CLOSED + 4 * self.index)
                .store(1, Ordering::Release);
        }
    }
}

/// The error of a send to a channel whose other end is gone.
pub fn broken() -> Error {
    Error::os(Errno::PIPE, "send", "channel: the other end is closed")
}

/// The error of a receive on a drained channel whose other end is gone.
pub fn eof() -> Error {
    Error::Eof {
        what: "channel".into(),
    }
}

fn pid_alive(pid: u32) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        match super::raw::pidfd_open(pid) {
            Ok(fd) => !hung_up(fd.as_fd()),
            Err(Errno::SRCH) => false,
            Err(_) => true,
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        rustix::process::Pid::from_raw(i32::try_from(pid).unwrap_or(-1))
            .map(|p| rustix::process::test_kill_process(p).is_ok())
            .unwrap_or(false)
    }
}

fn named_pid_gone(cache: &Mutex<Option<(u32, OwnedFd)>>, pid: u32) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let Ok(mut guard) = cache.lock() else {
            return !pid_alive(pid);
        };
        if guard.as_ref().is_none_or(|(p, _)| *p != pid) {
            match super::raw::pidfd_open(pid) {
                Ok(fd) => *guard = Some((pid, fd)),
                Err(Errno::SRCH) => return true,
                Err(_) => return false,
            }
        }
        guard.as_ref().is_some_and(|(_, fd)| hung_up(fd.as_fd()))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = cache;
        !pid_alive(pid)
    }
}
