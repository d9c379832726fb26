//! `fastipc.Listener`: a listening stream or seqpacket socket.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use pyo3::prelude::*;

use crate::py::blocking::detached;
use crate::py::connection::Connection;
use crate::py::slot::Slot;
use crate::py::timeout_arg;
use crate::socket::Listener as CoreListener;

/// A listening stream or seqpacket socket. Created by `fastipc.listen`.
#[pyclass(frozen, module = "fastipc", name = "Listener")]
pub struct Listener {
    inner: Slot<CoreListener>,
    address: String,
    path: Option<String>,
    kind: &'static str,
    max_message: u64,
}

impl Listener {
    pub(crate) fn wrap(listener: CoreListener) -> Listener {
        Listener {
            address: listener.address().to_string(),
            path: listener.path().map(|p| p.display().to_string()),
            kind: listener.kind().name(),
            max_message: listener.max_message(),
            inner: Slot::new(listener),
        }
    }

    fn get(&self) -> PyResult<Arc<CoreListener>> {
        self.inner.get(&self.address)
    }

    fn close_inner(&self) {
        // The socket file is unlinked when the last user (an accept in another thread) lets go,
        // at most one wait slice later.
        self.inner.close();
    }
}

#[pymethods]
impl Listener {
    /// The logical address with the real port, to give to `fastipc.connect`.
    #[getter]
    fn address(&self) -> &str {
        &self.address
    }

    /// The Unix socket path, or None for TCP and abstract sockets.
    #[getter]
    fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// "stream" or "seqpacket".
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// How many connections `allow_uids`/`allow_gids` or the `authkey` handshake refused.
    #[getter]
    fn refused(&self) -> PyResult<u64> {
        Ok(self.get()?.refused())
    }

    /// The message limit of accepted connections.
    #[getter]
    fn max_message(&self) -> u64 {
        self.max_message
    }

    /// Waits for a connection (`TimeoutError` at the deadline). With an `authkey`, a peer that
    /// fails the handshake is closed, counted in `refused`, and the wait goes on.
    #[pyo3(signature = (timeout=None))]
    fn accept(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<Connection>> {
        let timeout = timeout_arg(timeout)?;
        let listener = self.get()?;
        // The handshake runs in the core's accept, detached too; a close() meanwhile ends it.
        let stream = detached(py, |check| listener.accept(timeout, check))?;
        Py::new(py, Connection::wrap(stream))
    }

    /// The listening socket's file descriptor.
    fn fileno(&self) -> PyResult<i32> {
        Ok(self.get()?.as_fd().as_raw_fd())
    }

    /// Closes, and unlinks the socket file if it is still this listener's own. Idempotent.
    fn close(&self) {
        self.close_inner();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.close_inner();
    }

    fn __repr__(&self) -> String {
        let path = match &self.path {
            Some(p) => format!(" path={p}"),
            None => String::new(),
        };
        match self.get() {
            Ok(l) => format!(
                "<fastipc.Listener {}{} fd={}>",
                self.address,
                path,
                l.as_fd().as_raw_fd()
            ),
            Err(_) => format!("<fastipc.Listener {}{} closed>", self.address, path),
        }
    }
}
