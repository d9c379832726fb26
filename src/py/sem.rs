//! `fastipc.Semaphore`: a POSIX named semaphore.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::py::blocking::detached;
use crate::py::errors::IntoPy;
use crate::py::slot::closed;
use crate::py::timeout_arg;
use crate::sem::{self, Semaphore as Core};
use crate::wait::Deadline;

/// A named semaphore shared with other processes, C programs (`sem_open`) and `posix_ipc`.
///
/// `close()` marks the object closed (every later call raises `OSError(EBADF)`, a wait in another
/// thread ends at its next slice); the handle itself is closed with the object, so that no thread
/// can ever use a closed `sem_t`.
#[pyclass(frozen, module = "fastipc", name = "Semaphore")]
pub struct Semaphore {
    core: Core,
    name: String,
}

impl Semaphore {
    fn get(&self) -> PyResult<&Core> {
        if self.core.is_closed() {
            return Err(closed(&self.name));
        }
        Ok(&self.core)
    }
}

/// `acquire`'s arguments as a deadline, with threading's rules.
pub(crate) fn acquire_deadline(blocking: bool, timeout: Option<f64>) -> PyResult<Deadline> {
    if !blocking {
        if timeout.is_some() {
            return Err(PyValueError::new_err(
                "can't specify a timeout for a non-blocking call",
            ));
        }
        return Ok(Deadline::after(Some(std::time::Duration::ZERO)));
    }
    // threading accepts -1 as "forever".
    let timeout = match timeout {
        Some(-1.0) => None,
        other => other,
    };
    Ok(Deadline::after(timeout_arg(timeout)?))
}

#[pymethods]
impl Semaphore {
    /// Creates (`create=True`, exclusively, with `value` and `mode`) or opens the semaphore
    /// `name` (None with `create=True`: a generated `/fastipc-…` name).
    #[new]
    #[pyo3(signature = (name=None, create=false, value=0, *, mode=0o600))]
    fn new(
        py: Python<'_>,
        name: Option<&str>,
        create: bool,
        value: i64,
        mode: u32,
    ) -> PyResult<Self> {
        let value = u32::try_from(value).map_err(|_| {
            PyValueError::new_err(format!(
                "initial value must be from 0 to {}, not {value}",
                sem::value_max()
            ))
        })?;
        let core = if create {
            py.detach(|| Core::create(name, value, mode)).py_err()?
        } else {
            let Some(name) = name else {
                return Err(PyValueError::new_err(
                    "'name' can only be None if create=True",
                ));
            };
            py.detach(|| Core::open(name)).py_err()?
        };
        Ok(Semaphore {
            name: core.name().to_string(),
            core,
        })
    }

    /// Decrements the value, waiting while it is zero. Returns False if `blocking` is False
    /// or `timeout` seconds pass first; releases the GIL and lets Ctrl-C through while waiting.
    #[pyo3(signature = (blocking=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, blocking: bool, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = acquire_deadline(blocking, timeout)?;
        let core = self.get()?;
        if core.try_acquire().py_err()? {
            return Ok(true);
        }
        if !blocking || timeout == Some(0.0) {
            return Ok(false);
        }
        // One sched_yield before the GIL is released: a peer waiting to run on this core (the
        // other end of a ping-pong) answers at once, and the GIL round trip is saved. Holding
        // the GIL across one yield costs other threads no more than an ordinary preemption.
        if core.yield_then_try().py_err()? {
            return Ok(true);
        }
        detached(py, |check| core.acquire(deadline, check))
    }

    /// Increments the value `n` times, waking as many waiters.
    #[pyo3(signature = (n=1))]
    fn release(&self, py: Python<'_>, n: i64) -> PyResult<()> {
        let n = u32::try_from(n)
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| PyValueError::new_err("n must be one or more"))?;
        let core = self.get()?;
        if n == 1 {
            return core.release(1).py_err();
        }
        py.detach(|| core.release(n)).py_err()
    }

    /// The current value (`NotSupportedError` on macOS, which cannot read it).
    #[getter]
    fn value(&self) -> PyResult<u32> {
        self.get()?.value().py_err()
    }

    /// The name in POSIX form.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Removes the name; handles already open keep working.
    fn unlink(&self, py: Python<'_>) -> PyResult<()> {
        let name = self.name.clone();
        py.detach(|| sem::unlink(&name)).py_err()
    }

    /// Closes this handle (the semaphore lives on until unlinked). Idempotent; a wait in another
    /// thread ends with `OSError(EBADF)`.
    fn close(&self) {
        self.core.mark_closed();
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().acquire(slf.py(), true, None)?;
        Ok(slf)
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.release(py, 1)
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " closed" } else { "" };
        format!("<fastipc.Semaphore {}{state}>", self.name)
    }
}
