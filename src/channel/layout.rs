//! The layout of a channel segment: offsets, sizes, the segment header and its validation.
//!
//! ```text
//! segment header, offset 0 (128 bytes)
//!   0   u64  magic "FIPCRING" (little-endian bytes), written last by the creator
//!   8   u32  layout version (LAYOUT_VERSION)
//!   12  u32  kind: 1 queue, 2 joinable queue, 3 channel
//!   16  u64  capacity: data bytes of each ring (a multiple of 128)
//!   24  u64  maxsize: items a queue holds at most (0: no limit)
//!   32  u32  number of rings (1 for a queue, 2 for a channel)
//! shared state, offset 128 (128 bytes)
//!   128 u64  unfinished tasks (joinable queue)
//!   136 u32  join sleepers
//!   144 u32  pid of channel end 0 (named channels), 148 u32 pid of end 1
//!   152 u32  end 0 closed (named channels), 156 u32 end 1 closed
//! ring i at 256 + i * (RING_HEADER + capacity), each line 128 bytes:
//!   +0   u64 producers' lock (see `channel::lock`): 0 free, else the owner's pid in bits
//!        0-30, bit 31 while a waiter sleeps, the low 32 bits of its start time in bits 32-63
//!   +128 u64 consumers' lock, the same
//!   +256 u64 tail (bytes ever written)   +264 u64 messages ever written
//!   +272 u32 CPU of the last publish (a hint: spin only for a peer on another CPU)
//!   +384 u64 head (bytes ever consumed)  +392 u64 messages ever consumed
//!   +400 u32 CPU of the last release
//!   +512 u32 consumers asleep (waiting for the tail to move)
//!   +640 u32 producers asleep (waiting for the head to move)
//!   +768 the data: capacity bytes
//! message, at an 8-aligned position of the data: u32 flags, u32 length, u64 sequence number,
//!   then the payload padded to 8; a WRAP flag alone (8 bytes suffice) sends readers to offset 0.
//! ```

use crate::error::{Error, Result};

/// The segment's magic, "FIPCRING" as little-endian bytes.
pub const MAGIC: u64 = u64::from_le_bytes(*b"FIPCRING");
/// The layout version this build reads and writes.
pub const LAYOUT_VERSION: u32 = 2;

/// Offsets of the segment header.
pub const OFF_MAGIC: usize = 0;
/// Layout version.
pub const OFF_VERSION: usize = 8;
/// Kind.
pub const OFF_KIND: usize = 12;
/// Capacity.
pub const OFF_CAPACITY: usize = 16;
/// Maxsize.
pub const OFF_MAXSIZE: usize = 24;
/// Rings.
pub const OFF_RINGS: usize = 32;
/// Unfinished tasks.
pub const OFF_UNFINISHED: usize = 128;
/// Join sleepers.
pub const OFF_JOIN_SLEEPERS: usize = 136;
/// Pid of channel end `i` at `OFF_PID + 4 * i`.
pub const OFF_PID: usize = 144;
/// Closed flag of channel end `i` at `OFF_CLOSED + 4 * i`.
pub const OFF_CLOSED: usize = 152;
/// Where the first ring starts.
pub const RINGS_START: usize = 256;

/// Ring header offsets, from the ring's start: the producers' lock word.
pub const R_PROD_LOCK: usize = 0;
/// Consumers' lock word.
pub const R_CONS_LOCK: usize = 128;
/// Tail.
pub const R_TAIL: usize = 256;
/// Messages written.
pub const R_PUT_COUNT: usize = 264;
/// The CPU the last producer published from (a spinning hint).
pub const R_PROD_CPU: usize = 272;
/// Head.
pub const R_HEAD: usize = 384;
/// Messages consumed.
pub const R_GET_COUNT: usize = 392;
/// The CPU the last consumer freed a message from (a spinning hint).
pub const R_CONS_CPU: usize = 400;
/// Consumers asleep.
pub const R_DATA_SLEEPERS: usize = 512;
/// Producers asleep.
pub const R_SPACE_SLEEPERS: usize = 640;
/// Size of a ring's header; the data follows.
pub const RING_HEADER: usize = 768;

