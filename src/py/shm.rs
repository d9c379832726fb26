//! `fastipc.SharedMemory`: a mapped shared memory segment, with `buf` a zero-copy memoryview.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyMemoryView, PyType};

use crate::py::buffer::Segment;
use crate::py::errors::IntoPy;
use crate::py::slot::closed;
use crate::shm::{self, SharedMemory as Core};

/// A shared memory segment: `multiprocessing.shared_memory.SharedMemory` with POSIX names, a
/// mode, reserved pages and nothing tracked behind the user's back.
#[pyclass(frozen, module = "fastipc", name = "SharedMemory")]
pub struct SharedMemory {
    open: Mutex<Option<Open>>,
    view: Mutex<Option<Py<PyMemoryView>>>,
    name: Option<String>,
    size: usize,
}

/// An open segment: the object that exports its bytes (unmapped when the last reference to it
/// goes), and its descriptor.
struct Open {
    segment: Py<Segment>,
    fd: OwnedFd,
}

/// What `SharedMemory(name, create, size)` is called with to unpickle.
type ReduceArgs = (Option<String>, bool, usize);

impl SharedMemory {
    fn wrap(py: Python<'_>, core: Core) -> PyResult<SharedMemory> {
        let size = core.size();
        let (fd, map, name) = core.into_parts();
        let segment = Py::new(py, Segment::new(map))?;
        Ok(SharedMemory {
            open: Mutex::new(Some(Open { segment, fd })),
            view: Mutex::new(None),
            name,
            size,
        })
    }

    fn segment(&self, py: Python<'_>) -> Option<Py<Segment>> {
        let guard = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref().map(|open| open.segment.clone_ref(py))
    }

    fn fd_of(&self) -> Option<i32> {
        let guard = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref().map(|open| open.fd.as_raw_fd())
    }

    /// The name, or "anonymous segment".
    pub(crate) fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("anonymous segment")
    }
}

fn size_arg(size: i64) -> PyResult<u64> {
    u64::try_from(size).map_err(|_| PyValueError::new_err("'size' must be a positive integer"))
}

#[pymethods]
impl SharedMemory {
    /// Creates (`create=True`) or opens the segment `name`.
    #[new]
    #[pyo3(signature = (name=None, create=false, size=0, *, mode=0o600))]
    fn new(
        py: Python<'_>,
        name: Option<&str>,
        create: bool,
        size: i64,
        mode: u32,
    ) -> PyResult<Self> {
        let size = size_arg(size)?;
        let core = if create {
            if size == 0 {
                return Err(PyValueError::new_err(
                    "'size' must be a positive number different from zero",
                ));
            }
            py.detach(|| Core::create(name, size, mode)).py_err()?
        } else {
            let Some(name) = name else {
                return Err(PyValueError::new_err(
                    "'name' can only be None if create=True",
                ));
            };
            py.detach(|| Core::open(name)).py_err()?
        };
        SharedMemory::wrap(py, core)
    }

    /// An anonymous segment (a sealed memfd on Linux) to hand to another process by descriptor
    /// passing.
    #[classmethod]
    fn anonymous(_cls: &Bound<'_, PyType>, py: Python<'_>, size: i64) -> PyResult<Self> {
        let size = size_arg(size)?;
        let core = py.detach(|| Core::anonymous(size)).py_err()?;
        SharedMemory::wrap(py, core)
    }

    /// Maps the segment behind `fd` (duplicated: the caller keeps and closes its own).
    #[classmethod]
    #[pyo3(signature = (fd, *, require_sealed=true))]
    fn from_fd(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        fd: i32,
        require_sealed: bool,
    ) -> PyResult<Self> {
        if fd < 0 {
            return Err(PyValueError::new_err(format!(
                "invalid file descriptor {fd}"
            )));
        }
        let owned = crate::sys::dup_raw(fd)
            .map_err(|e| crate::Error::os(e, "dup", format!("fd {fd}")))
            .py_err()?;
        let core = py
            .detach(|| Core::from_fd(owned, require_sealed))
            .py_err()?;
        SharedMemory::wrap(py, core)
    }

    /// The name in POSIX form (`"/name"`), or None for an anonymous segment.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Size in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.size
    }

    /// The segment's bytes as a writable memoryview (zero-copy).
    #[getter]
    fn buf(&self, py: Python<'_>) -> PyResult<Py<PyMemoryView>> {
        let mut guard = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(view) = guard.as_ref() {
            return Ok(view.clone_ref(py));
        }
        let Some(segment) = self.segment(py) else {
            return Err(closed(self.label()));
        };
        let view = PyMemoryView::from(segment.bind(py).as_any())?.unbind();
        *guard = Some(view.clone_ref(py));
        Ok(view)
    }

    /// The descriptor (-1 once closed).
    #[getter]
    fn fd(&self) -> i32 {
        self.fd_of().unwrap_or(-1)
    }

    /// The descriptor; `OSError(EBADF)` once closed.
    fn fileno(&self) -> PyResult<i32> {
        self.fd_of().ok_or_else(|| closed(self.label()))
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.fd_of().is_none()
    }

    /// Unmaps the segment and closes the descriptor; the segment itself lives on until
    /// `unlink()`. `BufferError` while views of `buf` are exported. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(view) = taken {
            if let Err(err) = view.bind(py).call_method0(pyo3::intern!(py, "release")) {
                *self.view.lock().unwrap_or_else(PoisonError::into_inner) = Some(view);
                return Err(if err.is_instance_of::<PyBufferError>(py) {
                    PyBufferError::new_err(format!(
                        "cannot close {}: views of its buf are still exported ({})",
                        self.label(),
                        err.value(py)
                    ))
                } else {
                    err
                });
            }
        }
        let mut guard = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = guard.as_ref() {
            let n = open.segment.get().exports();
            if n > 0 {
                return Err(PyBufferError::new_err(format!(
                    "cannot close {}: {n} view(s) of its buf are still exported (release the \
                     memoryviews and arrays made from it first)",
                    self.label()
                )));
            }
        }
        // The descriptor is closed now; the memory is unmapped when the last reference to the
        // segment object goes.
        drop(guard.take());
        Ok(())
    }

    /// Removes the segment's name (the memory lives while anyone maps it).
    fn unlink(&self, py: Python<'_>) -> PyResult<()> {
        let Some(name) = self.name.clone() else {
            return Err(PyValueError::new_err(
                "an anonymous segment has no name to unlink",
            ));
        };
        py.detach(|| shm::unlink(&name)).py_err()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.close(py)
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, ReduceArgs)> {
        if self.name.is_none() {
            return Err(PyValueError::new_err(
                "an anonymous segment cannot be pickled: pass its descriptor instead",
            ));
        }
        let cls = py.get_type::<SharedMemory>().into_any().unbind();
        Ok((cls, (self.name.clone(), false, self.size)))
    }

    fn __repr__(&self) -> String {
        match self.fd_of() {
            Some(fd) => format!(
                "<fastipc.SharedMemory {} size={} fd={fd}>",
                self.label(),
                self.size
            ),
            None => format!(
                "<fastipc.SharedMemory {} size={} closed>",
                self.label(),
                self.size
            ),
        }
    }
}
