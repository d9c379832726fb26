//! The receive side of a [`Stream`]: framed messages, large payloads, raw bytes.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::MutexGuard;
use std::time::Duration;

use rustix::net::RecvFlags;

use crate::error::{Error, Result};
use crate::frame;
use crate::wait::{Deadline, Interrupt, Ready, Wait, SLICE};

use super::ancillary::{recv_ancillary, Ancillary};
use super::options::recv_flags;
use super::recvbuf::{Next, RecvBuf, RX_BUFFER};
use super::stream::{Incoming, Stream};
use super::Kind;

/// One `recvmsg` (a `recv` over TCP) on `stream` into `dst` (`extra`: peek flags), bounded by `wait`: the bytes and
/// what came with them.
pub(super) fn recv_into(
    stream: &Stream,
    dst: &mut [u8],
    extra: RecvFlags,
    wait: &mut Wait<'_>,
) -> Result<(usize, Ancillary)> {
    let mut anc = Ancillary::default();
    let (n, _) = wait.run(
        stream.fd.as_fd(),
        Ready::Read,
        "recv",
        &stream.peer,
        |nonblocking| {
            let flags = recv_flags(nonblocking) | extra;
            if stream.tcp {
                // TCP carries no descriptors and no credentials: a plain `recv`.
                return rustix::net::recv(stream.fd.as_fd(), &mut *dst, flags)
                    .map(|(n, _)| (n, None));
            }
            anc = Ancillary::default();
            recv_ancillary(stream.fd.as_fd(), dst, flags, &mut anc)
        },
    )?;
    Ok((n, anc))
}

/// One `recvmsg` into `dst` with the descriptors that came with it; a truncated control message
/// is an error (its descriptors are closed).
fn recv_some(
    stream: &Stream,
    dst: &mut [u8],
    wait: &mut Wait<'_>,
) -> Result<(usize, Vec<OwnedFd>)> {
    let (n, anc) = recv_into(stream, dst, RecvFlags::empty(), wait)?;
    if anc.truncated {
        return Err(fds_truncated(stream));
    }
    Ok((n, anc.fds))
}

fn fds_truncated(stream: &Stream) -> Error {
    Error::FdsTruncated {
        what: stream.peer.clone(),
    }
}

/// The receive side of a [`Stream`], locked for one operation.
pub struct Reader<'a> {
    pub(super) stream: &'a Stream,
    pub(super) buf: MutexGuard<'a, RecvBuf>,
}

