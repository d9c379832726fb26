//! `fastipc.Queue` and `fastipc.JoinableQueue`: `multiprocessing.Queue` in shared memory.

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple, PyType};

use crate::channel::Queue as Core;
use crate::py::blocking::detached;
use crate::py::buffer::{Buffer, Readable};
use crate::py::errors::IntoPy;
use crate::py::ringops::{Empty, Full, Owner};
use crate::py::slot::{Closable, Slot};
use crate::py::timeout_arg;
use crate::py::views::{MessageView, Reservation};
use crate::wait::Deadline;

impl Closable for Core {
    fn mark_closed(&self) {
        self.local().mark_closed();
    }
}

/// A queue of messages in shared memory, many producers and many consumers.
#[pyclass(subclass, frozen, module = "fastipc", name = "Queue")]
pub struct Queue {
    core: Slot<Core>,
    name: Option<String>,
    label: String,
    capacity: u64,
    maxsize: u64,
}

/// `block`/`timeout` as a deadline, with the stdlib queue's rules.
fn deadline(block: bool, timeout: Option<f64>) -> PyResult<Deadline> {
    if !block {
        return Ok(Deadline::after(Some(Duration::ZERO)));
    }
    if timeout.is_some_and(|t| t < 0.0) {
        return Err(PyValueError::new_err(
            "'timeout' must be a non-negative number",
        ));
    }
    Ok(Deadline::after(timeout_arg(timeout)?))
}

fn count_arg(name: &str, value: i64) -> PyResult<u64> {
    u64::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("{name} must not be negative, not {value}")))
}

impl Queue {
    /// A new queue (joinable: counting unfinished tasks) from `Queue(...)`'s arguments.
    fn create(
        py: Python<'_>,
        maxsize: i64,
        capacity: i64,
        name: Option<&str>,
        mode: u32,
        joinable: bool,
    ) -> PyResult<Queue> {
        let cap = count_arg("capacity", capacity)?;
        let max = count_arg("maxsize", maxsize)?;
        let core = py
            .detach(|| Core::create(cap, max, name, mode, joinable))
            .py_err()?;
        Ok(Queue::wrap(core))
    }

    fn wrap(core: Core) -> Queue {
        let seg = core.segment();
        let name = seg.name().map(str::to_string);
        Queue {
            label: name.clone().unwrap_or_else(|| "anonymous queue".into()),
            capacity: seg.capacity(),
            maxsize: seg.maxsize(),
            name,
            core: Slot::new(core),
        }
    }

    fn owner(&self) -> PyResult<Owner> {
        Ok(Owner::Queue(self.core.get(&self.label)?))
    }

    /// The queue; `IPCError` once its segment was found shrunk under this process.
    pub(crate) fn core(&self) -> PyResult<std::sync::Arc<Core>> {
        let core = self.core.get(&self.label)?;
        core.ring().region().intact().py_err()?;
        Ok(core)
    }

    fn build<'py>(cls: &Bound<'py, PyType>, core: Core) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        let joinable_cls = cls.is_subclass_of::<JoinableQueue>()?;
        if joinable_cls != core.joinable() {
            return Err(crate::py::errors::to_py(
                crate::error::Error::Corrupt {
                    what: "a queue and a joinable queue are not interchangeable".into(),
                },
                None,
            ));
        }
        let init = PyClassInitializer::from(Queue::wrap(core));
        if joinable_cls {
            Ok(Bound::new(py, init.add_subclass(JoinableQueue))?.into_any())
        } else {
            Ok(Bound::new(py, init)?.into_any())
        }
    }
}

#[pymethods]
impl Queue {
    #[new]
    #[pyo3(signature = (maxsize=0, *, capacity=1_048_576, name=None, mode=0o600))]
    fn new(
        py: Python<'_>,
        maxsize: i64,
        capacity: i64,
        name: Option<&str>,
        mode: u32,
    ) -> PyResult<Self> {
        Queue::create(py, maxsize, capacity, name, mode, false)
    }

