//! The receive buffer of a stream: bytes read ahead of the current message, and the
//! descriptors that came with them, tied to byte ranges. Pure bookkeeping, no I/O.

use std::os::fd::OwnedFd;

use crate::frame::{self, Header};

/// Size of the read-ahead buffer that small messages come through. Larger messages are read
/// straight into their destination: a 64 KiB message read through the buffer paid two extra
/// copies and was 7 % slower than a stdlib socket reading into a preallocated buffer.
pub(super) const RX_BUFFER: usize = 8 * 1024;

/// Descriptors that arrived with the bytes at absolute stream offsets `from..to`.
#[derive(Debug)]
struct PendingFds {
    from: u64,
    to: u64,
    fds: Vec<OwnedFd>,
}

/// Receive-side state of a stream: bytes read ahead of the current message, and descriptors
/// that arrived with them.
///
/// Which message descriptors belong to: the kernel stops a read right after the segment that
/// carries descriptors, and fastipc attaches them to the first segment of a frame. So the
/// descriptors of a read that covered `from..to` belong to the frame whose header starts in
/// that range and whose bytes reach `to` (no later frame can start inside the same segment).
#[derive(Debug, Default)]
pub struct RecvBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
    /// Absolute stream offset of `data[end]`: every byte ever read, through the buffer or past it.
    abs_end: u64,
    pending: Vec<PendingFds>,
    /// Descriptors of the message being received.
    claimed: Vec<OwnedFd>,
    /// A large message whose receive stopped part way (timeout, signal): the next receive
    /// continues it, so the stream never loses its place.
    partial: Option<Partial>,
}

/// The part of a large message received before its receive stopped.
#[derive(Debug)]
struct Partial {
    len: usize,
    data: Vec<u8>,
    fds: Vec<OwnedFd>,
}

/// What the buffer holds of the next frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Not a whole header yet: `have` bytes of one.
    NeedHeader {
        /// Bytes of the header buffered.
        have: usize,
    },
    /// A small frame still arriving: `have` of its `len` payload bytes are buffered.
    NeedPayload {
        /// The header's length.
        header: usize,
        /// The announced payload length.
        len: usize,
        /// Payload bytes buffered.
        have: usize,
    },
    /// A small frame whole in the buffer: take it with [`RecvBuf::take_small`].
    Small {
        /// The header's length.
        header: usize,
        /// The payload's length.
        len: usize,
    },
    /// A frame too large for the buffer: hand it over with [`RecvBuf::start_large`].
    Large {
        /// The header's length.
        header: usize,
        /// The announced payload length.
        len: u64,
    },
    /// A header no sender writes.
    Malformed(i32),
}

