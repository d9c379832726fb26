//! Shared mappings of a descriptor (`mmap(MAP_SHARED)`), and reserving a segment's pages.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

/// A read-write `MAP_SHARED` mapping of a whole segment, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// Watched for a truncation by another process ([`Mapping::guard`]), and the segment's name.
    guard: Option<(super::sigbus::Guard, Box<str>)>,
}

// SAFETY: the mapping is plain memory that any thread may touch; `Mapping` hands out raw pointers
// only, and whoever dereferences them is responsible for synchronisation (the memory is shared
// with other processes anyway, so no Rust reference to it is ever assumed exclusive).
unsafe impl Send for Mapping {}
// SAFETY: as above; no method mutates the `Mapping` itself.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` from offset 0, shared and read-write.
    pub fn shared(fd: BorrowedFd<'_>, len: usize) -> Result<Mapping, Errno> {
        if len == 0 {
            return Err(Errno::INVAL);
        }
        // SAFETY: with a null hint and without MAP_FIXED the kernel picks a fresh range that
        // overlaps no existing Rust object; `fd` is valid for the duration of the call.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Errno::INVAL)?;
        Ok(Mapping {
            ptr,
            len,
            guard: None,
        })
    }

    /// Watches the mapping of the segment `name`, which another process may shrink: an access
    /// past the new end then reads and writes zero pages instead of raising `SIGBUS`, and
    /// [`Mapping::truncated`] says so (see [`super::sigbus`]). Call before handing the mapping
    /// out. Where no handler can be installed, nothing changes.
    pub fn guard(&mut self, name: &str) {
        if self.guard.is_none() {
            self.guard = super::sigbus::register(self.as_ptr(), self.len).map(|g| (g, name.into()));
        }
    }

    /// Whether the (watched) segment was found shrunk under this mapping: one atomic load.
    #[inline]
    pub fn is_truncated(&self) -> bool {
        self.guard
            .as_ref()
            .is_some_and(|(guard, _)| guard.truncated())
    }

    /// The segment's name once it was found shrunk under this (watched) mapping, whose pages are
    /// zeroes from then on. One atomic load.
    #[inline]
    pub fn truncated(&self) -> Option<&str> {
        match &self.guard {
            Some((guard, name)) if guard.truncated() => Some(name),
            _ => None,
        }
    }

    /// The first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: a mapping has at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `src` into the mapping at `offset` (bounds-checked).
    pub fn write_at(&self, offset: usize, src: &[u8]) -> Result<(), Errno> {
        let end = offset.checked_add(src.len()).ok_or(Errno::INVAL)?;
        if end > self.len {
            return Err(Errno::INVAL);
        }
        // SAFETY: `offset..end` lies inside the mapping, which is valid while `self` lives; the
        // source is a Rust slice that cannot overlap a mapping made by the kernel for us.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.as_ptr().add(offset), src.len());
        };
        Ok(())
    }

    /// Copies the mapping's bytes at `offset` into `dst` (bounds-checked).
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<(), Errno> {
        let end = offset.checked_add(dst.len()).ok_or(Errno::INVAL)?;
        if end > self.len {
            return Err(Errno::INVAL);
        }
        // SAFETY: as in `write_at`, with the roles swapped.
        unsafe {
            std::ptr::copy_nonoverlapping(self.as_ptr().add(offset), dst.as_mut_ptr(), dst.len());
        };
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Unwatched first: a later mapping at this address is never taken for this one.
        self.guard = None;
        // SAFETY: `ptr..ptr+len` is exactly the range mmap returned, unmapped once, here; the
        // owners of `Mapping` guarantee that no view of it outlives the value.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Reserves the pages of `0..len` so that a full file system fails now (ENOSPC), not with a
/// SIGBUS at the first write. Linux: `posix_fallocate`; elsewhere nothing (documented).
pub fn reserve(fd: BorrowedFd<'_>, len: u64) -> Result<(), Errno> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let len = libc::off_t::try_from(len).map_err(|_| Errno::FBIG)?;
        loop {
            // SAFETY: plain system call on a valid descriptor; no memory is passed.
            let rc = unsafe { libc::posix_fallocate(fd.as_raw_fd(), 0, len) };
            match rc {
                libc::EINTR => continue,
                // Reserved; or tmpfs on old kernels, or file systems without fallocate: nothing
                // to reserve.
                0 | libc::EOPNOTSUPP | libc::ENOSYS => return Ok(()),
                err => return Err(Errno::from_raw_os_error(err)),
            }
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (fd.as_raw_fd(), len);
        Ok(())
    }
}
