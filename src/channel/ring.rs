//! One ring of a segment: many producers and many consumers, each side serialised by a lock of
//! its own ([`super::lock`]: the owner's pid in a futex word), so that a process killed anywhere
//! never publishes half a message and never wedges the ring (the next taker finds the owner dead,
//! takes the lock over and repairs).
//!
//! A producer writes the message, then publishes it with one release store of the tail; a
//! consumer reads it, then frees it with one release store of the head. Everything read from the
//! segment is validated before use: a corrupt index or length is [`Error::Corrupt`].

use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::layout::{
    footprint, max_inline, F_KNOWN, F_WRAP, MSG_HEADER, RING_HEADER, R_CONS_CPU, R_CONS_LOCK,
    R_DATA_SLEEPERS, R_GET_COUNT, R_HEAD, R_PROD_CPU, R_PROD_LOCK, R_PUT_COUNT, R_SPACE_SLEEPERS,
    R_TAIL,
};
/// The message header's size, as an offset.
pub(super) const HDR: usize = 16;

/// A message at least this large, sent into an empty ring, starts at the ring's start.
const EARLY_WRAP: u64 = 64 * 1024;

use super::lock::{self, LockWord, Taken};
use super::raw::{current_cpu, futex_wake, Region};
use super::wait::Waiting;
use crate::error::{Error, Result};

/// A message reserved by a producer (the producers' lock is held until it is published or
/// dropped with [`Ring::abort`]).
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    tail: u64,
    skip: u64,
    /// Where the payload goes (an offset in the segment).
    pub data: usize,
    /// Bytes reserved for the payload.
    pub len: usize,
}

/// A message found by a consumer (the consumers' lock is held until [`Ring::release`] or
/// [`Ring::keep`]).
#[derive(Debug, Clone, Copy)]
pub struct Msg {
    end: u64,
    seq: u64,
    /// Where the payload lies (an offset in the segment).
    pub data: usize,
    /// Payload length.
    pub len: usize,
    /// The message's flags.
    pub flags: u32,
}

/// One direction of a segment.
pub struct Ring {
    region: Region,
    base: usize,
    pub(super) cap: u64,
    maxsize: u64,
    unfinished: Option<usize>,
    pub(super) misses: AtomicU32,
    /// The head as this process last read it: a lower bound of the real one (heads only grow),
    /// so a producer reads the consumers' cache line only when this one says the ring is full.
    seen_head: AtomicU64,
    /// The tail as this process last read it: a lower bound of the real one, so a consumer
    /// reads the producers' cache line only when it caught up with this one.
    seen_tail: AtomicU64,
    /// Publishes by this process (counts when to look at the consumers' CPU again).
    pub(super) publishes: AtomicU32,
    /// Whether a consumer on another CPU waited for the messages, as last looked at.
    pub(super) consumer_waits: AtomicBool,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("base", &self.base)
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

fn corrupt(what: impl Into<String>) -> Error {
    Error::Corrupt { what: what.into() }
}

impl Ring {
    /// The ring at `base` of `region`, of `cap` data bytes (a fresh segment's zeroes are a
    /// valid empty ring: both locks free).
    pub(crate) fn new(
        region: Region,
        base: usize,
        cap: u64,
        maxsize: u64,
        unfinished: Option<usize>,
    ) -> Result<Ring> {
        if base % 128 != 0 {
            return Err(corrupt("ring misaligned"));
        }
        let end = base + RING_HEADER + usize::try_from(cap).unwrap_or(usize::MAX);
        if end > region.len() {
            return Err(corrupt("ring out of range"));
        }
        Ok(Ring {
            region,
            base,
            cap,
            maxsize,
            unfinished,
            misses: AtomicU32::new(0),
            seen_head: AtomicU64::new(0),
            seen_tail: AtomicU64::new(0),
            publishes: AtomicU32::new(0),
            consumer_waits: AtomicBool::new(false),
        })
    }

    pub(super) fn word(&self, off: usize) -> &AtomicU64 {
        // In range: checked against the mapping in `new`.
        self.region
            .u64_at(self.base + off)
            .expect("ring header in range")
    }