impl RecvBuf {
    /// The bytes read ahead and not yet taken.
    pub(super) fn buffered(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Absolute stream offset of the first buffered byte.
    pub(super) fn abs_start(&self) -> u64 {
        self.abs_end - (self.end - self.start) as u64
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes room for at least `want` more bytes at the end; returns the free tail.
    pub(super) fn space(&mut self, want: usize) -> &mut [u8] {
        if self.data.len() < RX_BUFFER {
            self.data.resize(RX_BUFFER, 0);
        }
        if self.data.len() - self.end < want && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.data[self.end..]
    }

    /// Records `n` bytes read into the free tail, and the descriptors that came with them.
    pub(super) fn filled(&mut self, n: usize, fds: Vec<OwnedFd>) {
        let from = self.abs_end;
        self.end += n;
        self.abs_end += n as u64;
        if !fds.is_empty() {
            self.pending.push(PendingFds {
                from,
                to: self.abs_end,
                fds,
            });
        }
    }

    /// Records `n` bytes of the current message read past the buffer, straight into its
    /// destination, and the descriptors that came with them (the message's own: such reads
    /// stay inside its frame).
    pub(super) fn read_past(&mut self, n: usize, fds: Vec<OwnedFd>) {
        self.abs_end += n as u64;
        self.claimed.extend(fds);
    }

    /// Where the next frame stands; `limit` is the largest small payload (the rest is large).
    pub(super) fn next(&self, limit: usize) -> Next {
        let buffered = self.buffered();
        match frame::decode_header(buffered) {
            Header::NeedMore(_) => Next::NeedHeader {
                have: buffered.len(),
            },
            Header::Malformed(n) => Next::Malformed(n),
            Header::Complete { header, len } => match usize::try_from(len) {
                Ok(len) if len <= limit => {
                    let have = buffered.len() - header;
                    if have >= len {
                        Next::Small { header, len }
                    } else {
                        Next::NeedPayload { header, len, have }
                    }
                }
                _ => Next::Large { header, len },
            },
        }
    }

    /// Takes the small frame whole at the front of the buffer ([`Next::Small`]): its
    /// descriptors become the claimed ones, and its payload is handed to `take`.
    pub(super) fn take_small<T>(
        &mut self,
        header: usize,
        len: usize,
        take: impl FnOnce(&[u8]) -> T,
    ) -> T {
        let at = self.abs_start();
        self.claim(at, (header + len) as u64);
        let out = take(&self.buffered()[header..header + len]);
        self.consume(header + len);
        out
    }

    /// Starts a large frame at the front of the buffer ([`Next::Large`]): consumes its header
    /// and claims its descriptors; its payload is then taken with [`RecvBuf::take_into`] and
    /// read past the buffer.
    pub(super) fn start_large(&mut self, header: usize, len: u64) {
        let at = self.abs_start();
        self.consume(header);
        // A peer may announce up to 2^64 - 1 bytes (a caller may allow that many): saturate.
        self.claim(at, (header as u64).saturating_add(len));
    }

    /// Takes up to `dst.len()` buffered bytes into `dst`; returns how many.
    pub(super) fn take_into(&mut self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.end - self.start);
        dst[..n].copy_from_slice(&self.data[self.start..self.start + n]);
        self.consume(n);
        n
    }

    /// Takes up to `dst.len()` buffered raw bytes, with every descriptor that arrived with bytes
    /// up to the last one taken.
    pub(super) fn take_raw(&mut self, dst: &mut [u8]) -> usize {
        let n = self.take_into(dst);
        let upto = self.abs_start();
        self.claim_before(upto);
        n
    }

    /// Claims the descriptors of the frame at `header..header + total`; closes those of bytes
    /// before it that nobody claimed.
    fn claim(&mut self, header: u64, total: u64) {
        if self.pending.is_empty() {
            return;
        }
        let mut keep = Vec::with_capacity(self.pending.len());
        for entry in self.pending.drain(..) {
            if entry.to <= header {
                drop(entry.fds);
            } else if entry.from <= header && header.saturating_add(total) >= entry.to {
                self.claimed.extend(entry.fds);
            } else {
                keep.push(entry);
            }
        }
        self.pending = keep;
    }

    /// Every pending descriptor that arrived with bytes before absolute offset `upto`.
    fn claim_before(&mut self, upto: u64) {
        if self.pending.is_empty() {
            return;
        }
        let mut keep = Vec::with_capacity(self.pending.len());
        for entry in self.pending.drain(..) {
            if entry.from < upto {
                self.claimed.extend(entry.fds);
            } else {
                keep.push(entry);
            }
        }
        self.pending = keep;
    }

    /// The descriptors of the message just received (the caller's now).
    pub(super) fn take_claimed(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.claimed)
    }

    /// Closes the claimed descriptors nobody took (a new receive starts).
    pub(super) fn drop_claimed(&mut self) {
        self.claimed.clear();
    }

    /// Adds descriptors to the claimed ones.
    pub(super) fn add_claimed(&mut self, fds: Vec<OwnedFd>) {
        if self.claimed.is_empty() {
            self.claimed = fds;
        } else {
            self.claimed.extend(fds);
        }
    }

    /// The whole buffer, for one packet of a seqpacket socket (which never reads ahead).
    pub(super) fn packet_space(&mut self) -> &mut [u8] {
        debug_assert!(self.buffered().is_empty());
        self.space(RX_BUFFER);
        &mut self.data[..]
    }

    /// Keeps the first `got` bytes of a large message of `dst.len()` bytes, and its claimed
    /// descriptors, for the next receive to continue.
    pub(super) fn keep_partial(&mut self, dst: &[u8], got: usize) {
        self.partial = Some(Partial {
            len: dst.len(),
            data: dst[..got].to_vec(),
            fds: std::mem::take(&mut self.claimed),
        });
    }

    /// A large message whose receive stopped part way: its length, and its descriptors become
    /// the claimed ones again. Its bytes are given back by [`RecvBuf::resume_into`].
    pub(super) fn resume(&mut self) -> Option<usize> {
        let partial = self.partial.as_mut()?;
        let fds = std::mem::take(&mut partial.fds);
        let len = partial.len;
        self.claimed = fds;
        Some(len)
    }

    /// Copies the bytes of a resumed message into `dst` (its whole length), or the buffered
    /// ones when none was resumed; returns how many.
    pub(super) fn resume_into(&mut self, dst: &mut [u8]) -> usize {
        match self.partial.take() {
            Some(partial) => {
                dst[..partial.data.len()].copy_from_slice(&partial.data);
                partial.data.len()
            }
            None => self.take_into(dst),
        }
    }
}

#[cfg(test)]
mod tests;
