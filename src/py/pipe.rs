//! `fastipc.pipe`, `fastipc.PipeReader`, `fastipc.PipeWriter` and `fastipc.FIFO`.

use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::pipe::{self as core, PipeReader as CoreReader, PipeWriter as CoreWriter};
use crate::py::blocking::detached;
use crate::py::buffer::{Buffer, Fresh};
use crate::py::errors::IntoPy;
use crate::py::slot::{closed, Slot};
use crate::py::timeout_arg;

/// Largest single read of `read()`.
const READ_CHUNK: usize = 1 << 20;

fn detach_error(what: &str) -> PyErr {
    PyOSError::new_err((
        rustix::io::Errno::BUSY.raw_os_error(),
        "cannot detach while another thread uses the object",
        what.to_string(),
    ))
}

fn count_arg(n: isize) -> PyResult<usize> {
    usize::try_from(n).map_err(|_| PyValueError::new_err("negative byte count"))
}

macro_rules! common_methods {
    ($ty:ident, $label:literal, { $($extra:tt)* }) => {
        #[pymethods]
        impl $ty {
            $($extra)*

            /// "pipe", or the FIFO's path.
            #[getter]
            fn name(&self) -> &str {
                &self.what
            }

            /// Whether `close()` was called.
            #[getter]
            fn closed(&self) -> bool {
                self.inner.is_closed()
            }

            /// The descriptor.
            fn fileno(&self) -> PyResult<i32> {
                Ok(self.inner.get(&self.what)?.as_fd().as_raw_fd())
            }

            /// Sets the timeout of later operations (None: wait forever; 0: do not wait).
            fn settimeout(&self, timeout: Option<f64>) -> PyResult<()> {
                let timeout = timeout_arg(timeout)?;
                self.inner.get(&self.what)?.set_timeout(timeout);
                Ok(())
            }

            /// The timeout (0.0 in non-blocking mode).
            fn gettimeout(&self) -> PyResult<Option<f64>> {
                Ok(self.inner.get(&self.what)?.timeout().map(|t| t.as_secs_f64()))
            }

            /// Non-blocking mode (False): operations try once and raise `BlockingIOError`.
            fn setblocking(&self, flag: bool) -> PyResult<()> {
                self.inner.get(&self.what)?.set_blocking(flag);
                Ok(())
            }

            /// Whether the end is in blocking mode.
            fn getblocking(&self) -> PyResult<bool> {
                Ok(self.inner.get(&self.what)?.blocking())
            }

            /// Makes the descriptor survive exec (to hand it to a child) or not.
            fn set_inheritable(&self, inheritable: bool) -> PyResult<()> {
                self.inner.get(&self.what)?.set_inheritable(inheritable).py_err()
            }

            /// Whether the descriptor survives exec.
            fn get_inheritable(&self) -> PyResult<bool> {
                self.inner.get(&self.what)?.inheritable().py_err()
            }

            /// The pipe's capacity in bytes (Linux).
            #[getter]
            fn capacity(&self) -> PyResult<usize> {
                self.inner.get(&self.what)?.capacity().py_err()
            }

            /// Sets the pipe's capacity (`F_SETPIPE_SZ`); returns the size the kernel chose.
            fn set_capacity(&self, size: usize) -> PyResult<usize> {
                self.inner.get(&self.what)?.set_capacity(size).py_err()
            }

            /// Closes the end without closing the descriptor, and returns it (as socket.detach).
            fn detach(&self) -> PyResult<i32> {
                let arc = self.inner.take().ok_or_else(|| closed(&self.what))?;
                match Arc::try_unwrap(arc) {
                    Ok(end) => Ok(end.into_fd().into_raw_fd()),
                    Err(arc) => {
                        arc.mark_closed();
                        Err(detach_error(&self.what))
                    }
                }
            }

            /// Closes the end. Idempotent.
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
                match self.inner.get(&self.what) {
                    Ok(end) => format!("<fastipc.{} {} fd={}>", $label, self.what, end.as_fd().as_raw_fd()),
                    Err(_) => format!("<fastipc.{} {} closed>", $label, self.what),
                }
            }
        }
    };
}

/// The reading end of a pipe or FIFO.
#[pyclass(frozen, module = "fastipc", name = "PipeReader")]
pub struct PipeReader {
    inner: Slot<CoreReader>,
    what: String,
}

/// The writing end of a pipe or FIFO.
#[pyclass(frozen, module = "fastipc", name = "PipeWriter")]
pub struct PipeWriter {
    inner: Slot<CoreWriter>,
    what: String,
}

