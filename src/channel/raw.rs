//! The memory of a channel segment, seen through bounds-checked accessors, and the futex calls.
//!
//! The only place of `channel/` with `unsafe`: atomics and byte copies on a shared mapping. Every
//! accessor checks its range against the mapping's length and its alignment, so that no offset
//! (however computed from what a peer wrote) reaches memory outside the segment.

// The crate denies `unsafe_code`; atomics over a shared mapping need raw pointers.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sys::shm::Mapping;

/// The error for the segment `name` (`len` bytes mapped here) shrunk under its mapping.
#[cold]
pub fn truncated(name: &str, len: usize) -> Error {
    Error::Corrupt {
        what: format!(
            "the segment {name} was truncated by another process while mapped here ({len} bytes \
             mapped); its contents are lost, close this handle"
        ),
    }
}

/// A mapped segment shared by the handles of one queue or channel.
#[derive(Debug, Clone)]
pub struct Region {
    map: Arc<Mapping>,
}

impl Region {
    /// Wraps a mapping (page-aligned by construction).
    pub fn new(map: Mapping) -> Region {
        Region { map: Arc::new(map) }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the mapping is empty (never).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The mapping, kept alive by whoever clones it (views, reservations).
    pub fn keeper(&self) -> Arc<Mapping> {
        Arc::clone(&self.map)
    }

    /// Whether the segment was not found shrunk under this mapping by another process (see
    /// [`Region::intact`]): one atomic load.
    #[inline]
    pub fn whole(&self) -> bool {
        !self.map.is_truncated()
    }

    /// A corrupt channel error once the segment was found shrunk under this mapping by another
    /// process (its pages are zeroes from then on, see [`Mapping::guard`]): one atomic load.
    #[inline]
    pub fn intact(&self) -> Result<()> {
        match self.map.truncated() {
            None => Ok(()),
            Some(name) => Err(truncated(name, self.map.len())),
        }
    }

    fn check(&self, offset: usize, len: usize, align: usize) -> bool {
        offset % align == 0
            && offset
                .checked_add(len)
                .is_some_and(|end| end <= self.map.len())
    }

    /// The atomic u64 at `offset`; `None` out of range or misaligned.
    #[allow(clippy::cast_ptr_alignment)] // alignment checked just before
    pub fn u64_at(&self, offset: usize) -> Option<&AtomicU64> {
        if !self.check(offset, 8, 8) {
            return None;
        }
        // SAFETY: `offset..offset+8` lies inside the mapping, which `self` keeps alive for the
        // returned lifetime; the mapping is page-aligned so the address is 8-aligned; the memory is
        // shared with other processes, so only atomic access (this type) is used on it.
        Some(unsafe { AtomicU64::from_ptr(self.map.as_ptr().add(offset).cast::<u64>()) })
    }

    /// The atomic u32 at `offset`; `None` out of range or misaligned.
    #[allow(clippy::cast_ptr_alignment)] // alignment checked just before
    pub fn u32_at(&self, offset: usize) -> Option<&AtomicU32> {
        if !self.check(offset, 4, 4) {
            return None;
        }
        // SAFETY: as in `u64_at`, for 4 bytes at a 4-aligned address.
        Some(unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(offset).cast::<u32>()) })
    }

    /// Copies `dst.len()` bytes from `offset`; false out of range.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> bool {
        self.map.read_at(offset, dst).is_ok()
    }

    /// Copies `src` to `offset`; false out of range.
    pub fn write(&self, offset: usize, src: &[u8]) -> bool {
        self.map.write_at(offset, src).is_ok()
    }

    /// The address of `offset..offset+len`, for a view that the caller keeps the mapping alive
    /// for (see [`Region::keeper`]); `None` out of range.
    pub fn ptr(&self, offset: usize, len: usize) -> Option<*mut u8> {
        if !self.check(offset, len, 1) {
            return None;
        }
        // SAFETY: the offset lies inside the mapping (checked just before).
        Some(unsafe { self.map.as_ptr().add(offset) })
    }
}

/// Sleeps while the u32 `word` still holds `expected`, for at most `slice` (a futex wait on
/// shared memory). Returns on a wake-up, a change, a signal or the end of the slice alike.
pub fn futex_wait(word: &AtomicU32, expected: u32, slice: Duration) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(slice.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(slice.subsec_nanos()),
        };
        // SAFETY: FUTEX_WAIT reads the u32 at the address (a valid atomic of ours) and sleeps; the
        // timespec is on the stack for the duration of the call. No memory is written.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                &raw const ts,
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        // No futex: a short nap, bounded by the slice (documented in docs/channel.md).
        if word.load(std::sync::atomic::Ordering::Acquire) == expected {
            std::thread::sleep(slice.min(Duration::from_micros(200)));
        }
    }
}

/// Wakes every process sleeping in [`futex_wait`] on `word`.
pub fn futex_wake(word: &AtomicU32) {
    wake(word, i32::MAX);
}

/// Wakes one process sleeping in [`futex_wait`] on `word`.
pub fn futex_wake_one(word: &AtomicU32) {
    wake(word, 1);
}

fn wake(word: &AtomicU32, n: i32) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: FUTEX_WAKE only uses the address as a key; it reads and writes no memory.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n);
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (word, n);
}

/// A pidfd for `pid` (Linux 5.3+): it polls readable once the process has exited.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn pidfd_open(pid: u32) -> Result<std::os::fd::OwnedFd, rustix::io::Errno> {
    use std::os::fd::FromRawFd;
    let pid = libc::pid_t::try_from(pid).map_err(|_| rustix::io::Errno::SRCH)?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(crate::sys::last_errno());
    }
    let fd = i32::try_from(fd).map_err(|_| rustix::io::Errno::BADF)?;
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Runs `handler` in the child of every later `fork` (to forget a cached pid).
pub fn on_fork_child(handler: extern "C" fn()) {
    // SAFETY: registers plain functions with the C library; `handler` only stores an atomic
    // (async-signal-safe, as a fork handler must be).
    unsafe {
        libc::pthread_atfork(None, None, Some(handler));
    }
}

/// The coarse monotonic clock in milliseconds (a few nanoseconds to read: the vDSO's tick).
pub fn coarse_ms() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec, on our stack. (Through the C library: it
        // finds the vDSO by the means every tool understands, valgrind included.)
        unsafe {
            libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &raw mut ts);
        }
        u64::try_from(ts.tv_sec).unwrap_or(0) * 1000
            + u64::try_from(ts.tv_nsec / 1_000_000).unwrap_or(0)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        u64::try_from(ts.tv_sec).unwrap_or(0) * 1000
            + u64::try_from(ts.tv_nsec / 1_000_000).unwrap_or(0)
    }
}

/// The CPU this thread runs on now (`u32::MAX` where unknown).
pub fn current_cpu() -> u32 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: sched_getcpu takes no arguments and touches no memory of ours.
        let cpu = unsafe { libc::sched_getcpu() };
        u32::try_from(cpu).unwrap_or(u32::MAX)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        u32::MAX
    }
}

/// Asks the CPU to move the cache line holding `p` from its private caches to the shared one
/// (`cldemote` on x86-64: a hint, executed as a no-op by processors without it); nothing
/// elsewhere.
pub fn demote(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `cldemote` neither reads nor writes memory and raises no exception (a hint in the
    // reserved-NOP space on processors that lack it); it touches no register but its operand.
    unsafe {
        std::arch::asm!("cldemote [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