    pub(super) fn word32(&self, off: usize) -> &AtomicU32 {
        self.region
            .u32_at(self.base + off)
            .expect("ring header in range")
    }

    /// The futex word of a u64 index: its low half, which changes on every move (capacity is
    /// below 2^32 and every move is under one capacity).
    pub(super) fn low(&self, off: usize) -> &AtomicU32 {
        let half = if cfg!(target_endian = "little") { 0 } else { 4 };
        self.word32(off + half)
    }

    pub(super) fn data_base(&self) -> usize {
        self.base + RING_HEADER
    }

    /// Data bytes.
    pub fn capacity(&self) -> u64 {
        self.cap
    }

    /// The largest payload carried inline.
    pub fn max_inline(&self) -> usize {
        usize::try_from(max_inline(self.cap)).unwrap_or(0)
    }

    /// The segment.
    pub fn region(&self) -> &Region {
        &self.region
    }

    fn indices(&self) -> Result<(u64, u64)> {
        let tail = self.word(R_TAIL).load(Ordering::Acquire);
        let head = self.word(R_HEAD).load(Ordering::Acquire);
        if head > tail || tail - head > self.cap || head % 8 != 0 || tail % 8 != 0 {
            return Err(corrupt(format!("head {head} and tail {tail} out of order")));
        }
        Ok((head, tail))
    }

    /// Messages in the ring now.
    pub fn count(&self) -> u64 {
        let put = self.word(R_PUT_COUNT).load(Ordering::Acquire);
        let got = self.word(R_GET_COUNT).load(Ordering::Acquire);
        put.saturating_sub(got)
    }

    /// Whether a message is waiting (no lock taken).
    pub fn has_data(&self) -> bool {
        self.word(R_TAIL).load(Ordering::Acquire) != self.word(R_HEAD).load(Ordering::Acquire)
    }

    /// Whether a message may be waiting (no lock taken), reading the producers' line only when
    /// this process's last look at the tail shows nothing left below it: a consumer that keeps
    /// reading that line while a producer writes it slows both.
    pub fn may_have_data(&self) -> bool {
        let head = self.word(R_HEAD).load(Ordering::Acquire);
        if head < self.seen_tail.load(Ordering::Relaxed) {
            return true;
        }
        let tail = self.word(R_TAIL).load(Ordering::Acquire);
        // (read with acquire: what lies below it is published, as `try_msg` expects)
        self.seen_tail.store(tail, Ordering::Relaxed);
        tail != head
    }

    /// Whether a message of `len` bytes would fit now (no lock taken).
    pub fn has_space(&self, len: u64) -> bool {
        let Ok((head, tail)) = self.indices() else {
            return true;
        };
        let fits = (tail - head) + 2 * footprint(len) <= self.cap;
        fits && (self.maxsize == 0 || self.count() < self.maxsize)
    }

    /// The consumers' (`consumer`) or producers' lock.
    fn lock_word(&self, consumer: bool) -> LockWord<'_> {
        let off = if consumer { R_CONS_LOCK } else { R_PROD_LOCK };
        LockWord {
            word: self.word(off),
            futex: self.low(off),
        }
    }

    fn lock(&self, consumer: bool, w: &mut Waiting<'_>) -> Result<()> {
        if lock::lock(self.lock_word(consumer), w)? == Taken::FromDead {
            if consumer {
                self.repair_consumer();
            } else {
                self.repair_producer();
            }
        }
        Ok(())
    }

    fn unlock(&self, consumer: bool) -> bool {
        lock::unlock(self.lock_word(consumer))
    }

    /// Whether this process holds the consumers' (`consumer`) or producers' lock.
    fn holds(&self, consumer: bool) -> bool {
        lock::held(self.lock_word(consumer))
    }

