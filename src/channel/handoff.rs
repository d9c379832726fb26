//! How one side of a ring hands the turn to the other: waiting for the other side to move (yield
//! to a peer on this CPU, spin for one on another, then sleep on the futex), and a producer
//! handing the lines it just wrote to a consumer that waits on another CPU (docs/channel.md,
//! "Spinning", "Yielding", "Handing the lines over").

use std::sync::atomic::{fence, Ordering};

use super::layout::{R_CONS_CPU, R_HEAD, R_PROD_CPU, R_TAIL};
use super::raw::{current_cpu, demote, futex_wait};
use super::ring::{Ring, HDR};
use super::wait::{busy_wait, spinning_allowed, Waiting, SPIN};
use crate::error::Result;

/// A peer that answers within this long after a spin gave up counts as active (spin again).
const ACTIVE: std::time::Duration = std::time::Duration::from_millis(1);

impl Ring {
    /// Whether a consumer waits for this message on another CPU than `here`: when the consumers
    /// last ran elsewhere and had taken everything up to `before` (the tail before this message),
    /// as last looked at. Their line (CPU word and head) is read on every 64th publish only: a
    /// read on every publish would pull it away from them each time. (A stream whose consumer
    /// lags is left alone: there the producer writes the next message into the lines it just
    /// wrote, and moving them away would only slow it.)
    pub(super) fn consumer_waits(&self, here: u32, before: u64) -> bool {
        let n = self.publishes.load(Ordering::Relaxed);
        self.publishes.store(n.wrapping_add(1), Ordering::Relaxed);
        if n % 64 == 0 {
            let there = self.word32(R_CONS_CPU).load(Ordering::Relaxed);
            let head = self.word(R_HEAD).load(Ordering::Relaxed);
            self.consumer_waits
                .store(there != here && head >= before, Ordering::Relaxed);
        }
        self.consumer_waits.load(Ordering::Relaxed)
    }

    /// Pushes the lines a consumer on another CPU reads first (the tail, the message's header
    /// and the start of its payload) out of this CPU's private caches into the shared one: the
    /// consumer's miss is then served there, not by a snoop of this core (docs/channel.md,
    /// "Handing the lines over"). Hints only: nothing changes in memory.
    pub(super) fn hand_over(&self, at: u64, len: u64) {
        let pos = usize::try_from(at % self.cap).unwrap_or(0);
        // The header and up to 176 bytes of payload (three lines at most): what a small
        // message occupies; a large one's first lines only.
        let bytes = HDR + usize::try_from(len.min(176)).unwrap_or(0);
        if let Some(p) = self.region().ptr(self.data_base() + pos, bytes) {
            let into = p as usize % 64;
            let line = p.wrapping_sub(into);
            for i in 0..(into + bytes).div_ceil(64).min(3) {
                demote(line.wrapping_add(64 * i));
            }
        }
        demote(self.word(R_TAIL).as_ptr().cast::<u8>().cast_const());
    }

    /// Whether a busy wait (spin or yield) is likely to see the peer answer: always, unless the
    /// last 8 waits found it idle; then every 16th wait (to notice it becoming busy again).
    pub(super) fn busy_wait_pays(&self) -> bool {
        let misses = self.misses.load(Ordering::Relaxed);
        misses < 8 || misses % 16 == 0
    }

    /// Counts a busy wait that ended without an answer.
    pub(super) fn missed(&self) {
        let misses = self.misses.load(Ordering::Relaxed);
        self.misses
            .store(misses.saturating_add(1), Ordering::Relaxed);
    }

    /// Waits until the u64 at `off` is no longer `seen` (or a slice passed: the caller re-checks
    /// everything): spins briefly when that paid off lately, then sleeps on the futex, announcing
    /// itself in `sleepers` so that the other side wakes it.
    pub(super) fn wait_move(
        &self,
        off: usize,
        sleepers: usize,
        seen: u64,
        w: &mut Waiting<'_>,
    ) -> Result<()> {
        let word = self.word(off);
        let mut spun = None;
        // The other side's last CPU: spinning on the same CPU only delays it.
        let peer_cpu = self
            .word32(if off == R_TAIL {
                R_PROD_CPU
            } else {
                R_CONS_CPU
            })
            .load(Ordering::Relaxed);
        // A peer on this CPU cannot answer while we spin, but runs at once if we step aside.
        let share = peer_cpu == current_cpu();
        if w.may_busy_wait() && (share || spinning_allowed()) {
            if self.busy_wait_pays() {
                let start = std::time::Instant::now();
                if busy_wait(share, SPIN, || word.load(Ordering::Acquire) != seen) {
                    self.misses.store(0, Ordering::Relaxed);
                    return Ok(());
                }
                spun = Some(start);
            }
            self.missed();
        }
        let slice = w.next_slice()?;
        if let Err(e) = w.check_peer() {
            // The peer is gone; what it published before going is still delivered.
            return if word.load(Ordering::Acquire) == seen {
                Err(e)
            } else {
                Ok(())
            };
        }
        let count = self.word32(sleepers);
        count.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let now = word.load(Ordering::Acquire);
        if now == seen {
            #[allow(clippy::cast_possible_truncation)] // the low half, on purpose
            futex_wait(self.low(off), seen as u32, slice);
        }
        let _ = count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        // Nothing moved: the slice ended, or a signal (Ctrl-C) came; run the handlers.
        if word.load(Ordering::Acquire) == seen {
            w.interrupt.check()?;
        } else if spun.is_some_and(|t| t.elapsed() < ACTIVE) {
            // The peer answered soon after the spin gave up: it is active, keep spinning.
            self.misses.store(0, Ordering::Relaxed);
        }
        Ok(())
    }
}