common_methods!(PipeReader, "PipeReader", {
    /// Reads at most `n` bytes (at most 1 MiB per call); b"" at end of file (every writer
    /// closed). Waits while the pipe is empty, within the timeout.
    #[pyo3(signature = (n=65536))]
    fn read(&self, py: Python<'_>, n: isize) -> PyResult<Py<PyBytes>> {
        let n = count_arg(n)?.min(READ_CHUNK);
        let end = self.inner.get(&self.what)?;
        let mut buf = vec![0u8; n];
        let got = detached(py, |check| end.read(&mut buf, check))?;
        Ok(PyBytes::new(py, &buf[..got]).unbind())
    }

    /// Reads into `buffer` (at most `nbytes`, default its length); 0 at end of file.
    #[pyo3(signature = (buffer, nbytes=0))]
    fn readinto(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        nbytes: isize,
    ) -> PyResult<usize> {
        let mut view = Buffer::writable(buffer)?;
        let total = view.len();
        let n = match count_arg(nbytes)? {
            0 => total,
            n if n <= total => n,
            _ => {
                return Err(PyValueError::new_err(
                    "buffer too small for requested bytes",
                ))
            }
        };
        let end = self.inner.get(&self.what)?;
        let dst = &mut view.as_mut_slice()?[..n];
        detached(py, |check| end.read(dst, check))
    }

    /// Reads exactly `n` bytes. `EOFError` if the pipe ends first (`TruncatedMessage` part way).
    fn read_exact(&self, py: Python<'_>, n: isize) -> PyResult<Py<PyBytes>> {
        let n = count_arg(n)?;
        let end = self.inner.get(&self.what)?;
        let mut fresh = Fresh::new(py, n)?;
        detached(py, |check| end.read_exact(fresh.as_mut_slice(), check))?;
        Ok(fresh.bytes)
    }

    /// Whether a read would not wait (data, or end of file) within `timeout` seconds.
    #[pyo3(signature = (timeout=Some(0.0)), text_signature = "(self, timeout=0.0)")]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = timeout_arg(timeout)?;
        let end = self.inner.get(&self.what)?;
        detached(py, |check| end.poll(timeout, check))
    }

    /// Bytes waiting in the pipe.
    fn available(&self) -> PyResult<u64> {
        self.inner.get(&self.what)?.available().py_err()
    }
});
common_methods!(PipeWriter, "PipeWriter", {
    /// Writes some of `data` (at least one byte, unless empty) and returns how many; waits
    /// while the pipe is full. `BrokenPipeError` when every reader is gone.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let end = self.inner.get(&self.what)?;
        if let Ok(bytes) = data.cast::<PyBytes>() {
            let slice = bytes.as_bytes();
            return detached(py, |check| end.write(slice, check));
        }
        let view = Buffer::readable(data)?;
        let slice = view.as_slice();
        detached(py, |check| end.write(slice, check))
    }

    /// Writes every byte of `data` within the timeout (a timeout may leave part written).
    fn write_all(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let end = self.inner.get(&self.what)?;
        if let Ok(bytes) = data.cast::<PyBytes>() {
            let slice = bytes.as_bytes();
            return detached(py, |check| end.write_all(slice, check));
        }
        let view = Buffer::readable(data)?;
        let slice = view.as_slice();
        detached(py, |check| end.write_all(slice, check))
    }
});

impl PipeReader {
    pub(crate) fn wrap(end: CoreReader) -> PipeReader {
        PipeReader {
            what: end.what().to_string(),
            inner: Slot::new(end),
        }
    }
}

impl PipeWriter {
    pub(crate) fn wrap(end: CoreWriter) -> PipeWriter {
        PipeWriter {
            what: end.what().to_string(),
            inner: Slot::new(end),
        }
    }
}

/// A new pipe: `(reader, writer)`, close-on-exec; `capacity` sets its size (Linux).
#[pyfunction]
#[pyo3(signature = (*, capacity=None))]
pub fn pipe(py: Python<'_>, capacity: Option<usize>) -> PyResult<(Py<PipeReader>, Py<PipeWriter>)> {
    let (r, w) = core::pipe().py_err()?;
    if let Some(size) = capacity {
        w.set_capacity(size).py_err()?;
    }
    Ok((
        Py::new(py, PipeReader::wrap(r))?,
        Py::new(py, PipeWriter::wrap(w))?,
    ))
}

/// A named pipe (FIFO) in the file system.
#[pyclass(frozen, module = "fastipc", name = "FIFO")]
pub struct Fifo {
    path: PathBuf,
    created: AtomicBool,
}

#[pymethods]
impl Fifo {
    #[new]
    #[pyo3(signature = (path, create=false, *, mode=0o600))]
    fn new(py: Python<'_>, path: PathBuf, create: bool, mode: u32) -> PyResult<Fifo> {
        if create {
            py.detach(|| core::mkfifo(&path, mode)).py_err()?;
        }
        Ok(Fifo {
            path,
            created: AtomicBool::new(create),
        })
    }

    /// The path.
    #[getter]
    fn path(&self) -> String {
        self.path.display().to_string()
    }

    /// Opens for reading, waiting until a writer opens the FIFO (`TimeoutError` at the deadline).
    #[pyo3(signature = (timeout=None))]
    fn open_reader(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PipeReader> {
        let timeout = timeout_arg(timeout)?;
        let path = &self.path;
        let end = detached(py, |check| core::open_fifo_reader(path, timeout, check))?;
        Ok(PipeReader::wrap(end))
    }

    /// Opens for writing, waiting until a reader opens the FIFO (`TimeoutError` at the deadline).
    #[pyo3(signature = (timeout=None))]
    fn open_writer(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PipeWriter> {
        let timeout = timeout_arg(timeout)?;
        let path = &self.path;
        let end = detached(py, |check| core::open_fifo_writer(path, timeout, check))?;
        Ok(PipeWriter::wrap(end))
    }

    /// Removes the FIFO from the file system (open ends keep working).
    fn unlink(&self) -> PyResult<()> {
        self.created.store(false, Ordering::Relaxed);
        rustix::fs::unlink(&self.path).map_err(|e| {
            PyOSError::new_err((e.raw_os_error(), crate::error::errno_text(e), self.path()))
        })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Unlinks the FIFO if this object created it (and it was not unlinked yet).
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        if self.created.swap(false, Ordering::Relaxed) {
            match rustix::fs::unlink(&self.path) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => {
                    return Err(PyOSError::new_err((
                        e.raw_os_error(),
                        crate::error::errno_text(e),
                        self.path(),
                    )))
                }
            }
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("<fastipc.FIFO {}>", self.path.display())
    }
}
