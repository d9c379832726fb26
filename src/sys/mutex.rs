//! Robust, process-shared pthread mutexes living in shared memory.
//!
//! The layout of a lock segment, fixed so that every process agrees on it:
//!
//! ```text
//! offset 0   u32  state: 0 while the creator initialises, READY once the mutex is usable
//! offset 64  pthread_mutex_t (robust, process-shared, error-checking)
//! ```
//!
//! Robust mutexes exist on Linux (and Android, FreeBSD); elsewhere [`ROBUST`] is false and the
//! lock is not offered.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustix::io::Errno;

use super::shm::Mapping;

/// Whether this platform has robust process-shared mutexes.
pub const ROBUST: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd"
));

/// The state word's value once the mutex is initialised ("fipL").
pub const READY: u32 = 0x6669_704c;

const MUTEX_OFFSET: usize = 64;

/// Size of a lock segment.
pub const SEGMENT_SIZE: usize = MUTEX_OFFSET + std::mem::size_of::<libc::pthread_mutex_t>();

/// How a successful lock went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// Taken normally.
    Acquired,
    /// Taken from an owner that died holding it; the caller must make it consistent.
    OwnerDied,
}

/// Where a mutex lives: a lock segment of its own, or a region of someone else's shared memory
/// kept alive by `keep` (a buffer export of a `SharedMemory`, in the bindings).
#[cfg_attr(not(feature = "python"), allow(dead_code))]
enum Region {
    Own(Mapping),
    Borrowed {
        base: NonNull<u8>,
        /// Dropped with the mutex, never read: it keeps the memory mapped.
        _keep: Box<dyn std::any::Any + Send + Sync>,
    },
}

/// A mutex in shared memory mapped by this process.
pub struct SharedMutex {
    region: Region,
}

impl std::fmt::Debug for SharedMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMutex")
            .field("at", &self.base())
            .finish()
    }
}

// SAFETY: the region is shared memory that any thread may touch (through atomics and pthread
// calls only); a borrowed region's keeper is itself Send + Sync.
unsafe impl Send for SharedMutex {}
// SAFETY: as above; every method takes `&self` and synchronises through the mutex or atomics.
unsafe impl Sync for SharedMutex {}

/// Bytes a lock needs in someone else's shared memory (room for every platform's mutex).
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub const IN_BUFFER_SIZE: usize = 128;
/// Alignment of such a lock's offset.
#[cfg_attr(not(feature = "python"), allow(dead_code))]
pub const IN_BUFFER_ALIGN: usize = 64;

fn check(rc: libc::c_int) -> Result<(), Errno> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(rc))
    }
}

impl SharedMutex {
    /// Wraps a mapping of a lock segment; `EINVAL` if it is too small.
    pub fn new(mapping: Mapping) -> Result<SharedMutex, Errno> {
        if mapping.len() < SEGMENT_SIZE {
            return Err(Errno::INVAL);
        }
        Ok(SharedMutex {
            region: Region::Own(mapping),
        })
    }

    /// A mutex at `base`, in memory that `keep` keeps mapped; `EINVAL` unless `base` is aligned
    /// to [`IN_BUFFER_ALIGN`].
    ///
    /// # Safety
    /// `base..base + IN_BUFFER_SIZE` must be writable memory that stays mapped while `keep`
    /// lives, and that nothing in this process accesses except through fastipc locks (other
    /// processes share it: only atomics and pthread calls touch it).
    #[cfg_attr(not(feature = "python"), allow(dead_code))]
    pub unsafe fn borrowed(
        base: *mut u8,
        keep: Box<dyn std::any::Any + Send + Sync>,
    ) -> Result<SharedMutex, Errno> {
        let base = NonNull::new(base).ok_or(Errno::INVAL)?;
        if base.as_ptr() as usize % IN_BUFFER_ALIGN != 0 || SEGMENT_SIZE > IN_BUFFER_SIZE {
            return Err(Errno::INVAL);
        }
        Ok(SharedMutex {
            region: Region::Borrowed { base, _keep: keep },
        })
    }

    fn base(&self) -> *mut u8 {
        match &self.region {
            Region::Own(mapping) => mapping.as_ptr(),
            Region::Borrowed { base, .. } => base.as_ptr(),
        }
    }

    // The base's alignment is checked in the constructors (see the SAFETY comment).
    #[allow(clippy::cast_ptr_alignment)]
    fn state(&self) -> &AtomicU32 {
        // SAFETY: the base is page-aligned (own mapping) or 64-byte aligned (borrowed) and the
        // region is at least SEGMENT_SIZE bytes (checked in the constructors); the memory lives
        // as long as `self`, and an atomic is the right type for a word that other processes
        // write concurrently.
        unsafe { AtomicU32::from_ptr(self.base().cast::<u32>()) }
    }

    fn raw(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: MUTEX_OFFSET + size_of(pthread_mutex_t) = SEGMENT_SIZE lies inside the region
        // (checked in the constructors), and 64 is a multiple of the mutex's alignment.
        unsafe { self.base().add(MUTEX_OFFSET).cast() }
    }

    /// Whether the creator finished initialising the mutex.
    pub fn is_ready(&self) -> bool {
        self.state().load(Ordering::Acquire) == READY
    }

