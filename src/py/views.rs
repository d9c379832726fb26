//! `MessageView` (zero-copy receive) and `Reservation` (zero-copy send): memoryviews of a
//! message where it lies in the ring, holding the consumers' or producers' lock until released.
//!
//! The lock is a robust pthread mutex, owned by the thread that took it: release a view or a
//! reservation in the thread that made it (the `with` block does).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyMemoryView;

use crate::channel::{Msg, Slot};
use crate::py::buffer::RingBytes;
use crate::py::ringops::Owner;

fn memoryview(
    py: Python<'_>,
    owner: &Owner,
    rx: bool,
    at: usize,
    len: usize,
) -> PyResult<Py<PyMemoryView>> {
    let ring = if rx { owner.rx() } else { owner.tx() };
    let region = ring.region();
    let ptr = region
        .ptr(at, len)
        .ok_or_else(|| PyValueError::new_err("message out of range"))?;
    let bytes = Bound::new(py, RingBytes::new(region.keeper(), ptr, len, rx))?;
    Ok(PyMemoryView::from(bytes.as_any())?.unbind())
}

fn release_view(py: Python<'_>, view: &Mutex<Option<Py<PyMemoryView>>>) -> PyResult<()> {
    let taken = view.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(v) = taken {
        if let Err(err) = v.bind(py).call_method0("release") {
            // Still exported (a slice or an array over it): keep it, and the message, for now.
            *view.lock().unwrap_or_else(PoisonError::into_inner) = Some(v);
            return Err(err);
        }
    }
    Ok(())
}

/// A received message where it lies in the ring.
#[pyclass(frozen, module = "fastipc", name = "MessageView")]
pub struct MessageView {
    owner: Owner,
    msg: Mutex<Option<Msg>>,
    view: Mutex<Option<Py<PyMemoryView>>>,
    len: usize,
}

impl MessageView {
    /// A view of `msg` (the consumers' lock held).
    pub fn new(owner: Owner, msg: Msg) -> MessageView {
        MessageView {
            owner,
            len: msg.len,
            msg: Mutex::new(Some(msg)),
            view: Mutex::new(None),
        }
    }
}

#[pymethods]
impl MessageView {
    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<PyMemoryView>> {
        let msg = *self.msg.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(msg) = msg else {
            return Err(PyValueError::new_err("the message view was released"));
        };
        let mut view = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = view.as_ref() {
            return Ok(v.clone_ref(py));
        }
        let v = memoryview(py, &self.owner, true, msg.data, msg.len)?;
        *view = Some(v.clone_ref(py));
        Ok(v)
    }

    #[pyo3(signature = (exc_type, exc, tb))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let _ = (exc_type, exc, tb);
        self.release(py)
    }

    /// Gives the space back now. Idempotent.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        release_view(py, &self.view)?;
        let taken = self
            .msg
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(msg) = taken {
            self.owner.rx().release(msg);
        }
        Ok(())
    }

    fn __len__(&self) -> usize {
        self.len
    }
}

impl Drop for MessageView {
    fn drop(&mut self) {
        if let Some(msg) = self
            .msg
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            self.owner.rx().release(msg);
        }
    }
}

/// Bytes reserved in the ring for one message.
#[pyclass(frozen, module = "fastipc", name = "Reservation")]
pub struct Reservation {
    owner: Owner,
    slot: Mutex<Option<Slot>>,
    view: Mutex<Option<Py<PyMemoryView>>>,
    size: AtomicUsize,
    len: usize,
}

impl Reservation {
    /// A reservation of `slot` (the producers' lock held).
    pub fn new(owner: Owner, slot: Slot) -> Reservation {
        Reservation {
            owner,
            len: slot.len,
            size: AtomicUsize::new(slot.len),
            slot: Mutex::new(Some(slot)),
            view: Mutex::new(None),
        }
    }

    fn finish(&self, py: Python<'_>, publish: bool) -> PyResult<()> {
        release_view(py, &self.view)?;
        let taken = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(slot) = taken {
            if publish {
                self.owner
                    .tx()
                    .publish(slot, self.size.load(Ordering::Acquire), 0);
            } else {
                self.owner.tx().abort(slot);
            }
        }
        Ok(())
    }
}

#[pymethods]
impl Reservation {
    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<PyMemoryView>> {
        let slot = *self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(slot) = slot else {
            return Err(PyValueError::new_err(
                "the reservation was committed or discarded",
            ));
        };
        let mut view = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = view.as_ref() {
            return Ok(v.clone_ref(py));
        }
        let v = memoryview(py, &self.owner, false, slot.data, slot.len)?;
        *view = Some(v.clone_ref(py));
        Ok(v)
    }

    #[pyo3(signature = (exc_type, exc, tb))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let _ = (exc, tb);
        self.finish(py, exc_type.is_none_or(|t| t.is_none()))
    }

    /// Publishes only the first `size` bytes.
    fn shrink(&self, size: i64) -> PyResult<()> {
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= self.len)
            .ok_or_else(|| {
                PyValueError::new_err(format!("size must be from 0 to {}, not {size}", self.len))
            })?;
        self.size.store(size, Ordering::Release);
        Ok(())
    }

    /// Publishes now. Idempotent.
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, true)
    }

    /// Drops the reservation; nothing is delivered. Idempotent.
    fn discard(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, false)
    }

    fn __len__(&self) -> usize {
        self.len
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(slot) = self
            .slot
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            self.owner.tx().abort(slot);
        }
    }
}