    /// A dead producer held the lock: the tail is whatever it last published (a message is
    /// published by one store), so only the message count may lag; recount from the messages.
    fn repair_producer(&self) {
        self.word32(R_SPACE_SLEEPERS).store(0, Ordering::Release);
        let Ok((mut head, tail)) = self.indices() else {
            return;
        };
        let mut last = None;
        while head < tail {
            match self.parse(head, tail) {
                Ok((next, Some(msg))) => {
                    last = Some(msg.seq);
                    head = next;
                }
                Ok((next, None)) => head = next,
                Err(_) => return,
            }
        }
        let put = self.word(R_PUT_COUNT);
        let got = self.word(R_GET_COUNT).load(Ordering::Acquire);
        let fixed = last.map_or(got.max(put.load(Ordering::Acquire)), |s| s + 1);
        put.store(fixed, Ordering::Release);
    }

    /// A dead consumer held the lock: the head is what it last freed; it may have announced a
    /// sleep it never ended.
    fn repair_consumer(&self) {
        self.word32(R_DATA_SLEEPERS).store(0, Ordering::Release);
    }

    /// Ends an operation that failed, or that ran on a segment found shrunk under this process
    /// (then that error wins, but for an interrupt: whatever the zero pages made the operation
    /// conclude means nothing), releasing the consumers' (`consumer`) or producers' lock.
    #[cold]
    fn failed<T>(&self, consumer: bool, result: Result<T>) -> Error {
        let _ = self.unlock(consumer);
        match (self.region.intact(), result) {
            // (a signal's exception is not lost: the next call reports the truncation)
            (_, Err(Error::Interrupted)) => Error::Interrupted,
            (Err(truncated), _) => truncated,
            (Ok(()), Err(e)) => e,
            (Ok(()), Ok(_)) => corrupt("an operation ended without its result"),
        }
    }

    /// Reserves `len` payload bytes (at most [`Ring::max_inline`]), waiting for space as `w` says.
    /// The producers' lock stays held: end with [`Ring::publish`] or [`Ring::abort`].
    pub fn reserve(&self, len: usize, w: &mut Waiting<'_>) -> Result<Slot> {
        if len > self.max_inline() {
            return Err(Error::MessageTooLarge {
                size: len as u64,
                limit: max_inline(self.cap),
                what: w.what.to_string(),
            });
        }
        self.lock(false, w)?;
        loop {
            let result = self.try_slot(len as u64).and_then(|slot| {
                if slot.is_some() {
                    return Ok(slot);
                }
                let head = self.word(R_HEAD).load(Ordering::Acquire);
                self.wait_move(R_HEAD, R_SPACE_SLEEPERS, head, w)
                    .map(|()| None)
            });
            match result {
                // (publishing checks the segment)
                Ok(Some(slot)) => return Ok(slot),
                Ok(None) if self.region.whole() => {}
                result => return Err(self.failed(false, result)),
            }
        }
    }

    fn try_slot(&self, len: u64) -> Result<Option<Slot>> {
        let tail = self.word(R_TAIL).load(Ordering::Acquire);
        let need = footprint(len);
        let pos = tail % self.cap;
        let to_end = self.cap - pos;
        let skip = if need > to_end { to_end } else { 0 };
        let cached = self.seen_head.load(Ordering::Relaxed);
        let fits = |head: u64| head <= tail && (tail - head) + skip + need <= self.cap;
        if !fits(cached) || tail % 8 != 0 {
            let (head, tail_again) = self.indices()?;
            if tail_again != tail {
                return Err(corrupt("the tail moved under the producers' lock"));
            }
            self.seen_head.store(head, Ordering::Relaxed);
            if !fits(head) {
                return Ok(None);
            }
        }
        if self.maxsize > 0 && self.count() >= self.maxsize {
            return Ok(None);
        }
        // (it fits before where the ring is now: `need <= pos`, and nothing is in use)
        let skip = if skip == 0 && need >= EARLY_WRAP && need <= pos && self.drained(tail) {
            // An empty ring: a large message goes to the start, where the last one was and
            // its cache lines still are, rather than on into colder memory.
            to_end
        } else {
            skip
        };
        let at = usize::try_from((tail + skip) % self.cap).unwrap_or(0);
        Ok(Some(Slot {
            tail,
            skip,
            data: self.data_base() + at + HDR,
            len: usize::try_from(len).unwrap_or(0),
        }))
    }

