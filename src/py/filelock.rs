//! `fastipc.FileLock`: a record lock on a byte range of a file.

use std::os::fd::AsRawFd;
use std::path::PathBuf;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;

use crate::filelock::{FileLock as CoreLock, LockKind};
use crate::py::blocking::detached;
use crate::py::errors::IntoPy;
use crate::py::slot::Slot;
use crate::py::timeout_arg;

fn lock_holder_class(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    CLASS
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("fastipc._records")?
                    .getattr("LockHolder")?
                    .unbind(),
            )
        })
        .map(|c| c.bind(py))
}

/// A lock on a byte range of a file, shared with other processes and with C programs that use
/// `fcntl` locks on the same file.
#[pyclass(frozen, module = "fastipc", name = "FileLock")]
pub struct FileLock {
    inner: Slot<CoreLock>,
    path: String,
    shared: bool,
    start: u64,
    length: u64,
    kind: LockKind,
}

#[pymethods]
impl FileLock {
    #[new]
    #[pyo3(signature = (path, *, shared=false, start=0, length=0, kind=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        shared: bool,
        start: u64,
        length: u64,
        kind: Option<&str>,
    ) -> PyResult<FileLock> {
        let kind = match kind {
            Some(k) => LockKind::parse(k).py_err()?,
            None => LockKind::default_here(),
        };
        let lock = py
            .detach(|| CoreLock::open(&path, shared, start, length, kind))
            .py_err()?;
        Ok(FileLock {
            path: lock.what().to_string(),
            shared,
            start,
            length,
            kind,
            inner: Slot::new(lock),
        })
    }

    /// Takes the lock. True once held; False if `blocking` is False and the lock is taken, or
    /// at the timeout (as `threading.Lock.acquire`). Ctrl-C raises `KeyboardInterrupt` while
    /// waiting.
    #[pyo3(signature = (blocking=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, blocking: bool, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = timeout_arg(timeout)?;
        let lock = self.inner.get(&self.path)?;
        detached(py, |check| lock.acquire(blocking, timeout, check))
    }

    /// Releases the lock. `RuntimeError` if this object does not hold it.
    fn release(&self) -> PyResult<()> {
        let lock = self.inner.get(&self.path)?;
        if !lock.held() {
            return Err(PyRuntimeError::new_err(format!(
                "release unlocked lock ({})",
                self.path
            )));
        }
        lock.release().py_err()
    }

    /// Whether this object holds the lock.
    #[getter]
    fn held(&self) -> bool {
        self.inner.get(&self.path).is_ok_and(|l| l.held())
    }

    /// Who holds a lock that conflicts with this one (`F_GETLK`): a LockHolder(pid, start,
    /// length, shared), or None.
    fn holder(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let lock = self.inner.get(&self.path)?;
        match lock.conflict().py_err()? {
            None => Ok(None),
            Some(c) => Ok(Some(
                lock_holder_class(py)?
                    .call1((c.pid, c.start, c.length, c.shared))?
                    .unbind(),
            )),
        }
    }

    /// The path.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Whether the lock is shared (a read lock).
    #[getter]
    fn shared(&self) -> bool {
        self.shared
    }

    /// The first byte.
    #[getter]
    fn start(&self) -> u64 {
        self.start
    }

    /// The length (0: to the end of the file).
    #[getter]
    fn length(&self) -> u64 {
        self.length
    }

    /// "ofd" (open-file-description lock) or "posix" (process-associated record lock).
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind.name()
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// The descriptor of the locked file.
    fn fileno(&self) -> PyResult<i32> {
        Ok(self.inner.get(&self.path)?.as_fd().as_raw_fd())
    }

    /// Closes the file, which releases the lock. Idempotent.
    fn close(&self) {
        drop(self.inner.take());
    }

    fn __enter__(slf: Py<Self>, py: Python<'_>) -> PyResult<Py<Self>> {
        slf.get().acquire(py, true, None)?;
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        if self.held() {
            self.release()?;
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        let range = if self.length == 0 {
            format!("{}-", self.start)
        } else {
            format!("{}-{}", self.start, self.start + self.length - 1)
        };
        let state = match self.inner.get(&self.path) {
            Ok(l) if l.held() => "held",
            Ok(_) => "free",
            Err(_) => "closed",
        };
        let mode = if self.shared { "shared" } else { "exclusive" };
        format!(
            "<fastipc.FileLock {} {} bytes {} {} {}>",
            self.path,
            self.kind.name(),
            range,
            mode,
            state
        )
    }
}
