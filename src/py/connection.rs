//! `fastipc.Connection`: a connected stream or seqpacket socket.

use std::sync::Arc;

use pyo3::exceptions::{PyMemoryError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;

use crate::error::Error;
use crate::py::aio::{self, AioState};
use crate::py::blocking::detached;
use crate::py::buffer::{Buffer, Fresh};
use crate::py::errors::IntoPy;
use crate::py::fds::{self, FdList};
use crate::py::slot::Slot;
use crate::py::timeout_arg;
use crate::socket::{Incoming, Kind, Stream, SCM_MAX_FD};
use crate::wait::Deadline;

/// A connected stream or seqpacket socket carrying framed messages and raw bytes.
#[pyclass(frozen, module = "fastipc", name = "Connection")]
pub struct Connection {
    inner: Slot<Stream>,
    address: String,
    kind: Kind,
    max_message: u64,
    /// The state `fastipc.aio` keeps between its non-blocking attempts.
    pub(crate) aio: AioState,
}

/// A received message, before it becomes a Python object.
enum Received {
    Vec(Vec<u8>),
    Bytes(Py<PyBytes>),
}

impl Received {
    fn small(bytes: &[u8]) -> Received {
        Received::Vec(bytes.to_vec())
    }

    fn into_py(self, py: Python<'_>) -> Py<PyBytes> {
        match self {
            Received::Vec(v) => PyBytes::new(py, &v).unbind(),
            Received::Bytes(b) => b,
        }
    }
}

/// `fastipc._handles`: pickling with descriptors, shared by both backends.
fn handles(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static HANDLES: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    HANDLES
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("fastipc._handles")?.unbind())
        })
        .map(|m| m.bind(py))
}

pub(crate) fn limit_arg(maxlength: Option<i64>) -> PyResult<Option<u64>> {
    maxlength
        .map(|n| u64::try_from(n).map_err(|_| PyValueError::new_err("negative maxlength")))
        .transpose()
}

impl Connection {
    pub(crate) fn wrap(stream: Stream) -> Connection {
        Connection {
            address: stream.peer().to_string(),
            kind: stream.kind(),
            max_message: stream.max_message(),
            inner: Slot::new(stream),
            aio: AioState::default(),
        }
    }

    /// The stream for a blocking call: refused while `fastipc.aio` holds the connection.
    fn stream(&self) -> PyResult<Arc<Stream>> {
        if self.aio.is_wrapped() {
            return Err(aio::wrapped_error(&self.address));
        }
        self.inner.get(&self.address)
    }

    /// The stream for a call that never blocks.
    pub(crate) fn any_stream(&self) -> PyResult<Arc<Stream>> {
        self.inner.get(&self.address)
    }

    /// More descriptors than `maxfds`: all are closed, and the error says so.
    pub(crate) fn check_maxfds(&self, fds: &[std::os::fd::OwnedFd], maxfds: usize) -> PyResult<()> {
        if fds.len() > maxfds {
            return Err(crate::py::errors::to_py(
                Error::FdsTruncated {
                    what: format!(
                        "{}: {} descriptors, maxfds={maxfds}",
                        self.address,
                        fds.len()
                    ),
                },
                None,
            ));
        }
        Ok(())
    }

    /// Receives one message and the descriptors that came with it.
    fn receive(
        &self,
        py: Python<'_>,
        limit: Option<u64>,
    ) -> PyResult<(Received, Vec<std::os::fd::OwnedFd>)> {
        let stream = self.stream()?;
        let result = detached(py, |check| {
            let mut reader = stream.reader()?;
            let mut wait = stream.wait(check);
            let incoming = reader.next_message_with(limit, &mut wait, Received::small)?;
            let deadline = wait.deadline;
            let received = match incoming {
                Incoming::Small(small) => small,
                Incoming::Large(len) => {
                    let mut fresh =
                        Python::attach(|py| Fresh::new(py, len)).map_err(|e| check.fail(e))?;
                    let mut wait = stream.wait_until(deadline, check);
                    reader.read_payload(fresh.as_mut_slice(), &mut wait)?;
                    Received::Bytes(fresh.bytes)
                }
            };
            Ok((received, reader.take_fds()))
        });
        self.close_if_lost(py, result)
    }

