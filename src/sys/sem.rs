//! POSIX named semaphores (`sem_open` and friends): the same objects C programs and `posix_ipc`
//! open under the same name.

use std::ffi::CStr;
use std::ptr::NonNull;
use std::time::Duration;

use rustix::io::Errno;

use super::last_errno;

/// An open named semaphore, closed (`sem_close`) on drop.
#[derive(Debug)]
pub struct NamedSem {
    sem: NonNull<libc::sem_t>,
}

// SAFETY: POSIX semaphores are made for concurrent use from any thread (and process); the
// pointer stays valid until `sem_close` in `Drop`, which needs `&mut self`, so no call is running.
unsafe impl Send for NamedSem {}
// SAFETY: as above: every operation is a thread-safe libc call on the same `sem_t`.
unsafe impl Sync for NamedSem {}

/// Whether the platform has a real timed wait (`sem_timedwait`).
pub const HAS_TIMEDWAIT: bool = cfg!(not(target_vendor = "apple"));

impl NamedSem {
    /// Opens `name`; with `create`, creates it exclusively with `mode` and `value`.
    pub fn open(name: &CStr, create: bool, mode: u32, value: u32) -> Result<NamedSem, Errno> {
        let ptr = loop {
            // SAFETY: `name` is a NUL-terminated string; the variadic arguments are the mode
            // (promoted to c_uint, as C passes a mode_t through `...`) and the initial value,
            // read by sem_open only with O_CREAT.
            let ptr = unsafe {
                if create {
                    libc::sem_open(
                        name.as_ptr(),
                        libc::O_CREAT | libc::O_EXCL,
                        mode as libc::c_uint,
                        value as libc::c_uint,
                    )
                } else {
                    libc::sem_open(name.as_ptr(), 0)
                }
            };
            if ptr == libc::SEM_FAILED {
                let errno = last_errno();
                if errno == Errno::INTR {
                    continue;
                }
                return Err(errno);
            }
            break ptr;
        };
        let sem = NonNull::new(ptr).ok_or(Errno::INVAL)?;
        Ok(NamedSem { sem })
    }

    /// Increments the value by one (`sem_post`).
    pub fn post(&self) -> Result<(), Errno> {
        // SAFETY: `sem` is an open semaphore (see the type's invariant).
        if unsafe { libc::sem_post(self.sem.as_ptr()) } == 0 {
            Ok(())
        } else {
            Err(last_errno())
        }
    }

    /// Decrements the value if it is positive; `EAGAIN` if it is zero, `EINTR` on a signal.
    pub fn try_wait(&self) -> Result<(), Errno> {
        // SAFETY: `sem` is an open semaphore.
        if unsafe { libc::sem_trywait(self.sem.as_ptr()) } == 0 {
            Ok(())
        } else {
            Err(last_errno())
        }
    }

    /// Waits at most `slice` to decrement the value: `ETIMEDOUT` (or `EAGAIN`) when the slice
    /// ends, `EINTR` on a signal. A real kernel wait with `sem_timedwait` where it exists; on
    /// macOS, which lacks it, `sem_trywait` with short sleeps for the length of the slice.
    pub fn wait_for(&self, slice: Duration) -> Result<(), Errno> {
        #[cfg(not(target_vendor = "apple"))]
        {
            let until = super::realtime_after(slice);
            // SAFETY: `sem` is an open semaphore and `until` a valid timespec on the stack.
            if unsafe { libc::sem_timedwait(self.sem.as_ptr(), &raw const until) } == 0 {
                Ok(())
            } else {
                Err(last_errno())
            }
        }
        #[cfg(target_vendor = "apple")]
        {
            let start = std::time::Instant::now();
            let mut nap = Duration::from_micros(50);
            loop {
                match self.try_wait() {
                    Err(Errno::AGAIN) => {}
                    other => return other,
                }
                let spent = start.elapsed();
                if spent >= slice {
                    return Err(Errno::TIMEDOUT);
                }
                std::thread::sleep(nap.min(slice - spent));
                nap = (nap * 2).min(Duration::from_millis(1));
            }
        }
    }

    /// The current value (`sem_getvalue`); `ENOSYS` where the platform lacks it (macOS).
    pub fn value(&self) -> Result<i32, Errno> {
        #[cfg(target_vendor = "apple")]
        {
            Err(Errno::NOSYS)
        }
        #[cfg(not(target_vendor = "apple"))]
        {
            let mut value: libc::c_int = 0;
            // SAFETY: `sem` is an open semaphore and `value` a valid int to store into.
            if unsafe { libc::sem_getvalue(self.sem.as_ptr(), &raw mut value) } == 0 {
                Ok(value.max(0))
            } else {
                Err(last_errno())
            }
        }
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        // SAFETY: the semaphore was opened by sem_open and is closed exactly once; `&mut self`
        // proves no other call on it is running.
        unsafe { libc::sem_close(self.sem.as_ptr()) };
    }
}

/// Removes the name `name` (`sem_unlink`); open handles keep working.
pub fn unlink(name: &CStr) -> Result<(), Errno> {
    // SAFETY: `name` is a NUL-terminated string.
    if unsafe { libc::sem_unlink(name.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// The largest value a semaphore can hold.
pub fn value_max() -> u32 {
    #[cfg(target_vendor = "apple")]
    {
        i16::MAX as u32
    }
    #[cfg(not(target_vendor = "apple"))]
    {
        // glibc and musl: SEM_VALUE_MAX is INT_MAX.
        i32::MAX as u32
    }
}
