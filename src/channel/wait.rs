//! How a channel operation waits: deadline, interrupt check, peer check, and the bounded spin.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::wait::{Deadline, Interrupt, Uninterrupted, SLICE};

/// The longest spin before sleeping: a cross-core wake-up costs ~20 µs on the machines measured
/// (docs/channel.md), so spinning longer than that buys nothing.
pub const SPIN: Duration = Duration::from_micros(20);

/// How many times a waiter whose peer last ran on its own CPU gives that CPU away
/// (`sched_yield`) before it sleeps: the peer, runnable behind it, then answers without a futex
/// wake-up on either side (docs/channel.md, "Waiting").
pub const YIELDS: u32 = 2;

/// Whether waiting may spin or yield at all (`FASTIPC_CHANNEL_NO_SPIN` turns both off).
fn busy_waiting_allowed() -> bool {
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    *ALLOWED.get_or_init(|| std::env::var_os("FASTIPC_CHANNEL_NO_SPIN").is_none())
}

/// Whether spinning can help at all: never with one CPU (it would only burn the peer's slice).
pub fn spinning_allowed() -> bool {
    static MULTI: OnceLock<bool> = OnceLock::new();
    *MULTI.get_or_init(|| {
        if !busy_waiting_allowed() {
            return false;
        }
        // The CPUs online (not this process's affinity: a process pinned to one CPU may still
        // talk to a peer on another; the ring's CPU hints tell the cases apart).
        std::fs::read_to_string("/sys/devices/system/cpu/online").map_or_else(
            |_| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
            |s| s.trim() != "0",
        )
    })
}

/// Waits without sleeping until `done`: yields the CPU (see [`yield_until`]) when the peer shares
/// it (`share`), else spins up to `bound` where spinning may pay; whether `done` came.
pub fn busy_wait(share: bool, bound: Duration, done: impl FnMut() -> bool) -> bool {
    if share {
        yield_until(done)
    } else {
        spinning_allowed() && spin_for(bound, done)
    }
}

/// Gives the CPU away up to [`YIELDS`] times until `done`; whether `done` came. For a peer that
/// shares this CPU: it runs at once (no wake-up to pay, it never slept), and a yield with nobody
/// else runnable returns at once, so the bound is a few system calls, never a time slice burnt.
pub fn yield_until(mut done: impl FnMut() -> bool) -> bool {
    if !busy_waiting_allowed() {
        return false;
    }
    for _ in 0..YIELDS {
        std::thread::yield_now();
        if done() {
            return true;
        }
    }
    false
}

/// Spins until `done` or `bound` passes; whether `done` came.
pub fn spin_for(bound: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= bound {
            return done();
        }
    }
}

/// A check run before each sleep: an error ends the wait (the peer is gone).
pub type PeerCheck<'a> = &'a dyn Fn() -> Result<()>;

/// The bounds of one operation's wait.
pub struct Waiting<'a> {
    /// When to give up.
    pub deadline: Deadline,
    /// Checked when a sleep ends without progress.
    pub interrupt: &'a mut dyn Interrupt,
    /// The peer's liveness (channels).
    pub peer: Option<PeerCheck<'a>>,
    /// Named in errors.
    pub what: &'a str,
    /// Not waiting at all (no clock read).
    pub now: bool,
}

impl<'a> Waiting<'a> {
    /// Waiting up to `deadline`.
    pub fn new(deadline: Deadline, interrupt: &'a mut dyn Interrupt, what: &'a str) -> Self {
        Waiting {
            deadline,
            interrupt,
            peer: None,
            what,
            now: false,
        }
    }

    /// Not waiting at all: a full ring or an empty one is `Error::Timeout` at once.
    pub fn nonblocking(interrupt: &'a mut Uninterrupted, what: &'a str) -> Self {
        Waiting {
            now: true,
            ..Waiting::new(Deadline::NEVER, interrupt, what)
        }
    }

    /// The next sleep: at most a slice, at most what is left; `Error::Timeout` when nothing is.
    pub fn next_slice(&self) -> Result<Duration> {
        if self.now {
            return Err(Error::Timeout {
                what: self.what.to_string(),
            });
        }
        match self.deadline.remaining() {
            Some(left) if left.is_zero() => Err(Error::Timeout {
                what: self.what.to_string(),
            }),
            Some(left) => Ok(left.min(SLICE)),
            None => Ok(SLICE),
        }
    }

    /// Whether to spin or yield before sleeping (as far as the bounds go).
    pub fn may_busy_wait(&self) -> bool {
        !self.now && self.deadline.remaining() != Some(Duration::ZERO)
    }

    /// Runs the peer check.
    pub fn check_peer(&self) -> Result<()> {
        self.peer.map_or(Ok(()), |check| check())
    }
}
