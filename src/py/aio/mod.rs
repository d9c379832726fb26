//! The non-blocking entry points of `Connection` that `fastipc.aio` drives from an event loop.
//!
//! A call never waits for a frame to start: the event loop waits for readiness and calls again.
//! Once a frame has started and the peer keeps up, a call moves it on itself, waiting for each
//! next piece for a short, bounded time (`FLOWING`, `FLOWING_BUDGET`) with the GIL released,
//! rather than going back to the loop for every kernel-buffer-full.
//!
//! What a frame leaves half done between calls is kept here: the unsent rest of a frame (the
//! caller's buffer stays exported until it is out), and a large message being received into
//! the `bytes` object it will be. A small frame that is part way in stays in the connection's
//! receive buffer. So a caller that stops between calls (a cancelled task) loses nothing, and
//! the next receive continues the same message.
//!
//! `conn` has `Connection`'s entry points for `fastipc.aio`, and `idle` the wait in an idle
//! event loop's stead.

mod conn;
mod idle;

pub use idle::{Idle, LoopView};

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyMemoryError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::Error;
use crate::frame;
use crate::py::buffer::{Buffer, Fresh};
use crate::py::connection::slice_arg;
use crate::py::errors::IntoPy;
use crate::socket::{Incoming, Kind, Stream};
use crate::wait::{poll_beside, poll_once, Beside, Ready};

/// What `try_send` did: nothing (the buffer was full), part of the frame (the rest is kept,
/// for `send_more`), or all of it.
pub const SENT_NOTHING: u8 = 0;
/// See [`SENT_NOTHING`].
pub const SENT_PART: u8 = 1;
/// See [`SENT_NOTHING`].
pub const SENT_ALL: u8 = 2;

/// The event-loop state of one connection.
#[derive(Default)]
pub struct AioState {
    wrapped: AtomicBool,
    tx: Mutex<Option<PendingTx>>,
    rx: Mutex<Option<PendingRx>>,
    /// The event loop the receives last ran on (see [`LoopView::idle`]).
    view: Mutex<Option<LoopView>>,
}

/// The rest of a frame whose first bytes went.
struct PendingTx {
    head: [u8; frame::LONG],
    hlen: usize,
    data: Buffer,
    start: usize,
    end: usize,
    sent: usize,
}

/// A large message part way in.
struct PendingRx {
    fresh: Fresh,
    got: usize,
}

/// A message received whole, and the descriptors that came with it.
pub type Message = (Py<PyBytes>, Vec<std::os::fd::OwnedFd>);

impl AioState {
    /// `readable.idle()`, its common case answered without running Python (see
    /// [`LoopView::idle`]). Not idle while another thread asks for this connection.
    pub fn idle(&self, py: Python<'_>, readable: &Bound<'_, PyAny>) -> PyResult<(RawFd, f64)> {
        match self.view.try_lock() {
            Ok(mut view) => LoopView::idle(py, &mut view, readable),
            Err(TryLockError::Poisoned(poisoned)) => {
                LoopView::idle(py, &mut poisoned.into_inner(), readable)
            }
            Err(TryLockError::WouldBlock) => Ok(idle::NOT_IDLE),
        }
    }

    /// Whether `fastipc.aio` holds the connection (its blocking calls refuse).
    pub fn is_wrapped(&self) -> bool {
        self.wrapped.load(Ordering::Acquire)
    }

    /// Takes the connection for an event loop, or gives it back. Given back with a large
    /// message part way in, the blocking receives continue that message.
    pub fn set_wrapped(&self, stream: &Stream, on: bool) -> PyResult<()> {
        if on && self.is_wrapped() {
            return Err(PyRuntimeError::new_err(
                "the connection is already in use by a fastipc.aio.Connection",
            ));
        }
        if !on {
            if self.lock_tx()?.is_some() {
                return Err(PyRuntimeError::new_err(
                    "a frame is still being sent: await its send before detach()",
                ));
            }
            if let Some(mut pending) = self.lock_rx()?.take() {
                let mut reader = stream.try_reader().py_err()?;
                let got = pending.got;
                reader.keep_partial(pending.fresh.as_mut_slice(), got);
            }
        }
        self.wrapped.store(on, Ordering::Release);
        Ok(())
    }

    // The pending frames are taken without waiting: a call in another thread may hold one
    // with the GIL released (in `push` or `continue_large`), and waiting for it here, with the
    // GIL held, would stop that call from taking the GIL back.

