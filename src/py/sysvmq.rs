//! `fastipc.SysVMessageQueue` and `fastipc.ftok`.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::py::blocking::detached;
use crate::py::buffer::Buffer;
use crate::py::errors::IntoPy;
use crate::py::slot::Slot;
use crate::py::timeout_arg;
use crate::sysvmq::{self as core, SysVQueue};

/// A System V message queue, with typed retrieval.
#[pyclass(frozen, module = "fastipc", name = "SysVMessageQueue")]
pub struct SysVMessageQueue {
    inner: Slot<SysVQueue>,
    what: String,
    key: i32,
    id: i32,
}

#[pymethods]
impl SysVMessageQueue {
    #[new]
    #[pyo3(signature = (key=None, *, path=None, project_id=None, create=false, mode=0o600))]
    fn new(
        py: Python<'_>,
        key: Option<i32>,
        path: Option<PathBuf>,
        project_id: Option<i32>,
        create: bool,
        mode: u32,
    ) -> PyResult<SysVMessageQueue> {
        let key = match (key, path, project_id) {
            (Some(k), None, None) => Some(k),
            (None, Some(p), Some(id)) => Some(core::ftok(&p, id).py_err()?),
            (None, None, None) => None,
            _ => {
                return Err(PyValueError::new_err(
                    "give either a key, or a path and a project_id (for ftok), or none of them for a new private queue",
                ))
            }
        };
        let q = py.detach(|| SysVQueue::open(key, create, mode)).py_err()?;
        Ok(SysVMessageQueue {
            what: q.what().to_string(),
            key: q.key(),
            id: q.id(),
            inner: Slot::new(q),
        })
    }

    /// The key (0 for a private queue).
    #[getter]
    fn key(&self) -> i32 {
        self.key
    }

    /// The kernel's queue id (as `ipcs -q` shows).
    #[getter]
    fn id(&self) -> i32 {
        self.id
    }

    /// Messages in the queue now.
    #[getter]
    fn current_messages(&self) -> PyResult<u64> {
        Ok(self.inner.get(&self.what)?.stat().py_err()?.messages)
    }

    /// Bytes the queue holds at most (`msg_qbytes`).
    #[getter]
    fn max_bytes(&self) -> PyResult<u64> {
        Ok(self.inner.get(&self.what)?.stat().py_err()?.max_bytes)
    }

    /// Pid of the last sender.
    #[getter]
    fn last_send_pid(&self) -> PyResult<i32> {
        Ok(self.inner.get(&self.what)?.stat().py_err()?.last_send_pid)
    }

    /// Pid of the last receiver.
    #[getter]
    fn last_receive_pid(&self) -> PyResult<i32> {
        Ok(self
            .inner
            .get(&self.what)?
            .stat()
            .py_err()?
            .last_receive_pid)
    }

    /// The permission bits.
    #[getter]
    fn mode(&self) -> PyResult<u32> {
        Ok(self.inner.get(&self.what)?.stat().py_err()?.mode)
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Sends `data` as a message of `type` (> 0), waiting while the queue is full.
    #[pyo3(signature = (data, r#type=1, timeout=None))]
    fn send(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        r#type: i64,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let timeout = timeout_arg(timeout)?;
        let q = self.inner.get(&self.what)?;
        let view = Buffer::readable(data)?;
        let slice = view.as_slice();
        detached(py, |check| q.send(slice, r#type, timeout, check))
    }

    /// Receives `(bytes, type)`: type 0 the first message, > 0 the first of that type, < 0 the
    /// first of the lowest type up to its absolute value.
    #[pyo3(signature = (r#type=0, timeout=None))]
    fn receive(
        &self,
        py: Python<'_>,
        r#type: i64,
        timeout: Option<f64>,
    ) -> PyResult<(Py<PyBytes>, i64)> {
        let timeout = timeout_arg(timeout)?;
        let q = self.inner.get(&self.what)?;
        let (data, t) = detached(py, |check| q.receive(r#type, timeout, check))?;
        Ok((PyBytes::new(py, &data).unbind(), t))
    }

    /// Removes the queue from the system (`IPC_RMID`).
    fn remove(&self) -> PyResult<()> {
        self.inner.get(&self.what)?.remove().py_err()
    }

    /// Forgets the queue (it stays in the system until removed). Idempotent.
    fn close(&self) {
        self.inner.close();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) {
        self.close();
    }

    fn __repr__(&self) -> String {
        let state = if self.inner.is_closed() {
            " closed"
        } else {
            ""
        };
        format!(
            "<fastipc.SysVMessageQueue key=0x{:08x} id={}{}>",
            self.key, self.id, state
        )
    }
}

/// `ftok(path, project_id)`: the System V key a C program computes from the same arguments.
#[pyfunction]
pub fn ftok(path: PathBuf, project_id: i32) -> PyResult<i32> {
    core::ftok(&path, project_id).py_err()
}
