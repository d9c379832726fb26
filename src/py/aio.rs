//! The non-blocking entry points of `Connection` that `fastipc.aio` drives from an event loop.
//!
//! Each call makes one attempt and never waits: the event loop waits for readiness and calls
//! again. What a frame leaves half done between attempts is kept here: the unsent rest of a
//! frame (the caller's buffer stays exported until it is out), and a large message being
//! received into the `bytes` object it will be. A small frame that is part way in stays in the
//! connection's receive buffer. So a caller that stops between attempts (a cancelled task)
//! loses nothing, and the next receive continues the same message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::{PyMemoryError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::Error;
use crate::frame;
use crate::py::buffer::{Buffer, Fresh};
use crate::py::connection::slice_arg;
use crate::py::errors::IntoPy;
use crate::socket::{Incoming, Kind, Stream};

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
            if self.lock_tx().is_some() {
                return Err(PyRuntimeError::new_err(
                    "a frame is still being sent: await its send before detach()",
                ));
            }
            if let Some(mut pending) = self.lock_rx().take() {
                let mut reader = stream.try_reader().py_err()?;
                let got = pending.got;
                reader.keep_partial(pending.fresh.as_mut_slice(), got);
            }
        }
        self.wrapped.store(on, Ordering::Release);
        Ok(())
    }

    fn lock_tx(&self) -> std::sync::MutexGuard<'_, Option<PendingTx>> {
        self.tx.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_rx(&self) -> std::sync::MutexGuard<'_, Option<PendingRx>> {
        self.rx.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One attempt at sending the frame of `data` (`obj[start..end]`) with `fds` on it.
    pub fn try_send(
        &self,
        stream: &Stream,
        obj: &Bound<'_, PyAny>,
        data: &[u8],
        start: usize,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> PyResult<u8> {
        let mut tx = self.lock_tx();
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
        *tx = Some(PendingTx {
            head,
            hlen,
            data: Buffer::readable(obj)?,
            start,
            end: start + data.len(),
            sent,
        });
        Ok(SENT_PART)
    }

    /// One attempt at sending more of the frame part way out: whether it is all out now
    /// (true as well when none was).
    pub fn send_more(&self, stream: &Stream) -> PyResult<bool> {
        let mut tx = self.lock_tx();
        let Some(pending) = tx.as_mut() else {
            return Ok(true);
        };
        let body = &pending.data.as_slice()[pending.start..pending.end];
        let (head, body) = match pending.head[..pending.hlen].get(pending.sent..) {
            Some(rest) if !rest.is_empty() => (rest, body),
            _ => (&[][..], &body[pending.sent - pending.hlen..]),
        };
        let total = head.len() + body.len();
        let result = stream.send_nowait(head, body, &[]);
        match result {
            Ok(n) if n == total => {
                // Releases the caller's buffer (attached: Buffer's drop takes the GIL).
                *tx = None;
                Ok(true)
            }
            Ok(n) => {
                pending.sent += n;
                Ok(false)
            }
            Err(e) => {
                // The stream is broken part way through a frame: nothing more can go.
                *tx = None;
                Err(crate::py::errors::to_py(e, None))
            }
        }
    }

    /// One attempt at receiving a message: `None` when it is not all there yet (what arrived
    /// is kept for the next attempt).
    pub fn try_recv(
        &self,
        py: Python<'_>,
        stream: &Stream,
        limit: Option<u64>,
    ) -> PyResult<Option<Message>> {
        let mut rx = self.lock_rx();
        let mut reader = stream.try_reader().py_err()?;
        if let Some(pending) = rx.as_mut() {
            let done = continue_large(&mut reader, pending)?;
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
                if continue_large(&mut reader, &mut pending)? {
                    return Ok(Some((pending.fresh.bytes, reader.take_fds())));
                }
                *rx = Some(pending);
                Ok(None)
            }
        }
    }
}

/// [`AioState::try_send`] of `buf[offset:offset+size]` (multiprocessing's checks), `buf` any
/// object with the buffer protocol.
pub fn try_send_arg(
    state: &AioState,
    stream: &Stream,
    buf: &Bound<'_, PyAny>,
    (offset, size): (isize, Option<isize>),
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> PyResult<u8> {
    let start = usize::try_from(offset).unwrap_or(0);
    if let Ok(bytes) = buf.cast::<PyBytes>() {
        let data = slice_arg(bytes.as_bytes(), offset, size)?;
        return state.try_send(stream, buf, data, start, fds);
    }
    let view = Buffer::readable(buf)?;
    let data = slice_arg(view.as_slice(), offset, size)?;
    state.try_send(stream, buf, data, start, fds)
}

/// Reads more of a large message; whether it is complete.
///
/// The rest of a large message is usually on its way: the sender's one `sendmsg` queues it a
/// piece at a time, and each piece wakes the receiver. So while a read makes progress, the
/// thread yields the CPU once (the sender goes on with its call, on this core or another) and
/// reads again, rather than going back to the event loop for every piece.
fn continue_large(
    reader: &mut crate::socket::Reader<'_>,
    pending: &mut PendingRx,
) -> PyResult<bool> {
    let dst = pending.fresh.as_mut_slice();
    let len = dst.len();
    loop {
        let before = pending.got;
        reader.read_payload_nowait(dst, &mut pending.got).py_err()?;
        if pending.got == len {
            return Ok(true);
        }
        if pending.got == before {
            return Ok(false);
        }
        std::thread::yield_now();
    }
}

/// The error of a blocking call on a connection that `fastipc.aio` holds.
pub fn wrapped_error(address: &str) -> PyErr {
    PyRuntimeError::new_err(format!(
        "the connection to {address} is in use by fastipc.aio.Connection: \
         its blocking calls refuse until detach() gives it back"
    ))
}