    fn lock_tx(&self) -> PyResult<MutexGuard<'_, Option<PendingTx>>> {
        try_lock(&self.tx, "sending")
    }

    fn lock_rx(&self) -> PyResult<MutexGuard<'_, Option<PendingRx>>> {
        try_lock(&self.rx, "receiving")
    }

    /// One attempt at sending the frame of `data` (`obj[start..end]`) with `fds` on it; once it
    /// has started, as much more as the peer takes while it keeps reading (see [`push`]).
    pub fn try_send(
        &self,
        py: Python<'_>,
        stream: &Stream,
        obj: &Bound<'_, PyAny>,
        data: &[u8],
        start: usize,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> PyResult<u8> {
        let mut tx = self.lock_tx()?;
        if tx.is_some() {
            return Err(PyRuntimeError::new_err(
                "the previous frame is still being sent",
            ));
        }
        let mut head = [0u8; frame::LONG];
        let hlen = if stream.kind() == Kind::SeqPacket {
            0
        } else {
            frame::encode_header(data.len() as u64, &mut head)
        };
        let sent = stream.send_nowait(&head[..hlen], data, fds).py_err()?;
        if sent == 0 {
            return Ok(SENT_NOTHING);
        }
        if sent == hlen + data.len() {
            return Ok(SENT_ALL);
        }
        let mut pending = PendingTx {
            head,
            hlen,
            data: Buffer::readable(obj)?,
            start,
            end: start + data.len(),
            sent,
        };
        if push(py, stream, &mut pending)? {
            return Ok(SENT_ALL);
        }
        *tx = Some(pending);
        Ok(SENT_PART)
    }

    /// More of the frame part way out (as much as the peer takes while it keeps reading, see
    /// [`push`]): whether it is all out now (true as well when none was).
    pub fn send_more(&self, py: Python<'_>, stream: &Stream) -> PyResult<bool> {
        let mut tx = self.lock_tx()?;
        let Some(pending) = tx.as_mut() else {
            return Ok(true);
        };
        match push(py, stream, pending) {
            Ok(false) => Ok(false),
            done => {
                // All out, or the stream is broken part way through a frame (nothing more can
                // go). Releases the caller's buffer (attached: Buffer's drop takes the GIL).
                *tx = None;
                done
            }
        }
    }

    /// One attempt at receiving a message: `None` when it is not all there yet (what arrived
    /// is kept for the next attempt). With `idle` (the event loop has nothing else to do), a
    /// message not there yet is waited for here, beside the loop's own descriptor (see
    /// [`Idle`]).
    pub fn try_recv(
        &self,
        py: Python<'_>,
        stream: &Stream,
        limit: Option<u64>,
        idle: Option<Idle<'_>>,
    ) -> PyResult<Option<Message>> {
        let Some(idle) = idle else {
            return self.try_recv_once(py, stream, limit);
        };
        let until = Instant::now() + idle.limit;
        // The poll comes first: it returns at once if the socket is readable, and spares a
        // receive that would fail when (as in a conversation) the message is still to come.
        loop {
            // A signal that came while this thread ran is handled before it sleeps.
            py.check_signals()?;
            let left = until.saturating_duration_since(Instant::now());
            let fd = stream.as_fd();
            match py.detach(|| poll_beside(fd, idle.loop_fd, left)) {
                Ok(Beside::Ready) => {}
                // The loop has work, the time is up, a signal came, or the poll failed: one
                // attempt (which reports a broken connection), then the loop waits.
                _ => return self.try_recv_once(py, stream, limit),
            }
            if let Some(message) = self.try_recv_once(py, stream, limit)? {
                return Ok(Some(message));
            }
        }
    }

    fn try_recv_once(
        &self,
        py: Python<'_>,
        stream: &Stream,
        limit: Option<u64>,
    ) -> PyResult<Option<Message>> {
        let mut rx = self.lock_rx()?;
        let mut reader = stream.try_reader().py_err()?;
        if let Some(pending) = rx.as_mut() {
            let done = continue_large(py, stream, &mut reader, pending)?;
            if !done {
                return Ok(None);
            }
            let Some(pending) = rx.take() else {
                return Ok(None);
            };
            return Ok(Some((pending.fresh.bytes, reader.take_fds())));
        }
        let mut stop = crate::wait::Uninterrupted;
        let mut wait = stream.wait_nowait(&mut stop);
        let incoming =
            reader.next_message_with(limit, &mut wait, |bytes| PyBytes::new(py, bytes).unbind());
        match incoming {
            Err(Error::Timeout { .. }) => Ok(None),
            Err(e) => Err(crate::py::errors::to_py(e, None)),
            Ok(Incoming::Small(bytes)) => Ok(Some((bytes, reader.take_fds()))),
            Ok(Incoming::Large(len)) => {
                let fresh = Fresh::new(py, len).map_err(|_| {
                    PyMemoryError::new_err(format!("cannot allocate a message of {len} bytes"))
                })?;
                let mut pending = PendingRx { fresh, got: 0 };
                if continue_large(py, stream, &mut reader, &mut pending)? {
                    return Ok(Some((pending.fresh.bytes, reader.take_fds())));
                }
                *rx = Some(pending);
                Ok(None)
            }
        }
    }
}

fn try_lock<'a, T>(mutex: &'a Mutex<T>, doing: &str) -> PyResult<MutexGuard<'a, T>> {
    match mutex.try_lock() {
        Ok(guard) => Ok(guard),
        Err(TryLockError::Poisoned(poisoned)) => Ok(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => Err(PyRuntimeError::new_err(format!(
            "another thread is {doing} on this connection"
        ))),
    }
}

