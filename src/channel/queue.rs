//! A queue in shared memory: one ring, many producers and many consumers, and for a joinable
//! queue the count of unfinished tasks.

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use super::layout::{Kind, OFF_JOIN_SLEEPERS, OFF_UNFINISHED};
use super::local::Local;
use super::raw::{futex_wait, futex_wake};
use super::ring::Ring;
use super::segment::Segment;
use super::wait::Waiting;
use crate::error::{Error, Result};
use crate::wait::{Deadline, Interrupt};

/// A shared-memory queue of byte messages.
#[derive(Debug)]
pub struct Queue {
    seg: Segment,
    local: Local,
}

impl Queue {
    /// Creates a queue (see [`Segment::create`]); `joinable` counts unfinished tasks.
    pub fn create(
        capacity: u64,
        maxsize: u64,
        name: Option<&str>,
        mode: u32,
        joinable: bool,
    ) -> Result<Queue> {
        let kind = if joinable {
            Kind::JoinableQueue
        } else {
            Kind::Queue
        };
        Ok(Queue {
            seg: Segment::create(kind, capacity, maxsize, name, mode)?,
            local: Local::default(),
        })
    }

    fn checked(seg: Segment) -> Result<Queue> {
        if seg.kind() == Kind::Channel {
            return Err(Error::Corrupt {
                what: "not a fastipc queue (a channel)".into(),
            });
        }
        Ok(Queue {
            seg,
            local: Local::default(),
        })
    }

    /// Opens the named queue `name`.
    pub fn open(name: &str) -> Result<Queue> {
        Queue::checked(Segment::open(name)?)
    }

    /// Adopts a queue's segment received as a descriptor.
    pub fn from_fd(fd: OwnedFd) -> Result<Queue> {
        Queue::checked(Segment::from_fd(fd)?)
    }

    /// This handle's own state (closed, views held).
    pub fn local(&self) -> &Local {
        &self.local
    }

    /// The segment.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The ring.
    pub fn ring(&self) -> &Ring {
        self.seg.ring(0)
    }

    /// Whether this is a joinable queue.
    pub fn joinable(&self) -> bool {
        self.seg.kind() == Kind::JoinableQueue
    }

    /// Puts one message (at most [`Ring::max_inline`] bytes).
    pub fn put_bytes(&self, data: &[u8], w: &mut Waiting<'_>) -> Result<()> {
        let ring = self.ring();
        let slot = ring.reserve(data.len(), w)?;
        match ring.write(&slot, 0, data) {
            Ok(()) => ring.publish(slot, data.len(), 0),
            Err(e) => {
                ring.abort(slot);
                Err(e)
            }
        }
    }

    /// Takes one message.
    pub fn get_bytes(&self, w: &mut Waiting<'_>) -> Result<Vec<u8>> {
        let ring = self.ring();
        let msg = ring.acquire(w)?;
        let mut out = vec![0u8; msg.len];
        let result = ring.read(&msg, 0, &mut out);
        ring.release(msg);
        result.map(|()| out)
    }

    fn unfinished(&self) -> Result<&std::sync::atomic::AtomicU64> {
        self.seg
            .region()
            .u64_at(OFF_UNFINISHED)
            .ok_or_else(|| Error::Invalid("not a joinable queue".into()))
    }

    /// Marks one task done; `Error::Invalid` when none is unfinished.
    pub fn task_done(&self) -> Result<()> {
        let word = self.unfinished()?;
        let prev = word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .map_err(|_| Error::Invalid("task_done() called too many times".into()))?;
        if prev == 1 {
            fence_and_wake(self);
        }
        Ok(())
    }

    /// Waits until no task is unfinished; false if the deadline passed first.
    pub fn join(&self, deadline: Deadline, interrupt: &mut dyn Interrupt) -> Result<bool> {
        let word = self.unfinished()?;
        let sleepers = self.sleepers()?;
        loop {
            let now = word.load(Ordering::Acquire);
            if now == 0 {
                return Ok(true);
            }
            let slice = match deadline.remaining() {
                Some(left) if left.is_zero() => return Ok(false),
                Some(left) => left.min(crate::wait::SLICE),
                None => crate::wait::SLICE,
            };
            sleepers.fetch_add(1, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            if word.load(Ordering::Acquire) == now {
                #[allow(clippy::cast_possible_truncation)] // the low half, on purpose
                futex_wait(low_half(self)?, now as u32, slice);
            }
            let _ =
                sleepers.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
            if word.load(Ordering::Acquire) == now {
                interrupt.check()?;
            }
        }
    }

    fn sleepers(&self) -> Result<&std::sync::atomic::AtomicU32> {
        self.seg
            .region()
            .u32_at(OFF_JOIN_SLEEPERS)
            .ok_or_else(|| Error::Invalid("not a joinable queue".into()))
    }
}

fn low_half(q: &Queue) -> Result<&std::sync::atomic::AtomicU32> {
    let half = if cfg!(target_endian = "little") { 0 } else { 4 };
    q.seg
        .region()
        .u32_at(OFF_UNFINISHED + half)
        .ok_or_else(|| Error::Invalid("not a joinable queue".into()))
}

fn fence_and_wake(q: &Queue) {
    std::sync::atomic::fence(Ordering::SeqCst);
    if let (Ok(sleepers), Ok(word)) = (q.sleepers(), low_half(q)) {
        if sleepers.load(Ordering::Relaxed) != 0 {
            futex_wake(word);
        }
    }
}
