//! A door into the receive buffer for the fuzz targets in `fuzz/` (the `fuzzing` feature): the
//! crate-private methods of [`RecvBuf`] as public ones, and nothing more. Not an API.

use std::os::fd::OwnedFd;

use super::recvbuf::{Next, RecvBuf};

/// [`RecvBuf`] with its methods public.
#[derive(Debug, Default)]
pub struct FuzzRecvBuf(RecvBuf);

/// What the buffer holds of the next frame (the crate's `Next`).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
#[allow(missing_docs)]
pub enum Step {
    NeedHeader {
        have: usize,
    },
    NeedPayload {
        header: usize,
        len: usize,
        have: usize,
    },
    Small {
        header: usize,
        len: usize,
    },
    Large {
        header: usize,
        len: u64,
    },
    Malformed(i32),
}

/// The read-ahead buffer's size.
pub const RX_BUFFER: usize = super::recvbuf::RX_BUFFER;

#[allow(missing_docs)]
impl FuzzRecvBuf {
    pub fn buffered(&self) -> &[u8] {
        self.0.buffered()
    }
    pub fn abs_start(&self) -> u64 {
        self.0.abs_start()
    }
    /// One read as the reader makes it: room for at least `want` more bytes, then `read` fills
    /// part of the free tail and says how much, and which descriptors came with it.
    pub fn fill_with(
        &mut self,
        want: usize,
        read: impl FnOnce(&mut [u8]) -> (usize, Vec<OwnedFd>),
    ) -> usize {
        let (n, fds) = read(self.0.space(want));
        self.0.filled(n, fds);
        n
    }
    pub fn read_past(&mut self, n: usize, fds: Vec<OwnedFd>) {
        self.0.read_past(n, fds);
    }
    pub fn next(&self, limit: usize) -> Step {
        match self.0.next(limit) {
            Next::NeedHeader { have } => Step::NeedHeader { have },
            Next::NeedPayload { header, len, have } => Step::NeedPayload { header, len, have },
            Next::Small { header, len } => Step::Small { header, len },
            Next::Large { header, len } => Step::Large { header, len },
            Next::Malformed(n) => Step::Malformed(n),
        }
    }
    pub fn take_small(&mut self, header: usize, len: usize) -> Vec<u8> {
        self.0.take_small(header, len, <[u8]>::to_vec)
    }
    pub fn start_large(&mut self, header: usize, len: u64) {
        self.0.start_large(header, len);
    }
    pub fn take_into(&mut self, dst: &mut [u8]) -> usize {
        self.0.take_into(dst)
    }
    pub fn take_raw(&mut self, dst: &mut [u8]) -> usize {
        self.0.take_raw(dst)
    }
    pub fn take_claimed(&mut self) -> Vec<OwnedFd> {
        self.0.take_claimed()
    }
    pub fn drop_claimed(&mut self) {
        self.0.drop_claimed();
    }
    pub fn keep_partial(&mut self, dst: &[u8], got: usize) {
        self.0.keep_partial(dst, got);
    }
    pub fn resume(&mut self) -> Option<usize> {
        self.0.resume()
    }
    pub fn resume_into(&mut self, dst: &mut [u8]) -> usize {
        self.0.resume_into(dst)
    }
}
