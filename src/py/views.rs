//! `MessageView` (zero-copy receive) and `Reservation` (zero-copy send): memoryviews of a
//! message where it lies in the ring, holding the consumers' or producers' lock until released.
//!
//! The lock belongs to the process that took it (see `channel::lock`): any thread of it may
//! release a view or a reservation; a forked child's copy of one releases nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyMemoryView;

use std::sync::Arc;

use crate::channel::{big, Slot};
use crate::py::buffer::RingBytes;
use crate::py::ringops::{Got, Owner};
use crate::shm::SharedMemory;
use crate::sys::shm::Mapping;

fn memoryview(
    py: Python<'_>,
    keep: Arc<Mapping>,
    ptr: Option<*mut u8>,
    len: usize,
    readonly: bool,
) -> PyResult<Py<PyMemoryView>> {
    let ptr = ptr.ok_or_else(|| PyValueError::new_err("message out of range"))?;
    let bytes = Bound::new(py, RingBytes::new(keep, ptr, len, readonly))?;
    Ok(PyMemoryView::from(bytes.as_any())?.unbind())
}

/// The memoryview of a received message, where it lies.
fn view_of(py: Python<'_>, owner: &Owner, got: &Got) -> PyResult<Py<PyMemoryView>> {
    match got {
        Got::Ring(msg) => {
            let region = owner.rx().region();
            let ptr = region.ptr(msg.data, msg.len);
            memoryview(py, region.keeper(), ptr, msg.len, true)
        }
        Got::Big(map, len, _) => {
            let ptr = (*len <= map.len()).then(|| map.as_ptr());
            memoryview(py, Arc::clone(map), ptr, *len, true)
        }
    }
}

fn release_view(py: Python<'_>, view: &Mutex<Option<Py<PyMemoryView>>>) -> PyResult<()> {
    let taken = view.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(v) = taken {
        if let Err(err) = v.bind(py).call_method0(pyo3::intern!(py, "release")) {
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
    msg: Mutex<Option<Got>>,
    view: Mutex<Option<Py<PyMemoryView>>>,
    len: usize,
}

impl MessageView {
    /// A view of `got` (for a message in the ring, the consumers' lock held).
    pub fn new(owner: Owner, got: Got) -> MessageView {
        owner.local().hold();
        MessageView {
            owner,
            len: got.len(),
            msg: Mutex::new(Some(got)),
            view: Mutex::new(None),
        }
    }
}

#[pymethods]
impl MessageView {
    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<PyMemoryView>> {
        let msg = self.msg.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(got) = msg.as_ref() else {
            return Err(PyValueError::new_err("the message view was released"));
        };
        let mut view = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = view.as_ref() {
            return Ok(v.clone_ref(py));
        }
        let v = view_of(py, &self.owner, got)?;
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
        if let Some(got) = taken {
            // The segment shrunk while the view was held: what it showed was zeroes.
            let intact = self.owner.got_intact(&got);
            self.owner.done(got);
            self.owner.local().unhold();
            intact.map_err(|e| crate::py::errors::to_py(e, None))?;
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
            self.owner.done(msg);
            self.owner.local().unhold();
        }
    }
}

/// Bytes reserved in the ring for one message.
#[pyclass(frozen, module = "fastipc", name = "Reservation")]
pub struct Reservation {
    owner: Owner,
    slot: Mutex<Option<(Slot, Option<SharedMemory>)>>,
    view: Mutex<Option<Py<PyMemoryView>>>,
    size: AtomicUsize,
    len: usize,
}

impl Reservation {
    /// A reservation of `n` bytes at `slot` (the producers' lock held), or in `big` (then `slot`
    /// is for its reference).
    pub fn new(owner: Owner, n: usize, slot: Slot, big: Option<SharedMemory>) -> Reservation {
        owner.local().hold();
        Reservation {
            owner,
            len: n,
            size: AtomicUsize::new(n),
            slot: Mutex::new(Some((slot, big))),
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
        if let Some((slot, big)) = taken {
            let finished = finish(
                &self.owner,
                slot,
                big,
                self.size.load(Ordering::Acquire),
                publish,
            )
            .map_err(|e| self.owner.error(e, None, true));
            self.owner.local().unhold();
            finished?;
        }
        Ok(())
    }
}

fn finish(
    owner: &Owner,
    slot: Slot,
    shm: Option<SharedMemory>,
    size: usize,
    publish: bool,
) -> Result<(), crate::error::Error> {
    let ring = owner.tx();
    match shm {
        None if publish => ring.publish(slot, size, 0),
        None => {
            ring.abort(slot);
            Ok(())
        }
        Some(shm) if publish => {
            let reference = big::reference(&shm, size);
            let sent = big::still_whole(&shm, size)
                .and_then(|()| ring.write(&slot, 0, &reference))
                .and_then(|()| ring.publish(slot, reference.len(), crate::channel::layout::F_BIG));
            if sent.is_err() {
                ring.abort(slot);
                big::discard(shm);
            }
            sent
        }
        Some(shm) => {
            ring.abort(slot);
            big::discard(shm);
            Ok(())
        }
    }
}

#[pymethods]
impl Reservation {
    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<PyMemoryView>> {
        let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((slot, big)) = slot.as_ref() else {
            return Err(PyValueError::new_err(
                "the reservation was committed or discarded",
            ));
        };
        let mut view = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = view.as_ref() {
            return Ok(v.clone_ref(py));
        }
        let v = match big {
            None => {
                let region = self.owner.tx().region();
                let ptr = region.ptr(slot.data, slot.len);
                memoryview(py, region.keeper(), ptr, slot.len, false)?
            }
            Some(shm) => {
                // The mapping lives in a keeper of its own, shared with the view.
                let keep =
                    Arc::new(big::map_again(shm).map_err(|e| crate::py::errors::to_py(e, None))?);
                let ptr = keep.as_ptr();
                memoryview(py, keep, Some(ptr), self.len, false)?
            }
        };
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
        self.finish(py, exc_type.is_none_or(pyo3::types::PyAnyMethods::is_none))
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
        let taken = self
            .slot
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((slot, big)) = taken {
            let _ = finish(&self.owner, slot, big, 0, false);
            self.owner.local().unhold();
        }
    }
}