    /// Whether every message up to `tail` was consumed (a fresh read of the head).
    fn drained(&self, tail: u64) -> bool {
        let head = self.word(R_HEAD).load(Ordering::Acquire);
        self.seen_head.store(head.min(tail), Ordering::Relaxed);
        head == tail
    }

    /// Copies `src` into the slot's payload at `offset`.
    pub fn write(&self, slot: &Slot, offset: usize, src: &[u8]) -> Result<()> {
        if offset
            .checked_add(src.len())
            .is_none_or(|end| end > slot.len)
        {
            return Err(Error::Invalid("write past the reserved bytes".into()));
        }
        if !self.region.write(slot.data + offset, src) {
            return Err(corrupt("slot out of range"));
        }
        Ok(())
    }

    fn write_header(&self, at: u64, flags: u32, len: u32, seq: u64) {
        let mut hdr = [0u8; 16];
        hdr[..4].copy_from_slice(&flags.to_le_bytes());
        hdr[4..8].copy_from_slice(&len.to_le_bytes());
        hdr[8..].copy_from_slice(&seq.to_le_bytes());
        let pos = usize::try_from(at % self.cap).unwrap_or(0);
        let n = if flags & F_WRAP != 0 { 8 } else { 16 };
        self.region.write(self.data_base() + pos, &hdr[..n]);
    }

    /// Publishes the first `len` bytes of the slot (at most its length) with `flags`, wakes a
    /// sleeping consumer if one announced itself, and lets the next producer in. A corrupt
    /// channel error, and nothing published, when this process no longer holds the producers'
    /// lock (a forked child's copy of a reservation, or a lock word a peer overwrote).
    pub fn publish(&self, slot: Slot, len: usize, flags: u32) -> Result<()> {
        if !self.holds(false) {
            return Err(corrupt("the producers' lock is not this process's"));
        }
        if !self.region.whole() {
            return Err(self.failed(false, Ok(())));
        }
        let len = len.min(slot.len) as u64;
        if slot.skip > 0 {
            self.write_header(slot.tail, F_WRAP, 0, 0);
        }
        let put = self.word(R_PUT_COUNT);
        let seq = put.load(Ordering::Relaxed);
        #[allow(clippy::cast_possible_truncation)] // len <= max_inline < 2^31
        self.write_header(slot.tail + slot.skip, flags & !F_WRAP, len as u32, seq);
        self.word(R_TAIL)
            .store(slot.tail + slot.skip + footprint(len), Ordering::Release);
        if let Some(off) = self.unfinished {
            if let Some(word) = self.region.u64_at(off) {
                word.fetch_add(1, Ordering::AcqRel);
            }
        }
        put.store(seq + 1, Ordering::Release);
        let here = current_cpu();
        self.word32(R_PROD_CPU).store(here, Ordering::Relaxed);
        if self.consumer_waits(here, slot.tail) {
            self.hand_over(slot.tail + slot.skip, len);
        }
        fence(Ordering::SeqCst);
        if self.word32(R_DATA_SLEEPERS).load(Ordering::Relaxed) != 0 {
            futex_wake(self.low(R_TAIL));
        }
        let _ = self.unlock(false);
        Ok(())
    }

    /// Drops a reservation: nothing is published.
    pub fn abort(&self, _slot: Slot) {
        let _ = self.unlock(false);
    }

    /// Waits for a message as `w` says. The consumers' lock stays held: end with
    /// [`Ring::release`] (consumed) or [`Ring::keep`] (left for the next reader).
    pub fn acquire(&self, w: &mut Waiting<'_>) -> Result<Msg> {
        self.lock(true, w)?;
        loop {
            let result = self.try_msg().and_then(|msg| {
                if msg.is_some() {
                    return Ok(msg);
                }
                let tail = self.word(R_TAIL).load(Ordering::Acquire);
                self.wait_move(R_TAIL, R_DATA_SLEEPERS, tail, w)
                    .map(|()| None)
            });
            match result {
                Ok(Some(msg)) if self.region.whole() => return Ok(msg),
                Ok(None) if self.region.whole() => {}
                result => return Err(self.failed(true, result)),
            }
        }
    }

