//! The Python buffer protocol: borrowing the bytes of any buffer object (bytes, bytearray,
//! memoryview, numpy arrays ...) across a GIL release, allocating `bytes` to receive into, and
//! exporting a shared memory mapping (`SharedMemory.buf`).
//!
//! The buffer protocol is Python's C API, not the operating system's, so its `unsafe` lives here
//! with the bindings rather than in `sys/` (with `fds.rs`, the only binding file allowed it).

// The crate denies `unsafe_code`; Python's buffer and bytes C API works on raw pointers.
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};

use crate::sys::shm::Mapping;

/// A contiguous buffer exported by a Python object, held until dropped.
pub struct Buffer {
    view: Box<ffi::Py_buffer>,
}

// SAFETY: the exporter keeps the memory valid and unmoved while the view is held (a bytearray
// refuses to resize with an export outstanding); the view is released with the GIL in `Drop`.
unsafe impl Send for Buffer {}

impl Buffer {
    fn get(obj: &Bound<'_, PyAny>, flags: c_int) -> PyResult<Buffer> {
        let mut view: Box<ffi::Py_buffer> = Box::new(ffi::Py_buffer::new());
        // SAFETY: `obj` is a live object (we hold a reference and the GIL); `view` points to
        // writable storage for one Py_buffer that outlives the call.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &raw mut *view, flags) };
        if rc != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(Buffer { view })
    }

    /// A read-only, C-contiguous view of any buffer object.
    pub fn readable(obj: &Bound<'_, PyAny>) -> PyResult<Buffer> {
        Buffer::get(obj, ffi::PyBUF_SIMPLE)
    }

    /// A writable, C-contiguous view (bytearray, writable memoryview, numpy array ...).
    pub fn writable(obj: &Bound<'_, PyAny>) -> PyResult<Buffer> {
        Buffer::get(obj, ffi::PyBUF_WRITABLE)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        usize::try_from(self.view.len).unwrap_or(0)
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        if self.len() == 0 {
            return &[];
        }
        // SAFETY: a PyBUF_SIMPLE export is `len` contiguous bytes at `buf`, valid while held.
        unsafe { std::slice::from_raw_parts(self.view.buf as *const u8, self.len()) }
    }

    /// The bytes, mutably (only for views taken with [`Buffer::writable`]).
    pub fn as_mut_slice(&mut self) -> PyResult<&mut [u8]> {
        if self.view.readonly != 0 {
            return Err(PyBufferError::new_err("the buffer is read-only"));
        }
        if self.len() == 0 {
            return Ok(&mut []);
        }
        // SAFETY: a writable export is `len` contiguous writable bytes at `buf`, valid while
        // held; `&mut self` makes this the only slice of it handed out.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.view.buf.cast::<u8>(), self.len()) })
    }
}

/// The bytes of a buffer object to read: a `bytes` object's own (no export, no allocation: the
/// common case of a send), or a buffer export.
pub enum Readable<'a> {
    /// A `bytes` object's contents (immutable while referenced).
    Bytes(&'a [u8]),
    /// Any other buffer object's export.
    Export(Buffer),
}

impl<'a> Readable<'a> {
    /// The bytes of `obj`.
    pub fn of(obj: &'a Bound<'_, PyAny>) -> PyResult<Readable<'a>> {
        if let Ok(bytes) = obj.cast::<PyBytes>() {
            return Ok(Readable::Bytes(bytes.as_bytes()));
        }
        Buffer::readable(obj).map(Readable::Export)
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Readable::Bytes(bytes) => bytes,
            Readable::Export(buffer) => buffer.as_slice(),
        }
    }
}

