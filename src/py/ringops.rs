//! What `Queue` and `Channel` share: sending and receiving through a ring with the GIL held on
//! the fast path (no wait: two atomics and a copy) and released for every wait, pickling with
//! protocol 5 and out-of-band buffers, and the conversion of the core's errors.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyMemoryView};

use crate::channel::layout::F_PICKLED;
use crate::channel::{end, End, Msg, Queue, Ring, Slot, Waiting};
use crate::error::Error;
use crate::py::blocking::SignalCheck;
use crate::py::errors::to_py;
use crate::wait::{Deadline, Uninterrupted};

/// How long a receive spins with the GIL held before releasing it.
const GIL_SPIN: std::time::Duration = std::time::Duration::from_micros(5);

pyo3::import_exception!(queue, Empty);
pyo3::import_exception!(queue, Full);

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

    fn what(&self) -> &'static str {
        match self {
            Owner::Queue(_) => "queue",
            Owner::Channel(_) => "channel",
        }
    }

    /// The Python exception for a core error of a send (`sending`) or a receive.
    pub fn error(&self, err: Error, pending: Option<PyErr>, sending: bool) -> PyErr {
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
            let peer = |e: &End| -> Result<(), Error> {
                if !e.peer_gone() {
                    Ok(())
                } else if sending {
                    Err(end::broken())
                } else {
                    Err(end::eof())
                }
            };
            let mut w = Waiting::new(deadline, &mut check, what);
            match self {
                Owner::Channel(e) => {
                    let check_peer = || peer(e);
                    w.peer = Some(&check_peer);
                    op(&mut w)
                }
                Owner::Queue(_) => op(&mut w),
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
            Err(Error::Timeout { .. })
                if deadline.remaining() != Some(std::time::Duration::ZERO) => {}
            Err(err) => return Err(self.error(err, None, true)),
        }
        self.wait(py, deadline, true, |w| ring.reserve(len, w))
    }

    /// Waits for a message on the receive ring (the consumers' lock is held on return).
    pub fn acquire(&self, py: Python<'_>, deadline: Deadline) -> PyResult<Msg> {
        let ring = self.rx();
        let mut un = Uninterrupted;
        let now = deadline.remaining() == Some(std::time::Duration::ZERO);
        for attempt in 0..2 {
            match ring.acquire(&mut Waiting::nonblocking(&mut un, self.what())) {
                Ok(msg) => return Ok(msg),
                Err(Error::Timeout { .. }) => {}
                Err(err) => return Err(self.error(err, None, false)),
            }
            // A peer busy on another CPU answers within microseconds: wait that long with the
            // GIL held (releasing it costs more than the wait), then release it.
            if now || attempt == 1 || !ring.spin_briefly(true, GIL_SPIN) {
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

    /// Sends the bytes of `data` as one message.
    pub fn send_bytes(&self, py: Python<'_>, data: &[u8], deadline: Deadline) -> PyResult<()> {
        let ring = self.tx();
        let slot = self.reserve(py, data.len(), deadline)?;
        if let Err(err) = ring.write(&slot, 0, data) {
            ring.abort(slot);
            return Err(self.error(err, None, true));
        }
        ring.publish(slot, data.len(), 0);
        Ok(())
    }

    /// Receives one message as `bytes`; `maxlength` refuses (and consumes) a longer one.
    pub fn recv_bytes(
        &self,
        py: Python<'_>,
        deadline: Deadline,
        maxlength: Option<usize>,
    ) -> PyResult<Py<PyBytes>> {
        let ring = self.rx();
        let msg = self.acquire(py, deadline)?;
        let result = self.copy_out(py, &msg, maxlength);
        ring.release(msg);
        result
    }

    fn copy_out(
        &self,
        py: Python<'_>,
        msg: &Msg,
        maxlength: Option<usize>,
    ) -> PyResult<Py<PyBytes>> {
        if maxlength.is_some_and(|max| msg.len > max) {
            return Err(to_py(
                Error::MessageTooLarge {
                    size: msg.len as u64,
                    limit: maxlength.unwrap_or(0) as u64,
                    what: self.what().into(),
                },
                None,
            ));
        }
        let mut fresh = crate::py::buffer::Fresh::new(py, msg.len)?;
        self.rx()
            .read(msg, 0, fresh.as_mut_slice())
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
        let ring = self.rx();
        let msg = self.acquire(py, deadline)?;
        let room = dst.len() - offset;
        if msg.len > room {
            let mut whole = vec![0u8; msg.len];
            let read = ring.read(&msg, 0, &mut whole);
            ring.release(msg);
            read.map_err(|e| to_py(e, None))?;
            return Err(to_py(Error::BufferTooShort { message: whole }, None));
        }
        let read = ring.read(&msg, 0, &mut dst[offset..offset + msg.len]);
        ring.release(msg);
        read.map_err(|e| to_py(e, None))?;
        Ok(msg.len)
    }

    /// Pickles `obj` (protocol 5) and sends it, out-of-band buffers copied straight into the ring.
    pub fn send_obj(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        deadline: Deadline,
    ) -> PyResult<()> {
        let (data, buffers) = dumps(py, obj)?;
        let data = data.as_bytes(py);
        let views: Vec<crate::py::buffer::Buffer> = buffers
            .iter()
            .map(|b| crate::py::buffer::Buffer::readable(b.bind(py)))
            .collect::<PyResult<_>>()?;
        let head = 16 + 8 * views.len();
        let mut total = head + data.len();
        for v in &views {
            total = total.div_ceil(8) * 8 + v.len();
        }
        let ring = self.tx();
        let slot = self.reserve(py, total, deadline)?;
        let mut header = Vec::with_capacity(head);
        header.extend_from_slice(&(views.len() as u64).to_le_bytes());
        header.extend_from_slice(&(data.len() as u64).to_le_bytes());
        for v in &views {
            header.extend_from_slice(&(v.len() as u64).to_le_bytes());
        }
        let mut at = head + data.len();
        let mut result = ring
            .write(&slot, 0, &header)
            .and_then(|()| ring.write(&slot, head, data));
        for v in &views {
            at = at.div_ceil(8) * 8;
            result = result.and_then(|()| ring.write(&slot, at, v.as_slice()));
            at += v.len();
        }
        if let Err(err) = result {
            ring.abort(slot);
            return Err(self.error(err, None, true));
        }
        ring.publish(slot, total, F_PICKLED);
        Ok(())
    }

    /// Receives one message and unpickles it (one copy out; out-of-band buffers are slices of it).
    pub fn recv_obj(&self, py: Python<'_>, deadline: Deadline) -> PyResult<Py<PyAny>> {
        let ring = self.rx();
        let msg = self.acquire(py, deadline)?;
        let framed = msg.flags & F_PICKLED != 0;
        let mut read = Ok(());
        let mut head = Vec::new();
        let copy = PyByteArray::new_with(py, msg.len, |b| {
            read = ring.read(&msg, 0, b);
            if framed {
                head = frame_head(b);
            }
            Ok(())
        });
        ring.release(msg);
        let copy = copy?;
        read.map_err(|e| to_py(e, None))?;
        loads(py, &copy, framed.then_some(head.as_slice()), msg.len)
    }
}

fn pickle_fn<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    static PICKLE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module = PICKLE.get_or_try_init(py, || py.import("pickle").map(Bound::unbind))?;
    module.bind(py).getattr(name)
}

/// `pickle.dumps(obj, 5)` and its out-of-band buffers (raw memoryviews), or in-band when a buffer
/// is not contiguous.
fn dumps(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<(Py<PyBytes>, Vec<Py<PyAny>>)> {
    let dumps = pickle_fn(py, "dumps")?;
    let list = PyList::empty(py);
    let kwargs = PyDict::new(py);
    kwargs.set_item("protocol", 5)?;
    kwargs.set_item("buffer_callback", list.getattr("append")?)?;
    let data = dumps.call((obj,), Some(&kwargs))?;
    let mut raws = Vec::with_capacity(list.len());
    for b in list.iter() {
        match b.call_method0("raw") {
            Ok(raw) => raws.push(raw.unbind()),
            Err(_) => {
                let data = dumps.call1((obj, 5))?;
                return Ok((data.cast_into::<PyBytes>()?.unbind(), Vec::new()));
            }
        }
    }
    Ok((data.cast_into::<PyBytes>()?.unbind(), raws))
}

fn corrupt_pickle() -> PyErr {
    to_py(
        Error::Corrupt {
            what: "a pickled message's header is out of bounds".into(),
        },
        None,
    )
}

fn field(b: &[u8], at: usize) -> PyResult<usize> {
    let bytes: [u8; 8] = b
        .get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(corrupt_pickle)?;
    usize::try_from(u64::from_le_bytes(bytes)).map_err(|_| corrupt_pickle())
}

/// The header of a pickled message (its count, pickle length and buffer lengths), copied out;
/// empty when it is out of bounds.
fn frame_head(b: &[u8]) -> Vec<u8> {
    let n = field(b, 0).unwrap_or(usize::MAX);
    let head = n.checked_mul(8).and_then(|x| x.checked_add(16));
    match head {
        Some(head) if head <= b.len() => b[..head].to_vec(),
        _ => Vec::new(),
    }
}

/// Unpickles a message received into `copy` (see [`Owner::send_obj`] for the format) whose
/// header `frame` was copied out (`None`: a plain pickle).
fn loads(
    py: Python<'_>,
    copy: &Bound<'_, PyByteArray>,
    frame: Option<&[u8]>,
    total: usize,
) -> PyResult<Py<PyAny>> {
    let loads = pickle_fn(py, "loads")?;
    let Some(bytes) = frame else {
        return Ok(loads.call1((copy,))?.unbind());
    };
    let n = field(bytes, 0)?;
    let data_len = field(bytes, 8)?;
    let head = bytes.len();
    if head != 16 + 8 * n || head > total || data_len > total - head {
        return Err(corrupt_pickle());
    }
    let view = PyMemoryView::from(copy.as_any())?;
    let mut at = head + data_len;
    let buffers = PyList::empty(py);
    for i in 0..n {
        let len = field(bytes, 16 + 8 * i)?;
        at = at.div_ceil(8) * 8;
        if at > total || len > total - at {
            return Err(corrupt_pickle());
        }
        buffers.append(view.get_item(pyo3::types::PySlice::new(
            py,
            at as isize,
            (at + len) as isize,
            1,
        ))?)?;
        at += len;
    }
    let data = view.get_item(pyo3::types::PySlice::new(
        py,
        head as isize,
        (head + data_len) as isize,
        1,
    ))?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("buffers", buffers)?;
    Ok(loads.call((data,), Some(&kwargs))?.unbind())
}
