//! `fastipc.Channel` and `fastipc.channel()`: a duplex pair of rings with the `Connection` API.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple, PyType};

use crate::channel::{end, End};
use crate::py::buffer::{Buffer, Readable};
use crate::py::errors::IntoPy;
use crate::py::ringops::Owner;
use crate::py::slot::{Closable, Slot};
use crate::py::timeout_arg;
use crate::py::views::{MessageView, Reservation};
use crate::wait::Deadline;

impl Closable for End {
    fn mark_closed(&self) {
        self.local().mark_closed();
        self.mark_closed();
    }
}

/// One end of a duplex pair of rings in shared memory.
#[pyclass(subclass, frozen, module = "fastipc", name = "Channel")]
pub struct Channel {
    core: Slot<End>,
    name: Option<String>,
    label: String,
    capacity: u64,
    /// The timeout's bits (`f64::to_bits`), `NO_TIMEOUT` for none: read on every call, no lock.
    timeout: AtomicU64,
}

const NO_TIMEOUT: u64 = u64::MAX;

fn deadline(timeout: Option<f64>) -> PyResult<Deadline> {
    Ok(Deadline::after(timeout_arg(timeout)?))
}

impl Channel {
    fn wrap(core: End) -> Channel {
        let seg = core.segment();
        let name = seg.name().map(str::to_string);
        Channel {
            label: name.clone().unwrap_or_else(|| "anonymous channel".into()),
            capacity: seg.capacity(),
            name,
            core: Slot::new(core),
            timeout: AtomicU64::new(NO_TIMEOUT),
        }
    }

    fn owner(&self) -> PyResult<Owner> {
        Ok(Owner::Channel(self.core.get(&self.label)?))
    }

    fn until(&self) -> PyResult<Deadline> {
        match self.gettimeout() {
            None => Ok(Deadline::NEVER),
            timeout => deadline(timeout),
        }
    }
}

/// A connected pair of channel ends over an anonymous (sealed memfd) segment.
#[pyfunction]
#[pyo3(signature = (capacity=1_048_576))]
pub fn channel(py: Python<'_>, capacity: i64) -> PyResult<(Channel, Channel)> {
    let cap =
        u64::try_from(capacity).map_err(|_| PyValueError::new_err("capacity must be positive"))?;
    let (a, b) = py.detach(|| end::pair(cap)).py_err()?;
    Ok((Channel::wrap(a), Channel::wrap(b)))
}

#[pymethods]
impl Channel {
    #[classattr]
    const DEFAULT_CAPACITY: u64 = 1 << 20;

    /// Creates the named channel `name` (this end; the other is `Channel.open(name)`).
    #[classmethod]
    #[pyo3(signature = (name, *, capacity=1_048_576, mode=0o600))]
    fn create(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        name: &str,
        capacity: i64,
        mode: u32,
    ) -> PyResult<Self> {
        let cap = u64::try_from(capacity)
            .map_err(|_| PyValueError::new_err("capacity must be positive"))?;
        let core = py.detach(|| End::create(name, cap, mode)).py_err()?;
        Ok(Channel::wrap(core))
    }

    /// Opens the other end of the named channel `name`.
    #[classmethod]
    fn open(_cls: &Bound<'_, PyType>, py: Python<'_>, name: &str) -> PyResult<Self> {
        let core = py.detach(|| End::open(name)).py_err()?;
        Ok(Channel::wrap(core))
    }

    #[staticmethod]
    fn _rebuild(
        index: usize,
        seg: &Bound<'_, PyAny>,
        mine: &Bound<'_, PyAny>,
        theirs: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let mut fds = Vec::with_capacity(3);
        for d in [seg, mine, theirs] {
            let raw: i32 = d.call_method0("detach")?.extract()?;
            fds.push(crate::py::fds::adopt(raw)?);
        }
        let theirs = fds.pop();
        let mine = fds.pop();
        let seg = fds.pop();
        let (Some(seg), Some(mine), Some(theirs)) = (seg, mine, theirs) else {
            return Err(PyValueError::new_err("three descriptors expected"));
        };
        let core = End::from_fds(index, seg, mine, theirs).py_err()?;
        let this = Channel::wrap(core);
        this.settimeout(timeout)?;
        Ok(this)
    }

    #[getter]
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    #[getter]
    fn capacity(&self) -> u64 {
        self.capacity
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.is_closed()
    }

    #[pyo3(signature = (buf, offset=0, size=None))]
    fn send_bytes(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: i64,
        size: Option<i64>,
    ) -> PyResult<()> {
        let data = Readable::of(buf)?;
        let bytes = data.as_slice();
        let start = usize::try_from(offset)
            .ok()
            .filter(|o| *o <= bytes.len())
            .ok_or_else(|| PyValueError::new_err("offset is negative or past the buffer"))?;
        let end = match size {
            None => bytes.len(),
            Some(s) => usize::try_from(s)
                .ok()
                .and_then(|s| start.checked_add(s))
                .filter(|e| *e <= bytes.len())
                .ok_or_else(|| PyValueError::new_err("size is negative or goes past the buffer"))?,
        };
        self.owner()?
            .send_bytes(py, &bytes[start..end], self.until()?)
    }