impl Buffer {
    /// A robust mutex at `offset` of this (writable) view, which it keeps exported for as long
    /// as the mutex lives. `EINVAL` if the bytes there are too few or misaligned.
    pub fn into_shared_mutex(
        self,
        offset: usize,
    ) -> Result<crate::sys::mutex::SharedMutex, rustix::io::Errno> {
        use crate::sys::mutex::{SharedMutex, IN_BUFFER_SIZE};
        let end = offset.checked_add(IN_BUFFER_SIZE);
        if self.view.readonly != 0 || end.is_none_or(|end| end > self.len()) {
            return Err(rustix::io::Errno::INVAL);
        }
        let base = self.view.buf.cast::<u8>();
        // SAFETY: `offset + IN_BUFFER_SIZE <= len` bytes of a writable export lie at `base`; the
        // export (moved into the keeper) keeps them valid until the mutex is dropped. The
        // caller only exports fastipc shared memory segments, whose bytes are shared memory.
        unsafe {
            let at = base.add(offset);
            SharedMutex::borrowed(at, Box::new(std::sync::Mutex::new(self)))
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        Python::attach(|_py| {
            // SAFETY: the view was filled by a successful PyObject_GetBuffer and is released once.
            unsafe { ffi::PyBuffer_Release(&raw mut *self.view) }
        });
    }
}

/// A new `bytes` object of `len` bytes whose contents are about to be written, and the pointer
/// to write them at. The object is not shared with anyone until it is returned.
pub struct Fresh {
    /// The object.
    pub bytes: Py<PyBytes>,
    ptr: *mut u8,
    len: usize,
}

impl Fresh {
    /// Allocates without zeroing (the receive overwrites every byte before anyone sees them).
    pub fn new(py: Python<'_>, len: usize) -> PyResult<Fresh> {
        let size = ffi::Py_ssize_t::try_from(len)
            .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("message too large"))?;
        // SAFETY: a NULL source asks CPython for an uninitialised bytes object of `size` bytes.
        let raw = unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), size) };
        if raw.is_null() {
            return Err(PyErr::fetch(py));
        }
        // SAFETY: `raw` is a new, owned reference to a bytes object.
        let bytes: Py<PyBytes> =
            unsafe { Bound::from_owned_ptr(py, raw).cast_into_unchecked() }.unbind();
        // SAFETY: PyBytes_AsString on a bytes object returns its internal buffer of `len` bytes.
        let ptr = unsafe { ffi::PyBytes_AsString(raw) }.cast::<u8>();
        Ok(Fresh { bytes, ptr, len })
    }

    /// The storage to fill.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: `ptr` is the buffer of a bytes object that only this value references, kept
        // alive by `self.bytes`; no other slice of it exists.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

// SAFETY: the pointer belongs to the bytes object owned by `bytes` (a `Py`, which is Send); no
// other thread can reach it before the value is handed back.
unsafe impl Send for Fresh {}

/// A received pickle at least this large, without out-of-band buffers, is copied into the
/// thread's reusable buffer to be unpickled (see [`Scratch`]).
pub const SCRATCH_MIN: usize = 64 * 1024;

/// The largest buffer a thread keeps from one receive to the next.
const SCRATCH_KEEP: usize = 16 << 20;

thread_local! {
    static SCRATCH: std::cell::RefCell<Option<Py<PyByteArray>>> =
        const { std::cell::RefCell::new(None) };
}

/// Whether `obj` has no other reference than the caller's.
fn referenced_once(obj: &Bound<'_, PyByteArray>) -> bool {
    // SAFETY: `obj` is a live object: the caller holds a reference to it, and the GIL.
    unsafe { ffi::Py_REFCNT(obj.as_ptr()) == 1 }
}

/// The `bytearray` a received pickle is copied into and unpickled from. A pickle that nothing
/// references once unpickled (no out-of-band buffers) goes into a buffer this thread keeps from
/// one receive to the next: a large message then allocates only what unpickling makes, instead
/// of a fresh copy whose pages the C library may have handed back to the kernel since the last
/// receive (a page fault for every 4 KiB of it, each time).
pub struct Scratch<'py> {
    buf: Bound<'py, PyByteArray>,
    reusable: bool,
}

impl<'py> Scratch<'py> {
    /// At least `len` bytes whose first `len` `fill` writes: the thread's kept buffer when
    /// `reusable` and nobody else references it, else a new one.
    pub fn fill(
        py: Python<'py>,
        len: usize,
        reusable: bool,
        fill: impl FnOnce(&mut [u8]),
    ) -> PyResult<Scratch<'py>> {
        // Taken out while in use: a receive made meanwhile on this thread gets a new one.
        let kept = if reusable {
            SCRATCH.with(|s| s.borrow_mut().take())
        } else {
            None
        };
        // Referenced only here (so not exported either: a view references its object).
        let kept = kept
            .map(|k| k.into_bound(py))
            .filter(|k| referenced_once(k) && (k.len() >= len || k.resize(len).is_ok()));
        let Some(buf) = kept else {
            let buf = PyByteArray::new_with(py, len, |b| {
                fill(b);
                Ok(())
            })?;
            return Ok(Scratch { buf, reusable });
        };
        // SAFETY: this bytearray is referenced by `buf` alone (checked just above: no other
        // reference, hence no export), so no other slice of its bytes exists while this one
        // is written; it holds at least `len` bytes.
        let bytes = unsafe { buf.as_bytes_mut() };
        fill(&mut bytes[..len]);
        Ok(Scratch { buf, reusable })
    }

    /// The `bytearray` (its first `len` bytes are the message).
    pub fn bytearray(&self) -> &Bound<'py, PyByteArray> {
        &self.buf
    }

    /// Done with the bytes: a reusable buffer that nothing else references now is kept for the
    /// thread's next receive (up to 16 MiB).
    pub fn give_back(self) {
        if self.reusable && self.buf.len() <= SCRATCH_KEEP && referenced_once(&self.buf) {
            let buf = self.buf.unbind();
            SCRATCH.with(|s| *s.borrow_mut() = Some(buf));
        }
    }
}

