//! `fastipc.DatagramSocket`.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::py::blocking::detached;
use crate::py::buffer::Buffer;
use crate::py::errors::IntoPy;
use crate::py::fds::{self, FdList};
use crate::py::slot::Slot;
use crate::py::{address_arg, timeout_arg};
use crate::socket::Datagram;

/// A datagram socket: Unix datagram when remapped, UDP otherwise.
#[pyclass(frozen, module = "fastipc", name = "DatagramSocket")]
pub struct DatagramSocket {
    inner: Slot<Datagram>,
    address: Option<String>,
    path: Option<String>,
}

impl DatagramSocket {
    pub(crate) fn wrap(sock: Datagram) -> DatagramSocket {
        DatagramSocket {
            address: sock.local().map(str::to_string),
            path: sock.path().map(|p| p.display().to_string()),
            inner: Slot::new(sock),
        }
    }

    fn what(&self) -> &str {
        self.address.as_deref().unwrap_or("datagram socket")
    }

    fn get(&self) -> PyResult<Arc<Datagram>> {
        self.inner.get(self.what())
    }
}

type Got = (
    Py<PyBytes>,
    Option<String>,
    Option<crate::creds::Credentials>,
    Vec<std::os::fd::OwnedFd>,
);

impl DatagramSocket {
    fn send_any(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        address: Option<&crate::addr::Address>,
        fds: Option<&Bound<'_, PyAny>>,
        credentials: bool,
    ) -> PyResult<usize> {
        let sock = self.get()?;
        let fds = FdList::extract(fds)?;
        let borrowed = fds.borrow();
        let view = Buffer::readable(data)?;
        let slice = view.as_slice();
        detached(py, |check| {
            sock.send_to(slice, address, &borrowed, credentials, check)
        })
    }

    fn receive(&self, py: Python<'_>, bufsize: isize) -> PyResult<Got> {
        let mut buf = vec![0u8; bufsize_arg(bufsize)?];
        let sock = self.get()?;
        let got = detached(py, |check| sock.recv_full(&mut buf, check))?;
        Ok((
            PyBytes::new(py, &buf[..got.len]).unbind(),
            got.sender,
            got.creds,
            got.fds,
        ))
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
        self.inner.is_closed()
    }

    /// Sends one datagram to `address` (remapped like every address), with `fds` attached and,
    /// when `credentials`, this process's credentials (Linux).
    #[pyo3(signature = (data, address, *, fds=None, credentials=false))]
    fn sendto(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        address: &Bound<'_, PyAny>,
        fds: Option<&Bound<'_, PyAny>>,
        credentials: bool,
    ) -> PyResult<usize> {
        let address = address_arg(address)?;
        self.send_any(py, data, Some(&address), fds, credentials)
    }

    /// Receives one datagram of at most `bufsize` bytes (the rest of a longer one is lost) and
    /// its sender's logical address; with `credentials=True` also the sender's credentials
    /// (None when the kernel had none to give).
    #[pyo3(signature = (bufsize, *, credentials=false))]
    fn recvfrom(&self, py: Python<'_>, bufsize: isize, credentials: bool) -> PyResult<Py<PyAny>> {
        let (data, sender, creds, _fds) = self.receive(py, bufsize)?;
        if !credentials {
            return Ok((data, sender).into_pyobject(py)?.into_any().unbind());
        }
        let creds = match creds {
            Some(c) => Some(fds::credentials(py, c)?),
            None => None,
        };
        Ok((data, sender, creds).into_pyobject(py)?.into_any().unbind())
    }

    /// Connects to `address`: `send` and `recv` then use it.
    fn connect(&self, py: Python<'_>, address: &Bound<'_, PyAny>) -> PyResult<()> {
        let address = address_arg(address)?;
        let sock = self.get()?;
        py.detach(|| sock.connect(&address)).py_err()
    }

    /// Sends one datagram to the connected peer.
    #[pyo3(signature = (data, *, fds=None, credentials=false))]
    fn send(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        fds: Option<&Bound<'_, PyAny>>,
        credentials: bool,
    ) -> PyResult<usize> {
        self.send_any(py, data, None, fds, credentials)
    }

    /// Receives one datagram of at most `bufsize` bytes.
    fn recv(&self, py: Python<'_>, bufsize: isize) -> PyResult<Py<PyBytes>> {
        Ok(self.receive(py, bufsize)?.0)
    }

    /// Sends one datagram with `fds` attached, to `address` or the connected peer.
    #[pyo3(signature = (data, fds, address=None))]
    fn send_fds(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        fds: &Bound<'_, PyAny>,
        address: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let address = address.map(address_arg).transpose()?;
        self.send_any(py, data, address.as_ref(), Some(fds), false)
    }

    /// Receives one datagram, the descriptors sent with it (at most `maxfds`: more are all
    /// closed and OSError(EMSGSIZE)), and its sender. `timeout` overrides `settimeout`.
    #[pyo3(signature = (bufsize, maxfds, *, timeout=None))]
    fn recv_fds(
        &self,
        py: Python<'_>,
        bufsize: isize,
        maxfds: usize,
        timeout: Option<f64>,
    ) -> PyResult<(Py<PyBytes>, Vec<i32>, Option<String>)> {
        let sock = self.get()?;
        let previous = sock.timeout();
        if timeout.is_some() {
            sock.set_timeout(timeout_arg(timeout)?);
        }
        let result = self.receive(py, bufsize);
        if timeout.is_some() {
            sock.set_timeout(previous);
        }
        let (data, sender, _creds, fds) = result?;
        if fds.len() > maxfds {
            drop(fds);
            return Err(crate::py::errors::to_py(
                crate::error::Error::FdsTruncated {
                    what: self.what().to_string(),
                },
                None,
            ));
        }
        Ok((data, fds::into_raw(fds), sender))
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
        self.inner.close();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.inner.close();
    }

    fn __repr__(&self) -> String {
        let what = self.what();
        match self.get() {
            Ok(s) => format!(
                "<fastipc.DatagramSocket {} fd={}>",
                what,
                s.as_fd().as_raw_fd()
            ),
            Err(_) => format!("<fastipc.DatagramSocket {what} closed>"),
        }
    }
}