    /// Closes the connection when `result` is an error after which the byte stream cannot be
    /// resynchronised, as multiprocessing does: a frame over the limit, a malformed length
    /// prefix (`EBADMSG`), or a message that could not be allocated (its header is consumed:
    /// the payload would be read as frames). A seqpacket socket keeps its packet boundaries and
    /// stays open.
    pub(crate) fn close_if_lost<T>(&self, py: Python<'_>, result: PyResult<T>) -> PyResult<T> {
        if let Err(err) = &result {
            if self.kind == Kind::Stream && stream_lost(py, err) {
                self.inner.close();
            }
        }
        result
    }
}

/// Whether a receive that failed with `err` left the stream somewhere inside a frame.
fn stream_lost(py: Python<'_>, err: &PyErr) -> bool {
    if err.is_instance_of::<crate::py::errors::MessageTooLarge>(py)
        || err.is_instance_of::<PyMemoryError>(py)
    {
        return true;
    }
    err.is_instance_of::<pyo3::exceptions::PyOSError>(py)
        && err
            .value(py)
            .getattr("errno")
            .and_then(|e| e.extract::<i32>())
            .is_ok_and(|e| e == rustix::io::Errno::BADMSG.raw_os_error())
}

#[pymethods]
impl Connection {
    /// The logical address of the other end.
    #[getter]
    fn address(&self) -> &str {
        &self.address
    }

    /// "stream" or "seqpacket".
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind.name()
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Always True (as in multiprocessing).
    #[getter]
    fn readable(&self) -> bool {
        true
    }

    /// Always True (as in multiprocessing).
    #[getter]
    fn writable(&self) -> bool {
        true
    }

    /// The largest message `recv_bytes` accepts.
    #[getter]
    fn max_message(&self) -> u64 {
        self.max_message
    }

    /// Sends one message (`buf[offset:offset+size]`), with `fds` attached to it.
    #[pyo3(signature = (buf, offset=0, size=None, *, fds=None))]
    fn send_bytes(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: isize,
        size: Option<isize>,
        fds: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let stream = self.stream()?;
        let fds = FdList::extract(fds)?;
        let borrowed = fds.borrow();
        if let Ok(bytes) = buf.cast::<PyBytes>() {
            let data = slice_arg(bytes.as_bytes(), offset, size)?;
            return send_message(py, &stream, data, &borrowed);
        }
        let view = Buffer::readable(buf)?;
        let data = slice_arg(view.as_slice(), offset, size)?;
        send_message(py, &stream, data, &borrowed)
    }

    /// Receives one message and the descriptors sent with it (which the caller then owns).
    #[pyo3(signature = (maxlength=None, *, maxfds=SCM_MAX_FD), text_signature = "(self, maxlength=None, *, maxfds=253)")]
    fn recv_bytes_and_fds(
        &self,
        py: Python<'_>,
        maxlength: Option<i64>,
        maxfds: usize,
    ) -> PyResult<(Py<PyBytes>, Vec<i32>)> {
        let (received, fds) = self.receive(py, limit_arg(maxlength)?)?;
        self.check_maxfds(&fds, maxfds)?;
        Ok((received.into_py(py), fds::into_raw(fds)))
    }

    /// Sends `data` on the raw stream with `fds` attached (as `socket.send_fds`); returns
    /// the number of bytes sent (all of them).
    fn send_fds(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        fds: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let stream = self.stream()?;
        let fds = FdList::extract(Some(fds))?;
        let borrowed = fds.borrow();
        let view = Buffer::readable(data)?;
        let slice = view.as_slice();
        detached(py, |check| stream.send_with_fds(slice, &borrowed, check))?;
        Ok(slice.len())
    }