/// The mapping behind `SharedMemory.buf`: exports the segment's bytes through the buffer
/// protocol and counts the exports. The memory is unmapped only when this object dies, so a
/// consumer that keeps a reference to it instead of an export (numpy's `ndarray(buffer=...)`
/// does) never sees it vanish.
#[pyclass(frozen, module = "fastipc._fastipc", name = "_Segment")]
pub struct Segment {
    map: Mapping,
    exports: AtomicUsize,
}

impl Segment {
    /// Exports `map`, which it owns from now on.
    pub fn new(map: Mapping) -> Segment {
        Segment {
            map,
            exports: AtomicUsize::new(0),
        }
    }

    /// How many views of the bytes are exported now.
    pub fn exports(&self) -> usize {
        self.exports.load(Ordering::Acquire)
    }
}

#[pymethods]
impl Segment {
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        // SAFETY: `view` comes from CPython's bf_getbuffer; the mapping lives as long as this
        // object, which the view keeps alive.
        unsafe { export(view, slf.as_any(), this.map.as_ptr(), this.map.len(), flags) }?;
        this.exports.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.exports.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Exports `len` writable bytes at `ptr` through the buffer protocol, on behalf of `owner` (which
/// the view keeps alive).
///
/// # Safety
/// `view` must be the pointer CPython passed to the owner's `bf_getbuffer`, and `ptr..ptr+len`
/// must stay valid until the matching `bf_releasebuffer` (the owner refuses to unmap while views
/// are exported).
unsafe fn export(
    view: *mut ffi::Py_buffer,
    owner: &Bound<'_, PyAny>,
    ptr: *mut u8,
    len: usize,
    flags: c_int,
) -> PyResult<()> {
    if view.is_null() {
        return Err(PyBufferError::new_err("no view to fill"));
    }
    let len = ffi::Py_ssize_t::try_from(len)
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("segment too large"))?;
    // SAFETY: the caller guarantees `view` and the memory range; PyBuffer_FillInfo takes a new
    // reference to `owner`, which CPython releases with the view.
    let rc = unsafe { ffi::PyBuffer_FillInfo(view, owner.as_ptr(), ptr.cast(), len, 0, flags) };
    if rc != 0 {
        return Err(PyErr::fetch(owner.py()));
    }
    Ok(())
}

/// A range of a channel's ring exported through the buffer protocol (the memoryview of a
/// `MessageView` or a `Reservation`); it keeps the mapping alive, so a view that outlives its
/// message still reads mapped memory.
#[pyclass(frozen, module = "fastipc._fastipc", name = "_RingBytes")]
pub struct RingBytes {
    keep: std::sync::Arc<Mapping>,
    ptr: usize,
    len: usize,
    readonly: bool,
}

impl RingBytes {
    /// `len` bytes at `ptr`, inside the mapping `keep`.
    pub fn new(keep: std::sync::Arc<Mapping>, ptr: *mut u8, len: usize, readonly: bool) -> Self {
        RingBytes {
            keep,
            ptr: ptr as usize,
            len,
            readonly,
        }
    }
}

#[pymethods]
impl RingBytes {
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        if view.is_null() {
            return Err(PyBufferError::new_err("no view to fill"));
        }
        let base = this.keep.as_ptr() as usize;
        if this.ptr < base || this.ptr + this.len > base + this.keep.len() {
            return Err(PyBufferError::new_err("range outside of the segment"));
        }
        let len = ffi::Py_ssize_t::try_from(this.len)
            .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("message too large"))?;
        // SAFETY: `view` comes from CPython's bf_getbuffer; the range lies inside the mapping
        // (checked just above), which `keep` holds mapped while this object (referenced by the
        // view) lives. PyBuffer_FillInfo refuses a writable request on a read-only range.
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                this.ptr as *mut std::ffi::c_void,
                len,
                c_int::from(this.readonly),
                flags,
            )
        };
        if rc != 0 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }
}
