//! Framed stream and seqpacket connections: the send side and the connection's state.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{AddressFamily, Shutdown, SocketFlags};

use crate::error::{Error, Result};
use crate::frame;
use crate::wait::{Deadline, Interrupt, Ready, Wait};

use super::ancillary::{check_fd_count, send_ancillary};
use super::options::{configure_connected, pass_credentials, send_flags};
use super::reader::Reader;
use super::recvbuf::RecvBuf;
use super::{Kind, NO_TIMEOUT};

/// Payloads up to this size are copied after their header and sent by one plain `send`: the copy
/// costs less than a `sendmsg` of two pieces (measured: see `docs/architecture.md`).
const COALESCE: usize = 1024;

/// How a received message is to be delivered.
#[derive(Debug)]
pub enum Incoming<T = Vec<u8>> {
    /// A small message, already complete in the receive buffer: its bytes (or what the caller
    /// of [`Reader::next_message_with`] made of them).
    Small(T),
    /// A large message of this length: allocate a destination and call
    /// [`Reader::read_payload`].
    Large(usize),
}

/// A connected stream or seqpacket socket with framed messages.
#[derive(Debug)]
pub struct Stream {
    pub(super) fd: OwnedFd,
    pub(super) kind: Kind,
    pub(super) peer: String,
    pub(super) tcp: bool,
    pub(super) max_message: u64,
    pub(super) closed: AtomicBool,
    /// Timeout of sends and receives in nanoseconds; `u64::MAX` for none.
    pub(super) timeout_ns: AtomicU64,
    /// The send side: held for a whole message, with a scratch buffer that a small message is
    /// assembled in (header and payload, sent as one).
    pub(super) tx: Mutex<Vec<u8>>,
    pub(super) rx: Mutex<RecvBuf>,
    /// Connected through an explicitly named shared socket directory (the caller may warn).
    pub(super) shared_dir: bool,
}

impl Stream {
    /// Wraps a connected socket.
    pub fn adopt(
        fd: OwnedFd,
        kind: Kind,
        peer: String,
        tcp: bool,
        max_message: u64,
    ) -> Result<Stream> {
        configure_connected(fd.as_fd(), kind, tcp, &peer)?;
        if !tcp {
            pass_credentials(fd.as_fd(), kind, &peer)?;
        }
        Ok(Stream {
            fd,
            kind,
            peer,
            tcp,
            max_message,
            closed: AtomicBool::new(false),
            timeout_ns: AtomicU64::new(NO_TIMEOUT),
            tx: Mutex::new(Vec::new()),
            rx: Mutex::new(RecvBuf::default()),
            shared_dir: false,
        })
    }

