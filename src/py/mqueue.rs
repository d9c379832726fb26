//! `fastipc.MessageQueue`: a POSIX message queue.

use std::os::fd::AsRawFd;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::mqueue::{self as core, MessageQueue as CoreQueue};
use crate::py::blocking::detached;
use crate::py::buffer::Buffer;
use crate::py::errors::IntoPy;
use crate::py::slot::Slot;
use crate::py::timeout_arg;

/// A POSIX message queue (Linux).
#[pyclass(frozen, module = "fastipc", name = "MessageQueue")]
pub struct MessageQueue {
    inner: Slot<CoreQueue>,
    name: String,
    max_messages: i64,
    max_message_size: usize,
}

#[pymethods]
impl MessageQueue {
    #[new]
    #[pyo3(signature = (name, create=false, *, max_messages=None, max_message_size=None, mode=0o600))]
    fn new(
        py: Python<'_>,
        name: &str,
        create: bool,
        max_messages: Option<i64>,
        max_message_size: Option<i64>,
        mode: u32,
    ) -> PyResult<MessageQueue> {
        let q = py
            .detach(|| CoreQueue::open(name, create, max_messages, max_message_size, mode))
            .py_err()?;
        Ok(MessageQueue {
            name: q.name().to_string(),
            max_messages: q.max_messages(),
            max_message_size: q.max_message_size(),
            inner: Slot::new(q),
        })
    }

    /// The name, with its leading slash.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// How many messages the queue holds at most.
    #[getter]
    fn max_messages(&self) -> i64 {
        self.max_messages
    }

    /// The largest message in bytes.
    #[getter]
    fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Messages in the queue now.
    #[getter]
    fn current_messages(&self) -> PyResult<i64> {
        Ok(self
            .inner
            .get(&self.name)?
            .attributes()
            .py_err()?
            .current_messages)
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Sends `data` with `priority` (0 to 32767, higher first), waiting while the queue is full.
    #[pyo3(signature = (data, priority=0, timeout=None))]
    fn send(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        priority: u32,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let timeout = timeout_arg(timeout)?;
        let q = self.inner.get(&self.name)?;
        if let Ok(bytes) = data.cast::<PyBytes>() {
            let slice = bytes.as_bytes();
            return detached(py, |check| q.send(slice, priority, timeout, check));
        }
        let view = Buffer::readable(data)?;
        let slice = view.as_slice();
        detached(py, |check| q.send(slice, priority, timeout, check))
    }

    /// Receives the oldest message of the highest priority: `(bytes, priority)`.
    #[pyo3(signature = (timeout=None))]
    fn receive(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<(Py<PyBytes>, u32)> {
        let timeout = timeout_arg(timeout)?;
        let q = self.inner.get(&self.name)?;
        let (data, prio) = detached(py, |check| q.receive(timeout, check))?;
        Ok((PyBytes::new(py, &data).unbind(), prio))
    }

    /// The queue descriptor, usable with select/poll/selectors (Linux).
    fn fileno(&self) -> PyResult<i32> {
        Ok(self.inner.get(&self.name)?.as_fd().as_raw_fd())
    }

    /// Removes the queue's name; the queue lives until every descriptor is closed.
    fn unlink(&self) -> PyResult<()> {
        core::unlink(&self.name).py_err()
    }

    /// Closes the descriptor. Idempotent.
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
        match self.inner.get(&self.name) {
            Ok(q) => format!(
                "<fastipc.MessageQueue {} max_messages={} max_message_size={} fd={}>",
                self.name,
                self.max_messages,
                self.max_message_size,
                q.as_fd().as_raw_fd()
            ),
            Err(_) => format!("<fastipc.MessageQueue {} closed>", self.name),
        }
    }
}

/// Removes the POSIX message queue `name`.
#[pyfunction]
pub fn unlink_message_queue(name: &str) -> PyResult<()> {
    core::unlink(name).py_err()
}