    /// Receives at most `bufsize` raw bytes and at most `maxfds` descriptors (as
    /// `socket.recv_fds`). More descriptors than `maxfds`: all are closed and OSError(EMSGSIZE).
    /// `timeout` (seconds) overrides `settimeout` for this call.
    #[pyo3(signature = (bufsize, maxfds, *, timeout=None))]
    fn recv_fds(
        &self,
        py: Python<'_>,
        bufsize: isize,
        maxfds: usize,
        timeout: Option<f64>,
    ) -> PyResult<(Py<PyBytes>, Vec<i32>)> {
        let n = usize::try_from(bufsize).map_err(|_| PyValueError::new_err("negative bufsize"))?;
        let timeout = timeout_arg(timeout)?;
        let stream = self.stream()?;
        let mut buf = vec![0u8; n];
        let (got, fds) = detached(py, |check| {
            let deadline = match timeout {
                Some(t) => Deadline::after(Some(t)),
                None => Deadline::after(stream.timeout()),
            };
            let mut wait = stream.wait_until(deadline, check);
            let mut reader = stream.reader()?;
            let got = reader.read_some(&mut buf, &mut wait)?;
            Ok((got, reader.take_fds()))
        })?;
        if fds.len() > maxfds {
            drop(fds);
            return Err(crate::py::errors::to_py(
                Error::FdsTruncated {
                    what: self.address.clone(),
                },
                None,
            ));
        }
        Ok((PyBytes::new(py, &buf[..got]).unbind(), fds::into_raw(fds)))
    }

    /// The credentials of the process at the other end, taken when the connection was made.
    fn peer_credentials(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let creds = self.any_stream()?.peer_credentials().py_err()?;
        fds::credentials(py, creds)
    }

    /// A pidfd of the peer process, owned by the caller (Linux 6.5 and later).
    fn peer_pidfd(&self) -> PyResult<i32> {
        use std::os::fd::IntoRawFd;
        Ok(self.any_stream()?.peer_pidfd().py_err()?.into_raw_fd())
    }

    /// Receives one message.
    #[pyo3(signature = (maxlength=None))]
    fn recv_bytes(&self, py: Python<'_>, maxlength: Option<i64>) -> PyResult<Py<PyBytes>> {
        // Descriptors that came with the message are closed: this caller did not ask for them.
        Ok(self.receive(py, limit_arg(maxlength)?)?.0.into_py(py))
    }

    /// Receives one message into `buf` at `offset`; returns its length.
    #[pyo3(signature = (buf, offset=0))]
    fn recv_bytes_into(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: isize,
    ) -> PyResult<usize> {
        let mut view = Buffer::writable(buf)?;
        let total = view.len();
        let offset =
            usize::try_from(offset).map_err(|_| PyValueError::new_err("negative offset"))?;
        if offset > total {
            return Err(PyValueError::new_err("offset too large"));
        }
        let stream = self.stream()?;
        let dst = &mut view.as_mut_slice()?[offset..];
        let result = detached(py, |check| {
            let mut reader = stream.reader()?;
            let mut wait = stream.wait(check);
            // A small message goes from the receive buffer straight into `dst`.
            let small = |bytes: &[u8]| match dst.get_mut(..bytes.len()) {
                Some(room) => {
                    room.copy_from_slice(bytes);
                    Ok(bytes.len())
                }
                None => Err(bytes.to_vec()),
            };
            let result = match reader.next_message_with(None, &mut wait, small)? {
                Incoming::Small(Ok(len)) => Ok(len),
                Incoming::Small(Err(message)) => Err(Error::BufferTooShort { message }),
                Incoming::Large(len) if len <= dst.len() => {
                    reader.read_payload(&mut dst[..len], &mut wait)?;
                    Ok(len)
                }
                Incoming::Large(len) => {
                    let deadline = wait.deadline;
                    let mut message = Vec::new();
                    if message.try_reserve_exact(len).is_err() {
                        return Err(check.fail(PyMemoryError::new_err(format!(
                            "cannot allocate a message of {len} bytes"
                        ))));
                    }
                    message.resize(len, 0);
                    let mut wait = stream.wait_until(deadline, check);
                    reader.read_payload(&mut message, &mut wait)?;
                    Err(Error::BufferTooShort { message })
                }
            };
            drop(reader.take_fds());
            result
        });
        self.close_if_lost(py, result)
    }

