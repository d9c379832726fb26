//! Objects through a queue or channel: pickle protocol 5 with its out-of-band buffers written
//! straight into the ring (or a big message's segment), and read back from a message where it
//! lies; a large pickle is unpickled from a buffer the receiving thread keeps.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyMemoryView, PyString};

use crate::channel::layout::F_PICKLED;
use crate::error::Error;
use crate::py::buffer::{Scratch, SCRATCH_MIN};
use crate::py::errors::to_py;
use crate::wait::Deadline;

use super::ringops::{Got, Owner};

pyo3::import_exception!(fastipc._errors, UnpicklingError);

impl Owner {
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
        let mut header = Vec::with_capacity(head);
        header.extend_from_slice(&(views.len() as u64).to_le_bytes());
        header.extend_from_slice(&(data.len() as u64).to_le_bytes());
        for v in &views {
            header.extend_from_slice(&(v.len() as u64).to_le_bytes());
        }
        self.send_with(py, total, F_PICKLED, deadline, |write| {
            write(0, &header)?;
            write(head, data)?;
            let mut at = head + data.len();
            for v in &views {
                at = at.div_ceil(8) * 8;
                write(at, v.as_slice())?;
                at += v.len();
            }
            Ok(())
        })
    }

    /// Receives one message and unpickles it (one copy out; out-of-band buffers are slices of it).
    pub fn recv_obj(&self, py: Python<'_>, deadline: Deadline) -> PyResult<Py<PyAny>> {
        let got = self.take(py, deadline)?;
        let (len, framed) = (got.len(), got.flags() & F_PICKLED != 0);
        if framed && len >= SCRATCH_MIN {
            return self.recv_large(py, got, len);
        }
        let mut read = Ok(());
        let mut head = Vec::new();
        let copy = PyByteArray::new_with(py, len, |b| {
            read = self.read(&got, 0, b);
            if framed {
                head = frame_head(b);
            }
            Ok(())
        });
        self.done(got);
        let copy = copy?;
        read.map_err(|e| to_py(e, None))?;
        loads(py, &copy, framed.then_some(head.as_slice()), len)
            .map_err(|e| unpickling_failed(py, e, len))
    }

    /// [`Owner::recv_obj`] of a large framed pickle: one without out-of-band buffers is read
    /// only while unpickled, so it goes in the thread's reusable buffer (see [`Scratch`]).
    fn recv_large(&self, py: Python<'_>, got: Got, len: usize) -> PyResult<Py<PyAny>> {
        let mut n = [1u8; 8];
        let in_band = self.read(&got, 0, &mut n).is_ok() && n == [0; 8];
        let (mut read, mut head) = (Ok(()), Vec::new());
        let copy = Scratch::fill(py, len, in_band, |b| {
            read = self.read(&got, 0, b);
            head = frame_head(b);
        });
        self.done(got);
        let copy = copy?;
        read.map_err(|e| to_py(e, None))?;
        let loaded = loads(py, copy.bytearray(), Some(&head), len);
        copy.give_back();
        loaded.map_err(|e| unpickling_failed(py, e, len))
    }
}

/// An exception of unpickling a received message of `len` bytes, as `UnpicklingError` (with the
/// original as its cause); a `BaseException` that is no `Exception` (`KeyboardInterrupt`) as is.
fn unpickling_failed(py: Python<'_>, e: PyErr, len: usize) -> PyErr {
    if !e.is_instance_of::<pyo3::exceptions::PyException>(py) {
        return e;
    }
    let wrapped = UnpicklingError::new_err(format!(
        "cannot unpickle the received message of {len} bytes: {}",
        e.value(py)
    ));
    wrapped.set_cause(py, Some(e));
    wrapped
}

fn pickle_fn<'py>(py: Python<'py>, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
    static PICKLE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module = PICKLE.get_or_try_init(py, || py.import("pickle").map(Bound::unbind))?;
    module.bind(py).getattr(name)
}

/// `pickle.dumps(obj, 5)` and its out-of-band buffers (raw memoryviews), or in-band when a buffer
/// is not contiguous.
fn dumps(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<(Py<PyBytes>, Vec<Py<PyAny>>)> {
    let dumps = pickle_fn(py, pyo3::intern!(py, "dumps"))?;
    let list = PyList::empty(py);
    let kwargs = PyDict::new(py);
    kwargs.set_item(pyo3::intern!(py, "protocol"), 5)?;
    kwargs.set_item(
        pyo3::intern!(py, "buffer_callback"),
        list.getattr(pyo3::intern!(py, "append"))?,
    )?;
    let data = dumps.call((obj,), Some(&kwargs))?;
    let mut raws = Vec::with_capacity(list.len());
    for b in list.iter() {
        if let Ok(raw) = b.call_method0(pyo3::intern!(py, "raw")) {
            raws.push(raw.unbind());
        } else {
            // Not contiguous: in-band after all.
            let data = dumps.call1((obj, 5))?;
            return Ok((data.cast_into::<PyBytes>()?.unbind(), Vec::new()));
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
    let loads = pickle_fn(py, pyo3::intern!(py, "loads"))?;
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
            isize::try_from(at).map_err(|_| corrupt_pickle())?,
            isize::try_from(at + len).map_err(|_| corrupt_pickle())?,
            1,
        ))?)?;
        at += len;
    }
    let data = view.get_item(pyo3::types::PySlice::new(
        py,
        isize::try_from(head).map_err(|_| corrupt_pickle())?,
        isize::try_from(head + data_len).map_err(|_| corrupt_pickle())?,
        1,
    ))?;
    let kwargs = PyDict::new(py);
    kwargs.set_item(pyo3::intern!(py, "buffers"), buffers)?;
    Ok(loads.call((data,), Some(&kwargs))?.unbind())
}
