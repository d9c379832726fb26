//! The shared shape of the bindings' objects: a core value behind a lock that `close()` takes
//! out, so that an operation in another thread keeps its `Arc` until it ends (at its next slice).

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

/// A core object, or nothing once closed.
pub struct Slot<T>(Mutex<Option<Arc<T>>>);

impl<T> Slot<T> {
    /// A slot holding `value`.
    pub fn new(value: T) -> Slot<T> {
        Slot(Mutex::new(Some(Arc::new(value))))
    }

    /// The object, or `OSError(EBADF)` naming `what` once closed.
    pub fn get(&self, what: &str) -> PyResult<Arc<T>> {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().cloned().ok_or_else(|| closed(what))
    }

    /// Takes the object out (closing it when the last user lets go).
    pub fn take(&self) -> Option<Arc<T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Whether it was taken.
    pub fn is_closed(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }
}

/// `OSError(EBADF)` for an operation on a closed object.
pub fn closed(what: &str) -> PyErr {
    let errno = rustix::io::Errno::BADF;
    PyOSError::new_err((
        errno.raw_os_error(),
        "the object is closed",
        what.to_string(),
    ))
}
