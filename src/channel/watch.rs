//! What a ring offers besides sending and receiving: watching it (for the notification
//! descriptors), a short spin with the caller's lock held, waking every sleeper.

use std::sync::atomic::{fence, Ordering};

use super::layout::{R_DATA_SLEEPERS, R_HEAD, R_PROD_CPU, R_SPACE_SLEEPERS, R_TAIL};
use super::raw::{current_cpu, futex_wait, futex_wake};
use super::ring::Ring;

impl Ring {
    /// Where the tail (`tail`) or the head is now, for [`Ring::watch`].
    pub fn position(&self, tail: bool) -> u64 {
        self.word(if tail { R_TAIL } else { R_HEAD })
            .load(Ordering::Acquire)
    }

    /// Sleeps until the tail (`tail`) or the head moves from `seen`, or `slice` passes, without
    /// spinning: for a thread that turns ring events into descriptor events.
    pub fn watch(&self, tail: bool, seen: u64, slice: std::time::Duration) {
        let (off, sleepers) = if tail {
            (R_TAIL, R_DATA_SLEEPERS)
        } else {
            (R_HEAD, R_SPACE_SLEEPERS)
        };
        let count = self.word32(sleepers);
        count.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.word(off).load(Ordering::Acquire) == seen {
            #[allow(clippy::cast_possible_truncation)] // the low half, on purpose
            futex_wait(self.low(off), seen as u32, slice);
        }
        let _ = count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Spins up to `bound` (no sleep, no lock) until a message may be there (the tail is past
    /// the head), when spinning can pay (see [`Ring::acquire`]), or yields the CPU a few times
    /// instead when the producer last ran on this one; whether one may be there. (Against the
    /// head, not against the tail as read on entry: a message published in between is seen at
    /// once, not one message later.)
    pub fn spin_for_data(&self, bound: std::time::Duration) -> bool {
        if self.misses.load(Ordering::Relaxed) >= 8 {
            return false;
        }
        let tail = self.word(R_TAIL);
        let head = self.word(R_HEAD).load(Ordering::Acquire);
        // A producer on this CPU is stepped aside for, not spun against.
        let share = self.word32(R_PROD_CPU).load(Ordering::Relaxed) == current_cpu();
        super::wait::busy_wait(share, bound, || tail.load(Ordering::Acquire) != head)
    }

    /// Wakes every sleeper of this ring (both directions): they re-check what they wait for.
    pub fn wake_all(&self) {
        futex_wake(self.low(R_TAIL));
        futex_wake(self.low(R_HEAD));
    }
}
