//! `fastipc.Lock`: a crash-robust lock shared between processes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyType;
use rustix::io::Errno;

use crate::error::Error;
use crate::lock::{self, Acquired, Lock as Core};
use crate::py::blocking::detached;
use crate::py::buffer::Buffer;
use crate::py::errors::IntoPy;
use crate::py::sem::acquire_deadline;
use crate::py::shm::SharedMemory;
use crate::py::slot::Slot;
use crate::sys::mutex::{IN_BUFFER_ALIGN, IN_BUFFER_SIZE};

/// A lock in shared memory on a robust process-shared mutex: when its holder dies, the next
/// `acquire` succeeds and sets `recovered`.
#[pyclass(frozen, module = "fastipc", name = "Lock")]
pub struct Lock {
    inner: Slot<Core>,
    name: String,
    recovered: AtomicBool,
    /// False for a lock placed in a `SharedMemory` with `in_buffer`: no segment of its own.
    own_segment: bool,
}

impl Lock {
    fn get(&self) -> PyResult<Arc<Core>> {
        self.inner.get(&self.name)
    }

    fn convert(&self, err: PyErr, errno: Option<Errno>) -> PyErr {
        match errno {
            Some(Errno::DEADLK) => PyRuntimeError::new_err(format!(
                "cannot acquire {}: this thread holds it already (fastipc.Lock is not reentrant)",
                self.name
            )),
            Some(Errno::PERM) => PyRuntimeError::new_err(format!(
                "cannot release {}: this thread does not hold it",
                self.name
            )),
            _ => err,
        }
    }
}

fn errno_of(result: &Result<impl Sized, Error>) -> Option<Errno> {
    result.as_ref().err().and_then(Error::errno)
}

#[pymethods]
impl Lock {
    /// Creates (`create=True`, exclusively, with `mode`) or opens the lock `name` (None with
    /// `create=True`: a generated `/fastipc-…` name). The lock lives in a small shared memory
    /// segment of that name.
    #[new]
    #[pyo3(signature = (name=None, create=false, *, mode=0o600))]
    fn new(py: Python<'_>, name: Option<&str>, create: bool, mode: u32) -> PyResult<Self> {
        let core = if create {
            py.detach(|| Core::create(name, mode)).py_err()?
        } else {
            let Some(name) = name else {
                return Err(PyValueError::new_err(
                    "'name' can only be None if create=True",
                ));
            };
            py.detach(|| Core::open(name)).py_err()?
        };
        Ok(Lock {
            name: core.name().to_string(),
            inner: Slot::new(core),
            recovered: AtomicBool::new(false),
            own_segment: true,
        })
    }

    /// Bytes a lock takes in a `SharedMemory` (`in_buffer`).
    #[classattr]
    #[allow(non_snake_case)]
    fn SIZE() -> usize {
        IN_BUFFER_SIZE
    }

    /// A lock placed at `offset` (a multiple of 64) of the `SharedMemory` `shm`, next to the data
    /// it protects, taking `Lock.SIZE` bytes. Exactly one process initialises it with
    /// `init=True` before the others use it (they wait up to 2 s for that). `shm` cannot be
    /// closed while the lock is open (`BufferError`).
    #[classmethod]
    #[pyo3(signature = (shm, offset=0, *, init=false))]
    fn in_buffer(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        shm: &Bound<'_, PyAny>,
        offset: i64,
        init: bool,
    ) -> PyResult<Self> {
        let segment = shm.cast::<SharedMemory>().map_err(|_| {
            PyTypeError::new_err(format!(
                "Lock.in_buffer needs a fastipc.SharedMemory, not {}",
                shm.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        let offset = usize::try_from(offset)
            .ok()
            .filter(|o| o % IN_BUFFER_ALIGN == 0)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "offset must be a non-negative multiple of {IN_BUFFER_ALIGN}, not {offset}"
                ))
            })?;
        let label = format!("{}@{offset}", segment.get().label());
        let view = Buffer::writable(&segment.getattr("buf")?)?;
        let size = view.len();
        let mutex = view.into_shared_mutex(offset).map_err(|_| {
            PyValueError::new_err(format!(
                "a lock needs {IN_BUFFER_SIZE} bytes at offset {offset}, and the segment has \
                 {size}"
            ))
        })?;
        let what = label.clone();
        let core = py
            .detach(move || Core::in_region(mutex, init, what))
            .py_err()?;
        Ok(Lock {
            name: label,
            inner: Slot::new(core),
            recovered: AtomicBool::new(false),
            own_segment: false,
        })
    }

    /// Takes the lock. Returns False if `blocking` is False or `timeout` seconds pass first.
    /// When the previous holder died holding it, the lock is taken all the same and
    /// `recovered` is True until the next acquire. Releases the GIL; Ctrl-C gets through.
    #[pyo3(signature = (blocking=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, blocking: bool, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = acquire_deadline(blocking, timeout)?;
        let core = self.get()?;
        // Uncontended: no GIL release needed.
        let first = core.acquire(
            crate::wait::Deadline::after(Some(std::time::Duration::ZERO)),
            &mut crate::wait::Uninterrupted,
        );
        let errno = errno_of(&first);
        let outcome = match first.py_err() {
            Ok(Some(how)) => Some(how),
            Ok(None) if !blocking || timeout == Some(0.0) => None,
            Ok(None) => {
                let mut errno = None;
                let result = detached(py, |check| {
                    let r = core.acquire(deadline, check);
                    errno = errno_of(&r);
                    r
                });
                result.map_err(|e| self.convert(e, errno))?
            }
            Err(e) => return Err(self.convert(e, errno)),
        };
        match outcome {
            Some(how) => {
                self.recovered
                    .store(how == Acquired::PreviousOwnerDied, Ordering::Release);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Releases the lock; `RuntimeError` if this thread does not hold it.
    fn release(&self) -> PyResult<()> {
        let core = self.get()?;
        let result = core.release();
        let errno = errno_of(&result);
        result.py_err().map_err(|e| self.convert(e, errno))
    }

    /// True while anyone holds the lock, in this process or another, a holder that died holding
    /// it included until an `acquire` takes it over (as `threading.Lock.locked`). Takes nothing:
    /// it does not recover a dead holder's lock, and leaves `recovered` as it is.
    /// `NotSupportedError` off Linux.
    fn locked(&self) -> PyResult<bool> {
        self.get()?.is_locked().py_err()
    }

    /// True if the most recent successful `acquire` found that the previous holder had died
    /// holding the lock: the data it protects may be half-updated and should be repaired.
    #[getter]
    fn recovered(&self) -> bool {
        self.recovered.load(Ordering::Acquire)
    }

    /// The name in POSIX form.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Removes the lock's name; processes that opened it keep using it.
    fn unlink(&self, py: Python<'_>) -> PyResult<()> {
        if !self.own_segment {
            return Err(PyValueError::new_err(format!(
                "the lock {} lives in a SharedMemory: unlink the segment instead",
                self.name
            )));
        }
        let name = self.name.clone();
        py.detach(|| lock::unlink(&name)).py_err()
    }

    /// Closes this handle (the lock lives on until unlinked). Idempotent. Closing while a thread
    /// holds the lock keeps it mapped, so that the holder's death still counts.
    fn close(&self) {
        self.inner.close();
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().acquire(slf.py(), true, None)?;
        Ok(slf)
    }

    fn __exit__(
        &self,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.release()
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " closed" } else { "" };
        format!("<fastipc.Lock {}{state}>", self.name)
    }
}
