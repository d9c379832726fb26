//! What `Queue` and `Channel` handles do alike when they close or unlink.

use std::sync::Arc;

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::prelude::*;

use crate::channel::local::Local;
use crate::py::errors::IntoPy;
use crate::py::ringops::Owner;
use crate::py::slot::{Closable, Slot};

/// `close()` of a queue or a channel end: `BufferError` while a view or reservation of it is
/// held (as `mmap` refuses to close under exported buffers); else takes the core out and marks
/// it closed (waits in other threads end with EBADF) and stops its notification threads.
/// Idempotent.
pub fn close<T: Closable>(
    py: Python<'_>,
    slot: &Slot<T>,
    what: &str,
    local: fn(&T) -> &Local,
    owner: fn(Arc<T>) -> Owner,
) -> PyResult<()> {
    if let Ok(core) = slot.get(what) {
        if local(&core).holds() > 0 {
            return Err(PyBufferError::new_err(format!(
                "cannot close {what}: a message view or reservation is still held"
            )));
        }
    }
    if let Some(core) = slot.close() {
        crate::py::notify::stop(py, &owner(core));
    }
    Ok(())
}

/// `unlink()` of a named queue or channel; a `ValueError` naming `noun` for an anonymous one.
pub fn unlink(py: Python<'_>, name: Option<&str>, noun: &str) -> PyResult<()> {
    let Some(name) = name else {
        return Err(PyValueError::new_err(format!(
            "an anonymous {noun} has no name to unlink"
        )));
    };
    py.detach(|| crate::shm::unlink(name)).py_err()
}