    /// Whether a message (or end of file) can be read within `timeout` seconds (None: forever).
    #[pyo3(signature = (timeout=Some(0.0)), text_signature = "(self, timeout=0.0)")]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = timeout_arg(timeout)?;
        let stream = self.stream()?;
        detached(py, |check| stream.reader()?.poll(timeout, check))
    }

    /// Sends a picklable object (for trusted peers only). Sockets, files and connections in
    /// it travel as descriptors with the message.
    fn send(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let (data, handles): (Bound<'_, PyBytes>, Bound<'_, PyAny>) = handles(py)?
            .call_method1(pyo3::intern!(py, "dumps"), (obj,))?
            .extract()?;
        let fds = FdList::extract(Some(&handles))?;
        let borrowed = fds.borrow();
        let stream = self.stream()?;
        let slice = data.as_bytes();
        detached(py, |check| stream.send_message(slice, &borrowed, check))
    }

    /// Receives a pickled object; handed-over sockets, files and connections come back as
    /// objects of the same kind. Unpickling runs code chosen by the sender: call it only on
    /// connections whose peer is trusted (a Unix socket in the private socket directory or with
    /// `allow_uids`, or an `authkey` handshake; not TCP without one, even on loopback).
    /// `authkey` authenticates, it does not encrypt.
    fn recv(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (received, fds) = self.receive(py, None)?;
        let data = received.into_py(py);
        Ok(handles(py)?
            .call_method1(pyo3::intern!(py, "loads"), (data, fds::into_raw(fds)))?
            .unbind())
    }

    /// Sends every byte of `data` on the raw stream.
    fn sendall(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let stream = self.stream()?;
        let view = Buffer::readable(data)?;
        let slice = view.as_slice();
        detached(py, |check| stream.send_all(slice, check))
    }

    /// Reads at most `nbytes` (default: len(buffer)) raw bytes into `buffer`; 0 at end of file.
    #[pyo3(signature = (buffer, nbytes=0))]
    fn recv_into(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        nbytes: isize,
    ) -> PyResult<usize> {
        let mut view = Buffer::writable(buffer)?;
        let total = view.len();
        let n = match usize::try_from(nbytes) {
            Ok(0) => total,
            Ok(n) if n <= total => n,
            Ok(_) => {
                return Err(PyValueError::new_err(
                    "buffer too small for requested bytes",
                ))
            }
            Err(_) => return Err(PyValueError::new_err("negative buffersize in recv_into")),
        };
        let stream = self.stream()?;
        let dst = &mut view.as_mut_slice()?[..n];
        detached(py, |check| {
            let mut wait = stream.wait(check);
            stream.reader()?.read_some(dst, &mut wait)
        })
    }

    /// Reads exactly `n` raw bytes.
    fn recv_exact(&self, py: Python<'_>, n: isize) -> PyResult<Py<PyBytes>> {
        let n = usize::try_from(n).map_err(|_| PyValueError::new_err("negative byte count"))?;
        let stream = self.stream()?;
        let mut fresh = Fresh::new(py, n)?;
        detached(py, |check| {
            let mut wait = stream.wait(check);
            stream.reader()?.read_exact(fresh.as_mut_slice(), &mut wait)
        })?;
        Ok(fresh.bytes)
    }

    /// Sets the timeout of later sends and receives (None: block; 0: do not wait).
    fn settimeout(&self, timeout: Option<f64>) -> PyResult<()> {
        let timeout = timeout_arg(timeout)?;
        self.stream()?.set_timeout(timeout);
        Ok(())
    }

    /// The timeout of sends and receives.
    fn gettimeout(&self) -> PyResult<Option<f64>> {
        Ok(self.stream()?.timeout().map(|t| t.as_secs_f64()))
    }

    /// The socket's file descriptor.
    fn fileno(&self) -> PyResult<i32> {
        use std::os::fd::AsRawFd;
        Ok(self.any_stream()?.as_fd().as_raw_fd())
    }

    /// Shuts down reading (0), writing (1) or both (2).
    #[pyo3(signature = (how=2))]
    fn shutdown(&self, how: i32) -> PyResult<()> {
        use rustix::net::Shutdown;
        let how = match how {
            0 => Shutdown::Read,
            1 => Shutdown::Write,
            2 => Shutdown::Both,
            _ => {
                return Err(PyValueError::new_err(
                    "how must be SHUT_RD, SHUT_WR or SHUT_RDWR",
                ))
            }
        };
        self.stream()?.shutdown(how).py_err()
    }

    /// `fastipc.aio`: takes the connection for an event loop (its blocking calls refuse) or
    /// gives it back.
    fn _aio_wrap(&self, on: bool) -> PyResult<()> {
        self.aio.set_wrapped(&*self.any_stream()?, on)
    }

    /// `fastipc.aio`: one attempt at sending a frame, never waiting: 0 if nothing went, 1 if
    /// part of it did (the rest goes by `_aio_send_more`), 2 if all of it did.
    #[pyo3(signature = (buf, offset=0, size=None, fds=None))]
    fn _aio_try_send(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: isize,
        size: Option<isize>,
        fds: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u8> {
        self.aio_try_send(py, buf, (offset, size), fds)
    }

    /// `fastipc.aio`: one attempt at sending the rest of a frame; whether none is left.
    fn _aio_send_more(&self, py: Python<'_>) -> PyResult<bool> {
        self.aio.send_more(py, &*self.any_stream()?)
    }

    /// `fastipc.aio`: one attempt at receiving a message and its descriptors (`maxfds`: None
    /// closes them); None when it is not all there yet. With `readable` (the connection's
    /// `Readiness`), it waits in an idle loop's stead (`aio::Idle`).
    #[pyo3(signature = (maxlength=None, maxfds=None, readable=None))]
    fn _aio_try_recv(
        &self,
        py: Python<'_>,
        maxlength: Option<i64>,
        maxfds: Option<usize>,
        readable: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Py<PyAny>>> {
        self.aio_try_recv(py, maxlength, maxfds, readable)
    }

    /// Closes the socket. Idempotent.
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
        match self.any_stream() {
            Ok(s) => {
                use std::os::fd::AsRawFd;
                format!(
                    "<fastipc.Connection {} fd={}>",
                    self.address,
                    s.as_fd().as_raw_fd()
                )
            }
            Err(_) => format!("<fastipc.Connection {} closed>", self.address),
        }
    }
}

/// Sends one message: a small one at once if it can go without waiting (the GIL kept: one
/// system call, no release and re-acquisition), else with the GIL released.
fn send_message(
    py: Python<'_>,
    stream: &Stream,
    data: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> PyResult<()> {
    if fds.is_empty() && stream.try_send_message(data).py_err()? {
        return Ok(());
    }
    detached(py, |check| stream.send_message(data, fds, check))
}

/// `buf[offset:offset+size]` with multiprocessing's checks.
pub(crate) fn slice_arg(buf: &[u8], offset: isize, size: Option<isize>) -> PyResult<&[u8]> {
    let offset =
        usize::try_from(offset).map_err(|_| PyValueError::new_err("offset is negative"))?;
    if offset > buf.len() {
        return Err(PyValueError::new_err("buffer length < offset"));
    }
    let size = match size {
        None => buf.len() - offset,
        Some(s) => usize::try_from(s).map_err(|_| PyValueError::new_err("size is negative"))?,
    };
    if offset + size > buf.len() {
        return Err(PyValueError::new_err("buffer length < offset + size"));
    }
    Ok(&buf[offset..offset + size])
}