    /// Opens the named queue another process created.
    #[classmethod]
    fn open<'py>(cls: &Bound<'py, PyType>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let core = cls.py().detach(|| Core::open(name)).py_err()?;
        Queue::build(cls, core)
    }

    #[classmethod]
    fn _rebuild<'py>(
        cls: &Bound<'py, PyType>,
        fd: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let raw: i32 = fd.call_method0("detach")?.extract()?;
        let fd = crate::py::fds::adopt(raw)?;
        let core = Core::from_fd(fd).py_err()?;
        Queue::build(cls, core)
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
    fn maxsize(&self) -> u64 {
        self.maxsize
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.is_closed()
    }

    #[pyo3(signature = (obj, block=true, timeout=None))]
    fn put(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        self.owner()?.send_obj(py, obj, deadline(block, timeout)?)
    }

    #[pyo3(signature = (block=true, timeout=None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        self.owner()?.recv_obj(py, deadline(block, timeout)?)
    }

    fn put_nowait(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.put(py, obj, false, None)
    }

    fn get_nowait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.get(py, false, None)
    }

    #[pyo3(signature = (buf, block=true, timeout=None))]
    fn put_bytes(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let data = Readable::of(buf)?;
        self.owner()?
            .send_bytes(py, data.as_slice(), deadline(block, timeout)?)
    }

    #[pyo3(signature = (block=true, timeout=None))]
    fn get_bytes(
        &self,
        py: Python<'_>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Py<pyo3::types::PyBytes>> {
        self.owner()?
            .recv_bytes(py, deadline(block, timeout)?, None)
    }

    #[pyo3(signature = (buffer, block=true, timeout=None))]
    fn get_bytes_into(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let mut dst = Buffer::writable(buffer)?;
        let owner = self.owner()?;
        owner.recv_into(py, deadline(block, timeout)?, dst.as_mut_slice()?, 0)
    }

    #[pyo3(signature = (items, block=true, timeout=None))]
    fn put_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let owner = self.owner()?;
        let until = deadline(block, timeout)?;
        let mut n = 0usize;
        for item in items.try_iter()? {
            let item = item?;
            match owner.send_obj(py, &item, until) {
                Ok(()) => n += 1,
                Err(e) if e.is_instance_of::<Full>(py) => return Err(Full::new_err((n,))),
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    #[pyo3(signature = (max_items, timeout=None))]
    fn get_many(
        &self,
        py: Python<'_>,
        max_items: i64,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyList>> {
        if max_items < 1 {
            return Err(PyValueError::new_err("max_items must be at least 1"));
        }
        let owner = self.owner()?;
        let out = PyList::empty(py);
        out.append(owner.recv_obj(py, deadline(true, timeout)?)?)?;
        let now = Deadline::after(Some(Duration::ZERO));
        while i64::try_from(out.len()).unwrap_or(i64::MAX) < max_items {
            match owner.recv_obj(py, now) {
                Ok(obj) => out.append(obj)?,
                Err(e) if e.is_instance_of::<Empty>(py) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out.unbind())
    }

    #[pyo3(signature = (block=true, timeout=None))]
    fn get_view(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<MessageView> {
        let owner = self.owner()?;
        let msg = owner.take(py, deadline(block, timeout)?)?;
        Ok(MessageView::new(owner, msg))
    }

    #[pyo3(signature = (n, block=true, timeout=None))]
    fn reserve(
        &self,
        py: Python<'_>,
        n: i64,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Reservation> {
        let n = usize::try_from(n).map_err(|_| PyValueError::new_err("n must be non-negative"))?;
        let owner = self.owner()?;
        let (slot, big) = owner.reserve_message(py, n, deadline(block, timeout)?)?;
        Ok(Reservation::new(owner, n, slot, big))
    }

    fn qsize(&self) -> PyResult<u64> {
        let core = self.core()?;
        let n = core.ring().count();
        core.ring().region().intact().py_err().map(|()| n)
    }

    fn empty(&self) -> PyResult<bool> {
        let core = self.core()?;
        let empty = !core.ring().has_data();
        core.ring().region().intact().py_err().map(|()| empty)
    }

    fn full(&self) -> PyResult<bool> {
        let core = self.core()?;
        let full = !core.ring().has_space(0);
        core.ring().region().intact().py_err().map(|()| full)
    }

    fn fileno(&self) -> PyResult<i32> {
        crate::py::notify::fileno(&self.owner()?, true)
    }

    fn space_fileno(&self) -> PyResult<i32> {
        crate::py::notify::fileno(&self.owner()?, false)
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        crate::py::ringhandle::close(py, &self.core, &self.label, Core::local, Owner::Queue)
    }

    fn unlink(&self, py: Python<'_>) -> PyResult<()> {
        crate::py::ringhandle::unlink(py, self.name.as_deref(), "queue")
    }

    fn join_thread(&self) {}

    fn cancel_join_thread(&self) {}

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
        let cls = slf.get_type();
        if let Some(name) = &this.name {
            return Ok((cls.getattr("open")?, PyTuple::new(py, [name])?));
        }
        let core = this.core()?;
        let fd = crate::py::notify::dup_for_child(py, core.segment().fd(), "an anonymous Queue")?;
        Ok((cls.getattr("_rebuild")?, PyTuple::new(py, [fd])?))
    }

    fn __repr__(&self) -> String {
        format!(
            "<fastipc.Queue {} capacity={}{}>",
            self.label,
            self.capacity,
            if self.core.is_closed() { " closed" } else { "" }
        )
    }
}

/// `multiprocessing.JoinableQueue` in shared memory.
#[pyclass(extends = Queue, subclass, frozen, module = "fastipc", name = "JoinableQueue")]
pub struct JoinableQueue;

#[pymethods]
impl JoinableQueue {
    #[new]
    #[pyo3(signature = (maxsize=0, *, capacity=1_048_576, name=None, mode=0o600))]
    fn new(
        py: Python<'_>,
        maxsize: i64,
        capacity: i64,
        name: Option<&str>,
        mode: u32,
    ) -> PyResult<PyClassInitializer<Self>> {
        let queue = Queue::create(py, maxsize, capacity, name, mode, true)?;
        Ok(PyClassInitializer::from(queue).add_subclass(JoinableQueue))
    }

    fn task_done(slf: &Bound<'_, Self>) -> PyResult<()> {
        let core = slf.as_super().get().core()?;
        let done = core.task_done();
        // A segment shrunk meanwhile: its zero pages say nothing about the tasks.
        core.ring().region().intact().py_err()?;
        done.py_err()
    }

    #[pyo3(signature = (timeout=None))]
    fn join(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<bool> {
        let core = slf.as_super().get().core()?;
        let until = Deadline::after(timeout_arg(timeout)?);
        let joined = detached(slf.py(), |check| core.join(until, check));
        core.ring().region().intact().py_err()?;
        joined
    }
}
