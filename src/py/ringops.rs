//! What `Queue` and `Channel` share: sending and receiving bytes through a ring with the GIL
//! held on the fast path (no wait: two atomics and a copy) and released for every wait, and the
//! conversion of the core's errors. Objects (pickling) are in [`super::ringpickle`].

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::channel::layout::F_BIG;
use crate::channel::local::Local;
use crate::channel::{big, end, End, Msg, Queue, Ring, Slot, Waiting};
use crate::error::Error;
use crate::py::blocking::SignalCheck;
use crate::py::errors::to_py;
use crate::shm::SharedMemory;
use crate::sys::shm::Mapping;
use crate::wait::{Deadline, Uninterrupted};

/// Whether `deadline` asks not to wait at all (read the clock only when there is one).
fn is_now(deadline: Deadline) -> bool {
    deadline
        .remaining()
        .is_some_and(|left| left == std::time::Duration::ZERO)
}

/// How long a receive spins with the GIL held before releasing it.
const GIL_SPIN: std::time::Duration = std::time::Duration::from_micros(5);

pyo3::import_exception!(queue, Empty);
pyo3::import_exception!(queue, Full);

/// A received message: in the ring (the consumers' lock held until [`Owner::done`]), or in a
/// segment of its own (a big message, its ring slot already freed).
pub enum Got {
    /// In the ring.
    Ring(Msg),
    /// In its own mapping: the mapping, the length, the flags.
    Big(Arc<Mapping>, usize, u32),
}

impl Got {
    /// Payload length.
    pub fn len(&self) -> usize {
        match self {
            Got::Ring(m) => m.len,
            Got::Big(_, len, _) => *len,
        }
    }

    pub(super) fn flags(&self) -> u32 {
        match self {
            Got::Ring(m) => m.flags,
            Got::Big(_, _, f) => *f,
        }
    }
}

/// Where a message being sent goes.
enum Dest<'a> {
    Ring(&'a Ring, Slot),
    Big(SharedMemory),
}

impl Dest<'_> {
    fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), Error> {
        match self {
            Dest::Ring(ring, slot) => ring.write(slot, offset, bytes),
            Dest::Big(shm) => shm
                .mapping()
                .write_at(offset, bytes)
                .map_err(|e| Error::os(e, "write", "big message")),
        }
    }
}

/// The object behind a queue or a channel end.
#[derive(Clone)]
pub enum Owner {
    /// A queue: sends and receives on its one ring; a timeout is `queue.Full` / `queue.Empty`.
    Queue(Arc<Queue>),
    /// A channel end: sends on one ring, receives on the other; a timeout is `TimeoutError`.
    Channel(Arc<End>),
}

impl Owner {
    /// The ring sends go to.
    pub fn tx(&self) -> &Ring {
        match self {
            Owner::Queue(q) => q.ring(),
            Owner::Channel(e) => e.tx(),
        }
    }

    /// The ring receives come from.
    pub fn rx(&self) -> &Ring {
        match self {
            Owner::Queue(q) => q.ring(),
            Owner::Channel(e) => e.rx(),
        }
    }

    /// The handle's own state (closed, views held).
    pub fn local(&self) -> &Local {
        match self {
            Owner::Queue(q) => q.local(),
            Owner::Channel(e) => e.local(),
        }
    }

    /// A corrupt channel error once the segment, or the segment of the received message, was
    /// found shrunk under this process by another one (see `sys::sigbus`).
    pub fn got_intact(&self, got: &Got) -> Result<(), Error> {
        match got {
            Got::Ring(_) => self.rx().region().intact(),
            Got::Big(map, _, _) => big::intact(map),
        }
    }