    #[pyo3(signature = (maxlength=None))]
    fn recv_bytes(&self, py: Python<'_>, maxlength: Option<i64>) -> PyResult<Py<PyBytes>> {
        let max = match maxlength {
            None => None,
            Some(m) => {
                Some(usize::try_from(m).map_err(|_| PyValueError::new_err("negative maxlength"))?)
            }
        };
        self.owner()?.recv_bytes(py, self.until()?, max)
    }

    #[pyo3(signature = (buf, offset=0))]
    fn recv_bytes_into(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: i64,
    ) -> PyResult<usize> {
        let mut dst = Buffer::writable(buf)?;
        let offset =
            usize::try_from(offset).map_err(|_| PyValueError::new_err("negative offset"))?;
        self.owner()?
            .recv_into(py, self.until()?, dst.as_mut_slice()?, offset)
    }

    fn send(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.owner()?.send_obj(py, obj, self.until()?)
    }

    fn recv(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.owner()?.recv_obj(py, self.until()?)
    }

    #[pyo3(signature = (timeout=0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let owner = self.owner()?;
        match owner.acquire(py, deadline(timeout)?) {
            Ok(msg) => {
                owner.rx().keep(msg);
                Ok(true)
            }
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyEOFError>(py) => Ok(true),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyTimeoutError>(py) => Ok(false),
            Err(e) => Err(e),
        }
    }

    #[pyo3(signature = (timeout=None))]
    fn get_view(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<MessageView> {
        let owner = self.owner()?;
        let until = match timeout {
            Some(_) => deadline(timeout)?,
            None => self.until()?,
        };
        let msg = owner.take(py, until)?;
        Ok(MessageView::new(owner, msg))
    }

    #[pyo3(signature = (n, timeout=None))]
    fn reserve(&self, py: Python<'_>, n: i64, timeout: Option<f64>) -> PyResult<Reservation> {
        let n = usize::try_from(n).map_err(|_| PyValueError::new_err("n must be non-negative"))?;
        let owner = self.owner()?;
        let until = match timeout {
            Some(_) => deadline(timeout)?,
            None => self.until()?,
        };
        let (slot, big) = owner.reserve_message(py, n, until)?;
        Ok(Reservation::new(owner, n, slot, big))
    }

    fn settimeout(&self, timeout: Option<f64>) -> PyResult<()> {
        timeout_arg(timeout)?;
        let bits = timeout.map_or(NO_TIMEOUT, f64::to_bits);
        self.timeout.store(bits, Ordering::Relaxed);
        Ok(())
    }

    fn gettimeout(&self) -> Option<f64> {
        match self.timeout.load(Ordering::Relaxed) {
            NO_TIMEOUT => None,
            bits => Some(f64::from_bits(bits)),
        }
    }

    fn fileno(&self) -> PyResult<i32> {
        crate::py::notify::fileno(&self.owner()?, true)
    }

    fn space_fileno(&self) -> PyResult<i32> {
        crate::py::notify::fileno(&self.owner()?, false)
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        crate::py::ringhandle::close(py, &self.core, &self.label, End::local, Owner::Channel)
    }

    fn unlink(&self, py: Python<'_>) -> PyResult<()> {
        crate::py::ringhandle::unlink(py, self.name.as_deref(), "channel")
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (exc_type, exc, tb))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let _ = (exc_type, exc, tb);
        self.close(py)
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let this = slf.get();
        let core = this.core.get(&this.label)?;
        let Some((mine, theirs)) = core.pipes() else {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "a named channel end cannot be pickled: open it by name in the other process",
            ));
        };
        let what = "a channel end";
        let seg = crate::py::notify::dup_for_child(py, core.segment().fd(), what)?;
        let mine = crate::py::notify::dup_for_child(py, mine.as_fd(), what)?;
        let theirs = crate::py::notify::dup_for_child(py, theirs.as_fd(), what)?;
        let timeout = this.gettimeout().into_pyobject(py)?.into_any();
        let args = PyTuple::new(
            py,
            [
                core.index().into_pyobject(py)?.into_any(),
                seg,
                mine,
                theirs,
                timeout,
            ],
        )?;
        Ok((slf.get_type().getattr("_rebuild")?, args))
    }

    fn __repr__(&self) -> String {
        format!(
            "<fastipc.Channel {} capacity={}{}>",
            self.label,
            self.capacity,
            if self.core.is_closed() { " closed" } else { "" }
        )
    }
}