/// Message header size.
pub const MSG_HEADER: u64 = 16;
/// Flag: skip to the start of the ring.
pub const F_WRAP: u32 = 1;
/// Flag: the payload is a pickle with out-of-band buffers (see the bindings).
pub const F_PICKLED: u32 = 2;
/// Flag: the payload names a segment of its own holding the message.
pub const F_BIG: u32 = 4;
/// Every flag this version knows.
pub const F_KNOWN: u32 = F_WRAP | F_PICKLED | F_BIG;

/// Smallest and largest ring capacity.
pub const MIN_CAPACITY: u64 = 1024;
/// Largest: the futex word is a tail's low 32 bits, which must change on every publish.
pub const MAX_CAPACITY: u64 = 1 << 31;

/// What a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A queue.
    Queue = 1,
    /// A joinable queue.
    JoinableQueue = 2,
    /// A duplex channel.
    Channel = 3,
}

impl Kind {
    fn from_raw(raw: u32) -> Option<Kind> {
        match raw {
            1 => Some(Kind::Queue),
            2 => Some(Kind::JoinableQueue),
            3 => Some(Kind::Channel),
            _ => None,
        }
    }

    /// Number of rings.
    pub fn rings(self) -> usize {
        if self == Kind::Channel {
            2
        } else {
            1
        }
    }
}

/// A capacity the caller asked for, rounded up to a multiple of 128 and checked.
pub fn capacity_arg(capacity: u64) -> Result<u64> {
    if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        return Err(Error::Invalid(format!(
            "capacity must be from {MIN_CAPACITY} to {MAX_CAPACITY} bytes, not {capacity}"
        )));
    }
    Ok(capacity.div_ceil(128) * 128)
}

/// Bytes of a segment of `kind` with rings of `capacity` bytes.
pub fn segment_size(kind: Kind, capacity: u64) -> u64 {
    RINGS_START as u64 + kind.rings() as u64 * (RING_HEADER as u64 + capacity)
}

/// Offset of ring `i`.
pub fn ring_offset(i: usize, capacity: u64) -> usize {
    // capacity <= 2^31 and i <= 1: no overflow.
    RINGS_START + i * (RING_HEADER + usize::try_from(capacity).unwrap_or(0))
}

/// The largest payload a ring of `capacity` bytes carries inline: half the ring, so that a
/// message always fits once the ring is empty, wherever the wrap point lies.
pub fn max_inline(capacity: u64) -> u64 {
    capacity / 2 - MSG_HEADER
}

/// Bytes a message of `len` payload bytes takes in the ring.
pub fn footprint(len: u64) -> u64 {
    MSG_HEADER + len.div_ceil(8) * 8
}

/// The fields of a segment header, copied out and checked.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// Kind.
    pub kind: Kind,
    /// Ring capacity.
    pub capacity: u64,
    /// Maxsize.
    pub maxsize: u64,
}

/// Checks a header read from a segment of `len` bytes.
pub fn check_header(
    magic: u64,
    version: u32,
    kind: u32,
    capacity: u64,
    maxsize: u64,
    len: usize,
) -> Result<Header> {
    if magic != MAGIC {
        return Err(Error::Corrupt {
            what: "not a fastipc queue or channel (no magic)".into(),
        });
    }
    if version != LAYOUT_VERSION {
        return Err(Error::Corrupt {
            what: format!("layout version {version}, expected {LAYOUT_VERSION}"),
        });
    }
    let kind = Kind::from_raw(kind).ok_or_else(|| Error::Corrupt {
        what: format!("unknown segment kind {kind}"),
    })?;
    if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity)
        || capacity % 128 != 0
        || segment_size(kind, capacity) > len as u64
    {
        return Err(Error::Corrupt {
            what: format!("capacity {capacity} does not fit a segment of {len} bytes"),
        });
    }
    Ok(Header {
        kind,
        capacity,
        maxsize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert!(capacity_arg(1000).is_err());
        assert_eq!(capacity_arg(1025).unwrap(), 1152);
        assert_eq!(segment_size(Kind::Channel, 1024), 256 + 2 * (768 + 1024));
        assert_eq!(ring_offset(1, 1024), 256 + 768 + 1024);
        assert_eq!(max_inline(1024), 496);
        assert_eq!(footprint(0), 16);
        assert_eq!(footprint(1), 24);
        assert!(check_header(MAGIC, 1, 1, 1024, 0, 1 << 20).is_err());
        assert!(check_header(MAGIC, 2, 1, 1024, 0, 100).is_err());
        assert!(check_header(MAGIC, 2, 3, 1024, 0, 1 << 20).is_ok());
    }
}