    /// A connected pair.
    pub fn pair(kind: Kind, max_message: u64) -> Result<(Stream, Stream)> {
        if kind == Kind::Datagram {
            return Err(Error::Invalid(
                "use DatagramSocket::pair for datagram sockets".into(),
            ));
        }
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            kind.socket_type(),
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| Error::os(e, "socketpair", "socketpair"))?;
        Ok((
            Stream::adopt(a, kind, "socketpair".into(), false, max_message)?,
            Stream::adopt(b, kind, "socketpair".into(), false, max_message)?,
        ))
    }

    /// Whether it was connected through an explicitly named shared sticky socket directory.
    pub fn shared_dir(&self) -> bool {
        self.shared_dir
    }

    /// The peer's logical address.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether it runs over TCP.
    pub fn is_tcp(&self) -> bool {
        self.tcp
    }

    /// The receive limit.
    pub fn max_message(&self) -> u64 {
        self.max_message
    }

    /// Borrows the descriptor.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Marks the stream closed: waits in other threads end with EBADF at their next slice.
    pub fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Whether [`Stream::mark_closed`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The timeout of sends and receives.
    pub fn timeout(&self) -> Option<Duration> {
        match self.timeout_ns.load(Ordering::Relaxed) {
            NO_TIMEOUT => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Sets the timeout of sends and receives.
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        let ns = timeout.map_or(NO_TIMEOUT, |t| {
            u64::try_from(t.as_nanos()).unwrap_or(NO_TIMEOUT - 1)
        });
        self.timeout_ns.store(ns, Ordering::Relaxed);
    }

    /// A wait bounded by this stream's timeout.
    pub fn wait<'a>(&'a self, interrupt: &'a mut dyn Interrupt) -> Wait<'a> {
        self.wait_until(Deadline::after(self.timeout()), interrupt)
    }

    /// A wait bounded by `deadline`.
    pub fn wait_until<'a>(
        &'a self,
        deadline: Deadline,
        interrupt: &'a mut dyn Interrupt,
    ) -> Wait<'a> {
        Wait {
            deadline,
            interrupt,
            closed: Some(&self.closed),
            sliced_fd: true,
        }
    }

    pub(super) fn err_closed(&self, op: &'static str) -> Error {
        Error::os(Errno::BADF, op, &self.peer)
    }

    /// Sends one framed message (one packet on seqpacket sockets) with `fds` attached to its
    /// start. Frames from several threads never interleave.
    pub fn send_message(
        &self,
        data: &[u8],
        fds: &[BorrowedFd<'_>],
        interrupt: &mut dyn Interrupt,
    ) -> Result<()> {
        self.send_message_within(data, fds, &mut self.wait(interrupt))
    }

    /// [`Stream::send_message`] within `wait` (its deadline, interrupt check and closed flag)
    /// rather than the stream's timeout.
    pub fn send_message_within(
        &self,
        data: &[u8],
        fds: &[BorrowedFd<'_>],
        wait: &mut Wait<'_>,
    ) -> Result<()> {
        self.check_fds(fds)?;
        let mut scratch = self.tx.lock().map_err(|_| self.err_closed("send"))?;
        if self.kind == Kind::SeqPacket {
            return self.send_packet(data, fds, wait);
        }
        let mut header = [0u8; frame::LONG];
        let hlen = frame::encode_header(data.len() as u64, &mut header);
        if fds.is_empty() && data.len() <= COALESCE {
            // Header and payload in one buffer: one plain `send`, not a `sendmsg` of two.
            let whole = &mut *scratch;
            whole.clear();
            whole.extend_from_slice(&header[..hlen]);
            whole.extend_from_slice(data);
            return self.send_vectored(&[], whole, fds, wait);
        }
        self.send_vectored(&header[..hlen], data, fds, wait)
    }

    /// Sends a small message (up to 1 KiB, no descriptors, on a Unix stream socket on Linux)
    /// at once, without waiting: `Ok(true)` once the kernel took all of it; `Ok(false)` when it
    /// cannot go that way now (the send side busy in another thread, the socket's buffer full,
    /// a signal, another kind of socket, a larger message): then nothing was sent, and
    /// [`Stream::send_message`] sends it. It never blocks, so a caller may hold a lock meanwhile
    /// (the bindings hold the GIL, and save its release and re-acquisition).
    pub fn try_send_message(&self, data: &[u8]) -> Result<bool> {
        let eligible = cfg!(any(target_os = "linux", target_os = "android"))
            && self.kind == Kind::Stream
            && !self.tcp
            && data.len() <= COALESCE
            && !self.is_closed();
        if !eligible {
            return Ok(false);
        }
        let Ok(mut scratch) = self.tx.try_lock() else {
            return Ok(false);
        };
        let mut header = [0u8; frame::LONG];
        let hlen = frame::encode_header(data.len() as u64, &mut header);
        scratch.clear();
        scratch.extend_from_slice(&header[..hlen]);
        scratch.extend_from_slice(data);
        // Linux queues a Unix stream write this small as one buffer: all of it or none.
        match rustix::net::send(self.fd.as_fd(), &scratch, send_flags(true)) {
            Ok(n) if n == scratch.len() => Ok(true),
            Ok(n) => {
                // Not seen on Linux; should it happen, the frame is finished here, whole.
                let rest = scratch.split_off(n);
                let mut stop = crate::wait::Uninterrupted;
                let mut wait = self.wait(&mut stop);
                self.send_vectored(&[], &rest, &[], &mut wait)?;
                Ok(true)
            }
            Err(Errno::AGAIN | Errno::INTR) => Ok(false),
            Err(e) => Err(Error::os(e, "send", &self.peer)),
        }
    }

    /// A wait that does not wait: one attempt, `Error::Timeout` where the call would block.
    /// For callers that wait for readiness themselves (an event loop).
    pub fn wait_nowait<'a>(&'a self, interrupt: &'a mut dyn Interrupt) -> Wait<'a> {
        self.wait_until(Deadline::after(Some(Duration::ZERO)), interrupt)
    }

    /// One attempt, without waiting, at sending `head` then `body` on the raw stream with `fds`
    /// on their first byte (on a seqpacket socket `head` must be empty and `body` goes as one
    /// packet, whole or not at all): the bytes the kernel took, 0 when its buffer is full.
    /// For callers that wait for writability themselves (an event loop) and keep the rest of a
    /// frame between attempts: the send side is held for this attempt only, so such a caller
    /// sends nothing else on the stream until its frame is out.
    pub fn send_nowait(&self, head: &[u8], body: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
        self.check_fds(fds)?;
        let mut stop = crate::wait::Uninterrupted;
        let mut wait = self.wait_nowait(&mut stop);
        // Never wait for the send side: a blocking send in another thread holds it detached.
        let mut scratch = match self.tx.try_lock() {
            Ok(scratch) => scratch,
            Err(std::sync::TryLockError::WouldBlock) => return Err(self.err_busy("send")),
            Err(std::sync::TryLockError::Poisoned(_)) => return Err(self.err_closed("send")),
        };
        let result = if self.kind == Kind::SeqPacket {
            self.send_packet(body, fds, &mut wait).map(|()| body.len())
        } else if fds.is_empty() && !head.is_empty() && head.len() + body.len() <= COALESCE {
            // Header and payload in one buffer, as `send_message` does.
            scratch.clear();
            scratch.extend_from_slice(head);
            scratch.extend_from_slice(body);
            let whole: &[u8] = &scratch;
            wait.run(self.fd.as_fd(), Ready::Write, "send", &self.peer, |_| {
                rustix::net::send(self.fd.as_fd(), whole, send_flags(true))
            })
        } else {
            wait.run(self.fd.as_fd(), Ready::Write, "send", &self.peer, |_| {
                let flags = send_flags(true);
                let first = if head.is_empty() { body } else { head };
                let second = if head.is_empty() { &[][..] } else { body };
                if fds.is_empty() && second.is_empty() {
                    return rustix::net::send(self.fd.as_fd(), first, flags);
                }
                let iov = [IoSlice::new(first), IoSlice::new(second)];
                let iov = if second.is_empty() { &iov[..1] } else { &iov };
                send_ancillary(self.fd.as_fd(), iov, fds, false, flags, None)
            })
        };
        match result {
            Err(Error::Timeout { .. }) => Ok(0),
            other => other,
        }
    }

    /// The one send loop of a stream: every byte of `head` then `body`, in as few system calls
    /// as the kernel allows, with `fds` on the first byte and only on it. A partial write (a
    /// full buffer at the end of a slice, a signal) continues where it stopped; `EINTR` and
    /// `EAGAIN` are retried by `wait`, which also ends the send at its deadline. Bytes with no
    /// descriptor to carry, from one slice, go by a plain `send`: the kernel's `sendmsg` costs
    /// more (the message header and the vector to copy in).
    fn send_vectored(
        &self,
        head: &[u8],
        body: &[u8],
        fds: &[BorrowedFd<'_>],
        wait: &mut Wait<'_>,
    ) -> Result<()> {
        let total = head.len() + body.len();
        let mut sent = 0usize;
        while sent < total {
            sent += wait.run(
                self.fd.as_fd(),
                Ready::Write,
                "send",
                &self.peer,
                |nonblocking| {
                    let (first, second) = match head.get(sent..) {
                        Some(rest) if !rest.is_empty() => (rest, body),
                        _ => (&body[sent - head.len()..], &[][..]),
                    };
                    let fds = if sent == 0 { fds } else { &[] };
                    let flags = send_flags(nonblocking);
                    if fds.is_empty() && second.is_empty() {
                        return rustix::net::send(self.fd.as_fd(), first, flags);
                    }
                    let iov = [IoSlice::new(first), IoSlice::new(second)];
                    let iov = if second.is_empty() { &iov[..1] } else { &iov };
                    send_ancillary(self.fd.as_fd(), iov, fds, false, flags, None)
                },
            )?;
        }
        Ok(())
    }

    fn check_fds(&self, fds: &[BorrowedFd<'_>]) -> Result<()> {
        if fds.is_empty() {
            return Ok(());
        }
        if self.tcp {
            return Err(Error::NotSupported(format!(
                "descriptors travel only over Unix sockets, not TCP ({})",
                self.peer
            )));
        }
        check_fd_count(fds.len(), &self.peer)
    }

    fn send_packet(&self, data: &[u8], fds: &[BorrowedFd<'_>], wait: &mut Wait<'_>) -> Result<()> {
        let result = wait.run(
            self.fd.as_fd(),
            Ready::Write,
            "send",
            &self.peer,
            |nonblocking| {
                send_ancillary(
                    self.fd.as_fd(),
                    &[IoSlice::new(data)],
                    fds,
                    false,
                    send_flags(nonblocking),
                    None,
                )
            },
        );
        match result {
            Err(Error::Os {
                errno: Errno::MSGSIZE,
                ..
            }) => Err(Error::MessageTooLarge {
                size: data.len() as u64,
                limit: rustix::net::sockopt::socket_send_buffer_size(&self.fd).unwrap_or(0) as u64,
                what: format!(
                    "{}: larger than one seqpacket packet can be here (raise net.core.wmem_max)",
                    self.peer
                ),
            }),
            other => other.map(|_| ()),
        }
    }

    /// Sends every byte of `data` on the raw stream with `fds` attached to its first byte (one
    /// packet on seqpacket sockets). A stream needs at least one byte to carry descriptors.
    pub fn send_with_fds(
        &self,
        data: &[u8],
        fds: &[BorrowedFd<'_>],
        interrupt: &mut dyn Interrupt,
    ) -> Result<()> {
        self.check_fds(fds)?;
        if data.is_empty() && !fds.is_empty() && self.kind == Kind::Stream {
            return Err(Error::Invalid(
                "descriptors need at least one byte of data to travel on a stream socket".into(),
            ));
        }
        let mut wait = self.wait(interrupt);
        let _guard = self.tx.lock().map_err(|_| self.err_closed("send"))?;
        if self.kind == Kind::SeqPacket {
            return self.send_packet(data, fds, &mut wait);
        }
        self.send_vectored(&[], data, fds, &mut wait)
    }

    /// Sends every byte of `data` on the raw stream (one packet on seqpacket sockets).
    pub fn send_all(&self, data: &[u8], interrupt: &mut dyn Interrupt) -> Result<()> {
        self.send_with_fds(data, &[], interrupt)
    }

    /// The credentials of the peer, taken when the connection was made.
    pub fn peer_credentials(&self) -> Result<crate::creds::Credentials> {
        if self.tcp {
            return Err(Error::NotSupported(format!(
                "peer credentials exist only for Unix sockets, not TCP ({})",
                self.peer
            )));
        }
        crate::creds::peer_credentials(self.fd.as_fd(), &self.peer)
    }

    /// A pidfd of the peer process (Linux 6.5 and later).
    pub fn peer_pidfd(&self) -> Result<OwnedFd> {
        if self.tcp {
            return Err(Error::NotSupported(format!(
                "peer pidfds exist only for Unix sockets, not TCP ({})",
                self.peer
            )));
        }
        crate::creds::peer_pidfd(self.fd.as_fd(), &self.peer)
    }

    /// Locks the receive side for one operation if no other thread holds it; `EBUSY` if one does
    /// (a caller that must not wait, such as an event loop, cannot wait for a blocking receive).
    pub fn try_reader(&self) -> Result<Reader<'_>> {
        match self.rx.try_lock() {
            Ok(buf) => Ok(Reader { stream: self, buf }),
            Err(std::sync::TryLockError::WouldBlock) => Err(self.err_busy("recv")),
            Err(std::sync::TryLockError::Poisoned(_)) => Err(self.err_closed("recv")),
        }
    }

    fn err_busy(&self, op: &'static str) -> Error {
        Error::os(Errno::BUSY, op, &self.peer)
    }

    /// Locks the receive side for one operation.
    pub fn reader(&self) -> Result<Reader<'_>> {
        let buf = self.rx.lock().map_err(|_| self.err_closed("recv"))?;
        Ok(Reader { stream: self, buf })
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        rustix::net::shutdown(&self.fd, how).map_err(|e| Error::os(e, "shutdown", &self.peer))
    }

    /// Receives one message completely (for Rust callers).
    pub fn recv_message(
        &self,
        limit: Option<u64>,
        interrupt: &mut dyn Interrupt,
    ) -> Result<Vec<u8>> {
        let mut wait = self.wait(interrupt);
        let mut reader = self.reader()?;
        let out = match reader.next_message(limit, &mut wait)? {
            Incoming::Small(bytes) => bytes,
            Incoming::Large(len) => {
                let mut out = vec![0u8; len];
                reader.read_payload(&mut out, &mut wait)?;
                out
            }
        };
        // Descriptors that came with it are closed: this caller did not ask for them.
        drop(reader.take_fds());
        Ok(out)
    }
}
