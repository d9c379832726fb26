//! The shared shape of the bindings' closable objects: a core value behind a lock that `close()`
//! takes out, so that an operation in another thread keeps its `Arc` until it ends (at its next
//! slice), and the one error every operation on a closed object raises.

use std::sync::{Arc, Mutex, PoisonError};

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

/// A core object whose waits in other threads can be told to end when it is closed.
pub trait Closable {
    /// Makes waits in other threads end (with EBADF) at their next slice.
    fn mark_closed(&self);
}

/// A core object, or nothing once closed.
pub struct Slot<T>(Mutex<Option<Arc<T>>>);

impl<T> Slot<T> {
    /// A slot holding `value`.
    pub fn new(value: T) -> Slot<T> {
        Slot(Mutex::new(Some(Arc::new(value))))
    }

    /// The object, or [`closed`] naming `what` once closed.
    pub fn get(&self, what: &str) -> PyResult<Arc<T>> {
        let guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref().cloned().ok_or_else(|| closed(what))
    }

    /// Takes the object out (closing it when the last user lets go).
    pub fn take(&self) -> Option<Arc<T>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Whether it was taken.
    pub fn is_closed(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }
}

impl<T: Closable> Slot<T> {
    /// Takes the object out and marks it closed, so that waits in other threads end; returns it
    /// (None if it was closed already). Idempotent.
    pub fn close(&self) -> Option<Arc<T>> {
        let taken = self.take();
        if let Some(value) = &taken {
            value.mark_closed();
        }
        taken
    }
}

/// `OSError(EBADF)` for an operation on a closed object, with `what` (its address or name) as the
/// file name: the one "closed" error of every binding.
pub fn closed(what: &str) -> PyErr {
    let errno = rustix::io::Errno::BADF;
    PyOSError::new_err((
        errno.raw_os_error(),
        "the object is closed",
        what.to_string(),
    ))
}

/// Implements [`Closable`] for core types that have an inherent `mark_closed`.
macro_rules! closable {
    ($($ty:ty),* $(,)?) => {
        $(impl Closable for $ty {
            fn mark_closed(&self) {
                <$ty>::mark_closed(self);
            }
        })*
    };
}

closable!(
    crate::socket::Stream,
    crate::socket::Listener,
    crate::socket::Datagram,
    crate::lock::Lock,
    crate::pipe::PipeReader,
    crate::pipe::PipeWriter,
);
#[cfg(target_os = "linux")]
closable!(crate::mqueue::MessageQueue, crate::signals::SignalReceiver);
#[cfg(any(target_os = "linux", target_os = "android"))]
closable!(crate::sysvmq::SysVQueue);
