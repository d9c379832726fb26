//! `fastipc.DatagramSocket`.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::py::blocking::detached;
use crate::py::buffer::Buffer;
use crate::py::errors::IntoPy;
use crate::py::{address_arg, closed_error, timeout_arg};
use crate::socket::Datagram;

/// A datagram socket: Unix datagram when remapped, UDP otherwise.
#[pyclass(frozen, module = "fastipc", name = "DatagramSocket")]
pub struct DatagramSocket {
    inner: Mutex<Option<Arc<Datagram>>>,
    address: Option<String>,
    path: Option<String>,
}

impl DatagramSocket {
    pub(crate) fn wrap(sock: Datagram) -> DatagramSocket {
        DatagramSocket {
            address: sock.local().map(str::to_string),
            path: sock.path().map(|p| p.display().to_string()),
            inner: Mutex::new(Some(Arc::new(sock))),
        }
    }

    fn what(&self) -> String {
        self.address
            .clone()
            .unwrap_or_else(|| "datagram socket".into())
    }

    fn get(&self) -> PyResult<Arc<Datagram>> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .cloned()
            .ok_or_else(|| closed_error(&self.what()))
    }

    fn close_inner(&self) {
        let taken = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(sock) = taken {
            sock.mark_closed();
        }
    }
}

fn bufsize_arg(bufsize: isize) -> PyResult<usize> {
    usize::try_from(bufsize).map_err(|_| PyValueError::new_err("negative buffersize"))
}

#[pymethods]
impl DatagramSocket {
    /// The local logical address, or None if unbound.
    #[getter]
    fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// The local socket path, if bound to one.
    #[getter]
    fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The address given to `connect`, or None.
    #[getter]
    fn peer(&self) -> Option<String> {
        self.get().ok().and_then(|s| s.peer())
    }

    /// Always "datagram".
    #[getter]
    fn kind(&self) -> &'static str {
        "datagram"
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// Sends one datagram to `address` (remapped like every address).
    fn sendto(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        address: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let address = address_arg(address)?;
        let sock = self.get()?;
        let view = Buffer::readable(data)?;
        let slice = view.as_slice();
        detached(py, |check| sock.send_to(slice, &address, check))
    }

    /// Receives one datagram of at most `bufsize` bytes and its sender's logical address.
    fn recvfrom(&self, py: Python<'_>, bufsize: isize) -> PyResult<(Py<PyBytes>, Option<String>)> {
        let mut buf = vec![0u8; bufsize_arg(bufsize)?];
        let sock = self.get()?;
        let (n, from) = detached(py, |check| sock.recv_from(&mut buf, check))?;
        Ok((PyBytes::new(py, &buf[..n]).unbind(), from))
    }

    /// Connects to `address`: `send` and `recv` then use it.
    fn connect(&self, py: Python<'_>, address: &Bound<'_, PyAny>) -> PyResult<()> {
        let address = address_arg(address)?;
        let sock = self.get()?;
        py.detach(|| sock.connect(&address)).py_err()
    }

    /// Sends one datagram to the connected peer.
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let sock = self.get()?;
        let view = Buffer::readable(data)?;
        let slice = view.as_slice();
        detached(py, |check| sock.send(slice, check))
    }

    /// Receives one datagram of at most `bufsize` bytes.
    fn recv(&self, py: Python<'_>, bufsize: isize) -> PyResult<Py<PyBytes>> {
        Ok(self.recvfrom(py, bufsize)?.0)
    }

    /// Sets the timeout of later sends and receives.
    fn settimeout(&self, timeout: Option<f64>) -> PyResult<()> {
        let timeout = timeout_arg(timeout)?;
        self.get()?.set_timeout(timeout);
        Ok(())
    }

    /// The timeout of sends and receives.
    fn gettimeout(&self) -> PyResult<Option<f64>> {
        Ok(self.get()?.timeout().map(|t| t.as_secs_f64()))
    }

    /// The socket's file descriptor.
    fn fileno(&self) -> PyResult<i32> {
        Ok(self.get()?.as_fd().as_raw_fd())
    }

    /// Closes the socket (and unlinks its socket file). Idempotent.
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
        let what = self.what();
        match self.get() {
            Ok(s) => format!(
                "<fastipc.DatagramSocket {} fd={}>",
                what,
                s.as_fd().as_raw_fd()
            ),
            Err(_) => format!("<fastipc.DatagramSocket {} closed>", what),
        }
    }
}