    fn what(&self) -> &'static str {
        match self {
            Owner::Queue(_) => "queue",
            Owner::Channel(_) => "channel",
        }
    }

    /// The Python exception for a core error of a send (`sending`) or a receive.
    pub fn error(&self, err: Error, pending: Option<PyErr>, sending: bool) -> PyErr {
        // A segment shrunk under this process: that is the error, whatever the zero pages it
        // reads now made the call conclude (a peer gone, an empty ring); an interrupt's
        // exception goes first, the next call reports the truncation.
        let err = match err {
            Error::Interrupted => err,
            err => self.tx().region().intact().map_or_else(|e| e, |()| err),
        };
        match (self, err) {
            (Owner::Queue(_), Error::Timeout { .. }) if sending => Full::new_err(()),
            (Owner::Queue(_), Error::Timeout { .. }) => Empty::new_err(()),
            (_, err) => to_py(err, pending),
        }
    }

    /// Runs `op` on a [`Waiting`] bounded by `deadline` with the GIL released; a channel's
    /// waits end when the peer is gone (EOF for a receive, EPIPE for a send).
    fn wait<T: Send>(
        &self,
        py: Python<'_>,
        deadline: Deadline,
        sending: bool,
        op: impl FnOnce(&mut Waiting<'_>) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        let mut check = SignalCheck::default();
        let what = self.what();
        let result = py.detach(|| {
            // Before each sleep, at most every 5 ms: a ping-pong sleeps once per message.
            let peer = |e: &End| -> Result<(), Error> {
                if !e.peer_gone_paced(5) {
                    Ok(())
                } else if sending {
                    Err(end::broken())
                } else {
                    Err(end::eof())
                }
            };
            let mut w = Waiting::new(deadline, &mut check, what);
            // A close() from another thread ends the wait at its next slice (EBADF).
            let op_name = if sending { "send" } else { "receive" };
            match self {
                Owner::Channel(e) => {
                    let check_peer = || {
                        e.local().check_open(op_name, what)?;
                        peer(e)
                    };
                    w.peer = Some(&check_peer);
                    op(&mut w)
                }
                Owner::Queue(q) => {
                    let check_closed = || q.local().check_open(op_name, what);
                    w.peer = Some(&check_closed);
                    op(&mut w)
                }
            }
        });
        result.map_err(|e| self.error(e, check.pending.take(), sending))
    }

    /// Reserves `len` bytes on the send ring (the producers' lock is held on return).
    pub fn reserve(&self, py: Python<'_>, len: usize, deadline: Deadline) -> PyResult<Slot> {
        if let Owner::Channel(e) = self {
            e.send_check().map_err(|err| self.error(err, None, true))?;
        }
        let ring = self.tx();
        let mut un = Uninterrupted;
        match ring.reserve(len, &mut Waiting::nonblocking(&mut un, self.what())) {
            Ok(slot) => return Ok(slot),
            Err(Error::Timeout { .. }) if !is_now(deadline) => {}
            Err(err) => return Err(self.error(err, None, true)),
        }
        self.wait(py, deadline, true, |w| ring.reserve(len, w))
    }

    /// Waits for a message on the receive ring (the consumers' lock is held on return).
    pub fn acquire(&self, py: Python<'_>, deadline: Deadline) -> PyResult<Msg> {
        let ring = self.rx();
        let mut un = Uninterrupted;
        let now = is_now(deadline);
        for attempt in 0..2 {
            // A ring seen empty without the lock is not worth taking the lock for (nor the
            // timeout error a miss builds): a message is waited for below.
            if now || attempt == 1 || ring.may_have_data() {
                match ring.acquire(&mut Waiting::nonblocking(&mut un, self.what())) {
                    Ok(msg) => return Ok(msg),
                    Err(Error::Timeout { .. }) => {}
                    Err(err) => return Err(self.error(err, None, false)),
                }
            }
            // A peer busy on another CPU answers within microseconds: wait that long with the
            // GIL held (releasing it costs more than the wait), then release it.
            if now || attempt == 1 || !ring.spin_for_data(GIL_SPIN) {
                break;
            }
        }
        if now {
            if let Owner::Channel(e) = self {
                if e.peer_gone() && !ring.has_data() {
                    return Err(self.error(end::eof(), None, false));
                }
            }
            return Err(self.error(
                Error::Timeout {
                    what: String::new(),
                },
                None,
                false,
            ));
        }
        self.wait(py, deadline, false, |w| ring.acquire(w))
    }

    /// Sends one message of `total` bytes that `fill` writes (at offsets), with `flags`: in the
    /// ring, or in a segment of its own when it is larger than the ring carries.
    pub(super) fn send_with(
        &self,
        py: Python<'_>,
        total: usize,
        flags: u32,
        deadline: Deadline,
        fill: impl FnOnce(&dyn Fn(usize, &[u8]) -> Result<(), Error>) -> Result<(), Error>,
    ) -> PyResult<()> {
        let ring = self.tx();
        if total <= ring.max_inline() {
            let slot = self.reserve(py, total, deadline)?;
            let dest = Dest::Ring(ring, slot);
            if let Err(err) = fill(&|off, b| dest.write(off, b)) {
                ring.abort(slot);
                return Err(self.error(err, None, true));
            }
            return ring
                .publish(slot, total, flags)
                .map_err(|err| self.error(err, None, true));
        }
        if let Owner::Channel(e) = self {
            e.send_check().map_err(|err| self.error(err, None, true))?;
        }
        let shm = big::create(total).map_err(|e| self.error(e, None, true))?;
        let dest = Dest::Big(shm);
        let written = fill(&|off, b| dest.write(off, b));
        let Dest::Big(shm) = dest else {
            unreachable!("a big destination")
        };
        if let Err(err) = written.and_then(|()| big::still_whole(&shm, total)) {
            big::discard(shm);
            return Err(self.error(err, None, true));
        }
        let reference = big::reference(&shm, total);
        match self.reserve(py, reference.len(), deadline) {
            Ok(slot) => {
                if let Err(err) = ring.write(&slot, 0, &reference) {
                    ring.abort(slot);
                    big::discard(shm);
                    return Err(self.error(err, None, true));
                }
                ring.publish(slot, reference.len(), flags | F_BIG)
                    .map_err(|err| {
                        big::discard(shm);
                        self.error(err, None, true)
                    })
            }
            Err(err) => {
                big::discard(shm);
                Err(err)
            }
        }
    }

    /// Sends the bytes of `data` as one message.
    pub fn send_bytes(&self, py: Python<'_>, data: &[u8], deadline: Deadline) -> PyResult<()> {
        self.send_with(py, data.len(), 0, deadline, |write| write(0, data))
    }

    /// Reserves `n` bytes for a message written in place: in the ring, or in a segment of its
    /// own for a big one (then the ring slot of its reference is reserved too).
    pub fn reserve_message(
        &self,
        py: Python<'_>,
        n: usize,
        deadline: Deadline,
    ) -> PyResult<(Slot, Option<SharedMemory>)> {
        if n <= self.tx().max_inline() {
            return Ok((self.reserve(py, n, deadline)?, None));
        }
        let shm = big::create(n).map_err(|e| self.error(e, None, true))?;
        match self.reserve(py, big::MAX_REFERENCE, deadline) {
            Ok(slot) => Ok((slot, Some(shm))),
            Err(err) => {
                big::discard(shm);
                Err(err)
            }
        }
    }

    /// Takes the next message; a big one is mapped and its ring slot freed at once.
    pub fn take(&self, py: Python<'_>, deadline: Deadline) -> PyResult<Got> {
        let msg = self.acquire(py, deadline)?;
        if msg.flags & F_BIG == 0 {
            return Ok(Got::Ring(msg));
        }
        let ring = self.rx();
        let mut reference = vec![0u8; msg.len.min(big::MAX_REFERENCE + 1)];
        let read = ring.read(&msg, 0, &mut reference);
        ring.release(msg);
        read.map_err(|e| to_py(e, None))?;
        let (map, len) = py
            .detach(|| big::open(&reference))
            .map_err(|e| to_py(e, None))?;
        Ok(Got::Big(Arc::new(map), len, msg.flags & !F_BIG))
    }

    /// Copies bytes of a received message from `offset` into `dst`.
    pub fn read(&self, got: &Got, offset: usize, dst: &mut [u8]) -> Result<(), Error> {
        match got {
            Got::Ring(msg) => self.rx().read(msg, offset, dst),
            Got::Big(map, _, _) => map
                .read_at(offset, dst)
                .map_err(|e| Error::os(e, "read", "big message"))
                .and_then(|()| big::intact(map)),
        }
    }

    /// Ends a received message (frees its ring slot, or unmaps its segment).
    pub fn done(&self, got: Got) {
        if let Got::Ring(msg) = got {
            self.rx().release(msg);
        }
    }

    /// Receives one message as `bytes`; `maxlength` refuses (and consumes) a longer one.
    pub fn recv_bytes(
        &self,
        py: Python<'_>,
        deadline: Deadline,
        maxlength: Option<usize>,
    ) -> PyResult<Py<PyBytes>> {
        let got = self.take(py, deadline)?;
        let result = self.copy_out(py, &got, maxlength);
        self.done(got);
        result
    }

    fn copy_out(
        &self,
        py: Python<'_>,
        got: &Got,
        maxlength: Option<usize>,
    ) -> PyResult<Py<PyBytes>> {
        let len = got.len();
        if let Some(max) = maxlength.filter(|max| len > *max) {
            return Err(to_py(
                Error::MessageTooLarge {
                    size: len as u64,
                    limit: max as u64,
                    what: self.what().into(),
                },
                None,
            ));
        }
        let mut fresh = crate::py::buffer::Fresh::new(py, len)?;
        self.read(got, 0, fresh.as_mut_slice())
            .map_err(|e| to_py(e, None))?;
        Ok(fresh.bytes)
    }

    /// Receives one message into `dst` from `offset`; `BufferTooShort` (message consumed) if it
    /// does not fit.
    pub fn recv_into(
        &self,
        py: Python<'_>,
        deadline: Deadline,
        dst: &mut [u8],
        offset: usize,
    ) -> PyResult<usize> {
        if offset > dst.len() {
            return Err(PyValueError::new_err("offset out of range"));
        }
        let got = self.take(py, deadline)?;
        let len = got.len();
        let room = dst.len() - offset;
        if len > room {
            let mut whole = vec![0u8; len];
            let read = self.read(&got, 0, &mut whole);
            self.done(got);
            read.map_err(|e| to_py(e, None))?;
            return Err(to_py(Error::BufferTooShort { message: whole }, None));
        }
        let read = self.read(&got, 0, &mut dst[offset..offset + len]);
        self.done(got);
        read.map_err(|e| to_py(e, None))?;
        Ok(len)
    }
}