impl Reader<'_> {
    fn fds_truncated(&self) -> Error {
        fds_truncated(self.stream)
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of file. The bytes are kept even when
    /// the control message was truncated (the stream keeps its place).
    fn fill(&mut self, want: usize, wait: &mut Wait<'_>) -> Result<usize> {
        let space = self.buf.space(want);
        let (n, anc) = recv_into(self.stream, space, RecvFlags::empty(), wait)?;
        self.buf.filled(n, anc.fds);
        if anc.truncated {
            return Err(self.fds_truncated());
        }
        Ok(n)
    }

    fn check_limit(&self, len: u64, limit: Option<u64>) -> Result<()> {
        let max = limit.map_or(self.stream.max_message, |l| l.min(self.stream.max_message));
        if len > max {
            return Err(Error::MessageTooLarge {
                size: len,
                limit: max,
                what: self.stream.peer.clone(),
            });
        }
        Ok(())
    }

    /// The descriptors that came with the message just received (theirs to own now).
    pub fn take_fds(&mut self) -> Vec<OwnedFd> {
        self.buf.take_claimed()
    }

    /// Reads the next message's header (and the whole message when it is small).
    /// Errors: `Eof` at a clean end of file, `Truncated`, `MessageTooLarge`.
    pub fn next_message(&mut self, limit: Option<u64>, wait: &mut Wait<'_>) -> Result<Incoming> {
        self.next_message_with(limit, wait, <[u8]>::to_vec)
    }

    /// [`Reader::next_message`], handing a small message's bytes to `small` where they lie in
    /// the receive buffer (a caller that makes its own object of them copies them once).
    pub fn next_message_with<T>(
        &mut self,
        limit: Option<u64>,
        wait: &mut Wait<'_>,
        small: impl FnOnce(&[u8]) -> T,
    ) -> Result<Incoming<T>> {
        // Descriptors of an earlier message that nobody took are closed here.
        self.buf.drop_claimed();
        if let Some(len) = self.buf.resume() {
            return Ok(Incoming::Large(len));
        }
        if self.stream.kind == Kind::SeqPacket {
            return self.next_packet(limit, wait, small);
        }
        // A small frame stays whole in the buffer until all of it is there, so a receive that
        // times out part way leaves the stream where it was.
        loop {
            match self.buf.next(RX_BUFFER - frame::LONG) {
                Next::Small { header, len } => {
                    self.check_limit(len as u64, limit)?;
                    return Ok(Incoming::Small(self.buf.take_small(header, len, small)));
                }
                Next::Large { header, len } => {
                    self.check_limit(len, limit)?;
                    let size = usize::try_from(len).map_err(|_| Error::MessageTooLarge {
                        size: len,
                        limit: usize::MAX as u64,
                        what: self.stream.peer.clone(),
                    })?;
                    self.buf.start_large(header, len);
                    return Ok(Incoming::Large(size));
                }
                Next::Malformed(n) => {
                    // Not this wire format: a protocol error (the caller closes the stream).
                    return Err(Error::os(
                        rustix::io::Errno::BADMSG,
                        "recv",
                        format!("{} (length prefix {n})", self.stream.peer),
                    ));
                }
                Next::NeedHeader { have } => {
                    if self.fill(frame::LONG, wait)? == 0 {
                        return Err(if have == 0 {
                            Error::Eof {
                                what: self.stream.peer.clone(),
                            }
                        } else {
                            // Past 4 bytes the prefix was the `-1` of a long header.
                            let expected = if have < frame::SHORT {
                                frame::SHORT
                            } else {
                                frame::LONG
                            };
                            Error::Truncated {
                                expected: expected as u64,
                                received: have as u64,
                                what: format!("{} (in a length prefix)", self.stream.peer),
                            }
                        });
                    }
                }
                Next::NeedPayload { header, len, have } => {
                    self.check_limit(len as u64, limit)?;
                    if self.fill(header + len - have, wait)? == 0 {
                        return Err(Error::Truncated {
                            expected: len as u64,
                            received: have as u64,
                            what: self.stream.peer.clone(),
                        });
                    }
                }
            }
        }
    }

    fn next_packet<T>(
        &mut self,
        limit: Option<u64>,
        wait: &mut Wait<'_>,
        small: impl FnOnce(&[u8]) -> T,
    ) -> Result<Incoming<T>> {
        let stream = self.stream;
        let flags = RecvFlags::PEEK | RecvFlags::TRUNC;
        let (len, peeked) = recv_into(stream, &mut [], flags, wait)?;
        // A peek duplicates any descriptors on the packet: close those copies now.
        let has_creds = peeked.creds.is_some();
        drop(peeked);
        if len == 0 && self.end_of_file(has_creds) {
            return Err(Error::Eof {
                what: stream.peer.clone(),
            });
        }
        if let Err(e) = self.check_limit(len as u64, limit) {
            // Drop the packet (and any descriptors on it): the next message is intact.
            let mut anc = Ancillary::default();
            let _ = recv_ancillary(stream.fd.as_fd(), &mut [], RecvFlags::DONTWAIT, &mut anc);
            return Err(e);
        }
        if len > RX_BUFFER {
            return Ok(Incoming::Large(len));
        }
        // Small: one receive into the buffer (consuming the packet), one copy out.
        let (got, fds) = recv_some(stream, self.buf.packet_space(), wait)?;
        self.buf.add_claimed(fds);
        Ok(Incoming::Small(small(&self.buf.packet_space()[..got])))
    }

    /// Whether a zero-length read is the end of the stream rather than an empty packet. On
    /// Linux every packet carries credentials (`SO_PASSCRED`) and end of file does not;
    /// elsewhere an empty packet right before a hang-up reads as the end of file.
    fn end_of_file(&self, has_creds: bool) -> bool {
        if cfg!(any(target_os = "linux", target_os = "android")) {
            !has_creds
        } else {
            self.peer_hung_up()
        }
    }

    fn peer_hung_up(&self) -> bool {
        use rustix::event::{PollFd, PollFlags};
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let hup = PollFlags::RDHUP | PollFlags::HUP;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let hup = PollFlags::HUP;
        let mut fds = [PollFd::new(&self.stream.fd, PollFlags::IN | hup)];
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(1))
            && fds[0].revents().intersects(hup)
    }

    /// Fills `dst` (exactly the announced length) with the message's payload.
    pub fn read_payload(&mut self, dst: &mut [u8], wait: &mut Wait<'_>) -> Result<()> {
        if self.stream.kind == Kind::SeqPacket {
            let (n, fds) = recv_some(self.stream, dst, wait)?;
            self.buf.add_claimed(fds);
            if n != dst.len() {
                return Err(Error::Truncated {
                    expected: dst.len() as u64,
                    received: n as u64,
                    what: self.stream.peer.clone(),
                });
            }
            return Ok(());
        }
        let mut got = self.buf.resume_into(dst);
        while got < dst.len() {
            // Reads stay inside this frame, so whatever descriptors come are its own.
            let read = recv_into(self.stream, &mut dst[got..], RecvFlags::empty(), wait);
            let (n, anc) = match read {
                Ok(read) => read,
                Err(e @ (Error::Timeout { .. } | Error::Interrupted)) => {
                    self.buf.keep_partial(dst, got);
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            if anc.truncated {
                // The bytes stay with the message (continued by the next receive); the
                // descriptors that arrived are closed.
                self.buf.read_past(n, Vec::new());
                self.buf.keep_partial(dst, got + n);
                return Err(self.fds_truncated());
            }
            self.buf.read_past(n, anc.fds);
            if n == 0 {
                return Err(Error::Truncated {
                    expected: dst.len() as u64,
                    received: got as u64,
                    what: self.stream.peer.clone(),
                });
            }
            got += n;
        }
        Ok(())
    }

    /// Continues a large message's payload ([`Incoming::Large`]) into `dst` (its whole
    /// length) without waiting: `got` counts the bytes in `dst` so far (0 on the first call,
    /// which takes what was read ahead) and is advanced even when an error follows. Complete
    /// when `*got == dst.len()`; the caller keeps `dst` between calls, or hands it to
    /// [`Reader::keep_partial`] for the blocking receives to continue.
    pub fn read_payload_nowait(&mut self, dst: &mut [u8], got: &mut usize) -> Result<()> {
        let mut stop = crate::wait::Uninterrupted;
        let stream = self.stream;
        let mut wait = stream.wait_nowait(&mut stop);
        if stream.kind == Kind::SeqPacket {
            // The packet is there (it was peeked): one receive takes it whole.
            self.read_payload(dst, &mut wait)?;
            *got = dst.len();
            return Ok(());
        }
        if *got == 0 {
            *got = self.buf.resume_into(dst);
        }
        while *got < dst.len() {
            let (n, anc) = match recv_into(stream, &mut dst[*got..], RecvFlags::empty(), &mut wait)
            {
                Ok(read) => read,
                Err(Error::Timeout { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            if anc.truncated {
                self.buf.read_past(n, Vec::new());
                *got += n;
                return Err(self.fds_truncated());
            }
            self.buf.read_past(n, anc.fds);
            if n == 0 {
                return Err(Error::Truncated {
                    expected: dst.len() as u64,
                    received: *got as u64,
                    what: stream.peer.clone(),
                });
            }
            *got += n;
        }
        Ok(())
    }

    /// Keeps the first `got` bytes of a large message being received into `dst` (its whole
    /// length) for the next receive to continue, as a receive that timed out does.
    pub fn keep_partial(&mut self, dst: &[u8], got: usize) {
        self.buf.keep_partial(dst, got);
    }

    /// Reads at most `dst.len()` raw bytes (one packet on seqpacket sockets); 0 at end of file.
    /// Descriptors that came with them are kept for [`Reader::take_fds`].
    pub fn read_some(&mut self, dst: &mut [u8], wait: &mut Wait<'_>) -> Result<usize> {
        self.buf.drop_claimed();
        if dst.is_empty() {
            return Ok(0);
        }
        if !self.buf.buffered().is_empty() {
            return Ok(self.buf.take_raw(dst));
        }
        let (n, fds) = recv_some(self.stream, dst, wait)?;
        self.buf.read_past(n, fds);
        Ok(n)
    }

    /// Reads exactly `dst.len()` raw bytes. `Eof` if the stream ends before any, `Truncated` if
    /// part way.
    pub fn read_exact(&mut self, dst: &mut [u8], wait: &mut Wait<'_>) -> Result<()> {
        if self.stream.kind == Kind::SeqPacket {
            return Err(Error::NotSupported(
                "recv_exact reads a byte stream; a seqpacket socket carries packets".into(),
            ));
        }
        let mut got = 0;
        let mut fds = Vec::new();
        while got < dst.len() {
            let n = self.read_some(&mut dst[got..], wait)?;
            fds.append(&mut self.buf.take_claimed());
            if n == 0 {
                return Err(if got == 0 {
                    Error::Eof {
                        what: self.stream.peer.clone(),
                    }
                } else {
                    Error::Truncated {
                        expected: dst.len() as u64,
                        received: got as u64,
                        what: self.stream.peer.clone(),
                    }
                });
            }
            got += n;
        }
        self.buf.add_claimed(fds);
        Ok(())
    }

    /// Whether something can be read (buffered bytes, a message, or end of file) within `timeout`.
    pub fn poll(&self, timeout: Option<Duration>, interrupt: &mut dyn Interrupt) -> Result<bool> {
        if !self.buf.buffered().is_empty() {
            return Ok(true);
        }
        let deadline = Deadline::after(timeout);
        loop {
            if self.stream.is_closed() {
                return Err(self.stream.err_closed("poll"));
            }
            let left = deadline.remaining().unwrap_or(SLICE).min(SLICE);
            if crate::wait::poll_once(self.stream.fd.as_fd(), Ready::Read, left)
                .map_err(|e| Error::os(e, "poll", &self.stream.peer))?
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