    fn try_msg(&self) -> Result<Option<Msg>> {
        let head = self.word(R_HEAD).load(Ordering::Acquire);
        let cached = self.seen_tail.load(Ordering::Relaxed);
        // Messages below a tail read before (with acquire) are published and visible.
        if head < cached && cached - head <= self.cap && head % 8 == 0 {
            if let Some(msg) = self.scan(head, cached)? {
                return Ok(Some(msg));
            }
        }
        let (head, tail) = self.indices()?;
        self.seen_tail.store(tail, Ordering::Relaxed);
        self.scan(head, tail)
    }

    fn scan(&self, mut head: u64, tail: u64) -> Result<Option<Msg>> {
        while head < tail {
            let (next, msg) = self.parse(head, tail)?;
            if msg.is_some() {
                return Ok(msg);
            }
            head = next;
        }
        Ok(None)
    }

    /// The record at `head` (below `tail`): where the next one starts, and the message (none for
    /// a wrap marker). Copies the header out before checking it.
    fn parse(&self, head: u64, tail: u64) -> Result<(u64, Option<Msg>)> {
        let pos = head % self.cap;
        let to_end = self.cap - pos;
        let at = self.data_base() + usize::try_from(pos).unwrap_or(0);
        let mut hdr = [0u8; 16];
        let n = if to_end >= MSG_HEADER { 16 } else { 8 };
        if !self.region.read(at, &mut hdr[..n]) {
            return Err(corrupt("message header out of range"));
        }
        let flags = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let len = u64::from(u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]));
        if flags & !F_KNOWN != 0 {
            return Err(corrupt(format!(
                "unknown message flags {flags:#x} at {head}"
            )));
        }
        if flags & F_WRAP != 0 {
            let next = head + to_end;
            if next > tail {
                return Err(corrupt(format!("wrap marker past the tail at {head}")));
            }
            return Ok((next, None));
        }
        let size = footprint(len);
        if n < 16 || len > max_inline(self.cap) || size > to_end || head + size > tail {
            return Err(corrupt(format!(
                "message of {len} bytes at {head} out of bounds"
            )));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&hdr[8..]);
        let msg = Msg {
            end: head + size,
            seq: u64::from_le_bytes(seq),
            data: at + HDR,
            len: usize::try_from(len).unwrap_or(0),
            flags,
        };
        Ok((head + size, Some(msg)))
    }

    /// Copies the message's bytes from `offset` into `dst`.
    pub fn read(&self, msg: &Msg, offset: usize, dst: &mut [u8]) -> Result<()> {
        if offset
            .checked_add(dst.len())
            .is_none_or(|end| end > msg.len)
            || !self.region.read(msg.data + offset, dst)
        {
            return Err(corrupt("read past the message"));
        }
        if !self.region.whole() {
            return self.region.intact();
        }
        Ok(())
    }

    /// Frees the message's space, wakes a producer waiting for it, lets the next consumer in.
    /// Nothing happens when this process no longer holds the consumers' lock (a forked child's
    /// copy of a view, or a lock word a peer overwrote): the message stays for the lock's owner.
    pub fn release(&self, msg: Msg) {
        if !self.holds(true) {
            return;
        }
        self.word(R_HEAD).store(msg.end, Ordering::Release);
        self.word(R_GET_COUNT)
            .store(msg.seq.saturating_add(1), Ordering::Release);
        self.word32(R_CONS_CPU)
            .store(current_cpu(), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.word32(R_SPACE_SLEEPERS).load(Ordering::Relaxed) != 0 {
            futex_wake(self.low(R_HEAD));
        }
        let _ = self.unlock(true);
    }

    /// Leaves the message in the ring for the next consumer.
    pub fn keep(&self, _msg: Msg) {
        let _ = self.unlock(true);
    }
}