/// [`AioState::try_send`] of `buf[offset:offset+size]` (multiprocessing's checks), `buf` any
/// object with the buffer protocol.
pub fn try_send_arg(
    py: Python<'_>,
    state: &AioState,
    stream: &Stream,
    buf: &Bound<'_, PyAny>,
    (offset, size): (isize, Option<isize>),
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> PyResult<u8> {
    let start = usize::try_from(offset).unwrap_or(0);
    if let Ok(bytes) = buf.cast::<PyBytes>() {
        let data = slice_arg(bytes.as_bytes(), offset, size)?;
        return state.try_send(py, stream, buf, data, start, fds);
    }
    let view = Buffer::readable(buf)?;
    let data = slice_arg(view.as_slice(), offset, size)?;
    state.try_send(py, stream, buf, data, start, fds)
}

/// Once a frame has started (its first bytes sent, or a large message's header received), how
/// long one call waits here for its next piece (room to send it, or its arrival) before it
/// goes back to the event loop: the peer has stalled, or is busy elsewhere.
pub const FLOWING: Duration = Duration::from_micros(250);
/// The most one call spends waiting for pieces of a started frame: with the copies of what it
/// moves meanwhile, about the longest it holds up the event loop. About what a 1 MiB frame takes
/// while the peer keeps up; a larger frame goes in several calls, the loop running between them.
pub const FLOWING_BUDGET: Duration = Duration::from_millis(1);

/// Sends more of a frame part way out; whether it is all out.
///
/// A frame stops part way when the kernel buffer is full; if the peer is reading, room comes
/// soon. So this waits for room here (`poll`, with the GIL released) and sends on, as a
/// blocking send would, instead of going back to the event loop for every buffer-full: at most
/// [`FLOWING`] for room and [`FLOWING_BUDGET`] in all. Then the event loop waits for the rest.
fn push(py: Python<'_>, stream: &Stream, pending: &mut PendingTx) -> PyResult<bool> {
    let mut started: Option<Instant> = None;
    loop {
        let body = &pending.data.as_slice()[pending.start..pending.end];
        let (head, body) = match pending.head[..pending.hlen].get(pending.sent..) {
            Some(rest) if !rest.is_empty() => (rest, body),
            _ => (&[][..], &body[pending.sent - pending.hlen..]),
        };
        let total = head.len() + body.len();
        let n = stream
            .send_nowait(head, body, &[])
            .map_err(|e| crate::py::errors::to_py(e, None))?;
        if n == total {
            return Ok(true);
        }
        pending.sent += n;
        let start = *started.get_or_insert_with(Instant::now);
        if !flowing(py, stream, Ready::Write, start, n > 0) {
            return Ok(false);
        }
    }
}

/// Whether to try again, within [`FLOWING_BUDGET`] of `start`: after an attempt that
/// `progressed`, at once (having offered the CPU to the peer, which on the same CPU is what
/// moves the data on); after one that did not, once the stream is ready, waited for (GIL
/// released) up to [`FLOWING`].
fn flowing(
    py: Python<'_>,
    stream: &Stream,
    ready: Ready,
    start: Instant,
    progressed: bool,
) -> bool {
    let Some(left) = FLOWING_BUDGET.checked_sub(start.elapsed()) else {
        return false;
    };
    if progressed {
        // GIL released: a preemption here holds up no other thread of this process.
        py.detach(std::thread::yield_now);
        return true;
    }
    let fd = stream.as_fd();
    // A poll error counts as not ready: the next attempt reports it.
    matches!(
        py.detach(|| poll_once(fd, ready, left.min(FLOWING))),
        Ok(true)
    )
}

/// Reads more of a large message; whether it is complete.
///
/// Once a large message's header is in, the rest is usually on its way: its sender's one
/// `sendmsg` queues it a piece at a time (as the kernel buffer allows), and each piece wakes
/// the receiver. So while pieces keep coming, this waits for the next one here (`poll`, with
/// the GIL released) and copies it in, as a blocking receive would, instead of going back to
/// the event loop for every piece: at most [`FLOWING`] for a piece and [`FLOWING_BUDGET`] in
/// all. Then, or if the connection breaks, what arrived stays in `pending` for the next call.
fn continue_large(
    py: Python<'_>,
    stream: &Stream,
    reader: &mut crate::socket::Reader<'_>,
    pending: &mut PendingRx,
) -> PyResult<bool> {
    let dst = pending.fresh.as_mut_slice();
    let len = dst.len();
    let mut started: Option<Instant> = None;
    loop {
        let before = pending.got;
        reader.read_payload_nowait(dst, &mut pending.got).py_err()?;
        if pending.got == len {
            return Ok(true);
        }
        let start = *started.get_or_insert_with(Instant::now);
        if !flowing(py, stream, Ready::Read, start, pending.got > before) {
            return Ok(false);
        }
    }
}

/// The error of a blocking call on a connection that `fastipc.aio` holds.
pub fn wrapped_error(address: &str) -> PyErr {
    PyRuntimeError::new_err(format!(
        "the connection to {address} is in use by fastipc.aio.Connection: \
         its blocking calls refuse until detach() gives it back"
    ))
}