    /// Initialises the mutex of a segment this process just created (nobody else may use it
    /// before [`SharedMutex::is_ready`] is true) and marks it ready.
    pub fn init(&self) -> Result<(), Errno> {
        if !ROBUST {
            return Err(Errno::NOSYS);
        }
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is storage for one attribute object, initialised by the first call and
        // destroyed by the last; the mutex storage is inside our mapping (see `raw`) and is not
        // in use by anyone while the state word is not READY.
        unsafe {
            check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
            let result = (|| {
                check(libc::pthread_mutexattr_setpshared(
                    attr.as_mut_ptr(),
                    libc::PTHREAD_PROCESS_SHARED,
                ))?;
                #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
                check(libc::pthread_mutexattr_setrobust(
                    attr.as_mut_ptr(),
                    libc::PTHREAD_MUTEX_ROBUST,
                ))?;
                check(libc::pthread_mutexattr_settype(
                    attr.as_mut_ptr(),
                    libc::PTHREAD_MUTEX_ERRORCHECK,
                ))?;
                check(libc::pthread_mutex_init(self.raw(), attr.as_ptr()))
            })();
            libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
            result?;
        }
        self.state().store(READY, Ordering::Release);
        Ok(())
    }

    /// Tries to lock within `slice` (`None`: without waiting). `ETIMEDOUT`/`EBUSY` when it could
    /// not, `EDEADLK` if this thread holds it already, `ENOTRECOVERABLE` for a lock whose dead
    /// owner's successor released it without repairing it.
    pub fn lock(&self, slice: Option<Duration>) -> Result<Locked, Errno> {
        if !self.is_ready() {
            return Err(Errno::INVAL);
        }
        let rc = match slice {
            // SAFETY: the mutex was initialised (READY) and lives in our mapping.
            None => unsafe { libc::pthread_mutex_trylock(self.raw()) },
            Some(slice) => {
                let until = super::realtime_after(slice);
                // SAFETY: as above; `until` is a valid timespec on the stack.
                unsafe { libc::pthread_mutex_timedlock(self.raw(), &raw const until) }
            }
        };
        match rc {
            0 => Ok(Locked::Acquired),
            libc::EOWNERDEAD => Ok(Locked::OwnerDied),
            err => Err(Errno::from_raw_os_error(err)),
        }
    }

    /// Marks the state protected by a mutex taken with [`Locked::OwnerDied`] as repaired.
    pub fn make_consistent(&self) -> Result<(), Errno> {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        {
            // SAFETY: the mutex is initialised and held by this thread (OwnerDied).
            check(unsafe { libc::pthread_mutex_consistent(self.raw()) })
        }
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        {
            Err(Errno::NOSYS)
        }
    }

    /// Whether anyone holds the mutex, a dead owner included until its successor takes it over
    /// (`ENOSYS` where the mutex's word cannot be read: off Linux). Reads the robust futex word
    /// (the kernel's ABI: the owner's thread id, `FUTEX_OWNER_DIED` once the kernel saw it die,
    /// `FUTEX_WAITERS`) without taking the mutex, so asking neither disturbs a holder nor
    /// recovers a dead one's lock.
    pub fn is_locked(&self) -> Result<bool, Errno> {
        if !self.is_ready() {
            return Err(Errno::INVAL);
        }
        #[cfg(all(target_os = "linux", any(target_env = "gnu", target_env = "musl")))]
        {
            // Owner id (30 bits) or the owner-died bit; the waiters bit alone is no holder.
            Ok(self.futex_word().load(Ordering::Acquire) & 0x7fff_ffff != 0)
        }
        #[cfg(not(all(target_os = "linux", any(target_env = "gnu", target_env = "musl"))))]
        {
            Err(Errno::NOSYS)
        }
    }

    /// The futex word of the robust mutex: where the C library keeps it inside
    /// `pthread_mutex_t` (glibc: `__data.__lock`, the first int; musl: `_m_lock`, the second).
    #[cfg(all(target_os = "linux", any(target_env = "gnu", target_env = "musl")))]
    // The mutex is at MUTEX_OFFSET (64) of a 64-byte aligned base: an int's alignment holds.
    #[allow(clippy::cast_ptr_alignment)]
    fn futex_word(&self) -> &AtomicU32 {
        const INDEX: usize = if cfg!(target_env = "musl") { 1 } else { 0 };
        // SAFETY: the mutex lies inside the region, which lives as long as `self` (see `raw`);
        // its storage starts with at least two ints and is 64-byte aligned. The futex word is
        // written concurrently by other threads, other processes and the kernel, always
        // atomically, so an atomic is the right type to read it through.
        unsafe { AtomicU32::from_ptr(self.raw().cast::<u32>().add(INDEX)) }
    }

    /// Unlocks; `EPERM` if this thread does not hold it.
    pub fn unlock(&self) -> Result<(), Errno> {
        if !self.is_ready() {
            return Err(Errno::INVAL);
        }
        // SAFETY: the mutex is initialised; an error-checking mutex reports a non-owner's unlock.
        check(unsafe { libc::pthread_mutex_unlock(self.raw()) })
    }
}
