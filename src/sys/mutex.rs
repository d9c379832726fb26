//! Robust, process-shared pthread mutexes living in a shared mapping.
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

/// A mutex in a lock segment mapped by this process.
#[derive(Debug)]
pub struct SharedMutex {
    mapping: Mapping,
}

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
        Ok(SharedMutex { mapping })
    }

    fn state(&self) -> &AtomicU32 {
        // SAFETY: offset 0 of a page-aligned mapping is aligned for u32 and inside it (checked in
        // `new`); the memory lives as long as `self`, and an atomic is the right type for a word
        // that other processes write concurrently.
        unsafe { AtomicU32::from_ptr(self.mapping.as_ptr().cast::<u32>()) }
    }

    fn raw(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: MUTEX_OFFSET + size_of(pthread_mutex_t) <= len (checked in `new`), and 64 is a
        // multiple of the mutex's alignment within a page-aligned mapping.
        unsafe { self.mapping.as_ptr().add(MUTEX_OFFSET).cast() }
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
                unsafe { libc::pthread_mutex_timedlock(self.raw(), &until) }
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

    /// Unlocks; `EPERM` if this thread does not hold it.
    pub fn unlock(&self) -> Result<(), Errno> {
        if !self.is_ready() {
            return Err(Errno::INVAL);
        }
        // SAFETY: the mutex is initialised; an error-checking mutex reports a non-owner's unlock.
        check(unsafe { libc::pthread_mutex_unlock(self.raw()) })
    }
}
