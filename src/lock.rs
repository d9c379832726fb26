//! Locks that survive a crash: a robust, process-shared pthread mutex in a small named segment of
//! its own. When the holder dies, the next acquirer gets the lock and learns that the previous
//! owner died, so that it can repair the data the lock protects.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::fs::Mode;
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::names::{self, Kind};
use crate::registry;
use crate::sys::mutex::{self, Locked, SharedMutex, SEGMENT_SIZE};
use crate::sys::shm::{reserve, Mapping};
use crate::wait::{Deadline, Interrupt, SLICE};

/// How long `open` waits for a creator that is still initialising the segment.
const INIT_WAIT: Duration = Duration::from_secs(2);

/// How an acquire went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The lock was free or released normally.
    Normally,
    /// The previous owner died holding it; the lock was made consistent again, but the data it
    /// protects may be half-updated.
    PreviousOwnerDied,
}

/// A crash-robust lock shared between processes.
#[derive(Debug)]
pub struct Lock {
    mutex: Option<SharedMutex>,
    name: String,
    closed: AtomicBool,
    held: AtomicBool,
}

fn unsupported(name: &str) -> Error {
    Error::NotSupported(format!(
        "fastipc.Lock needs robust process-shared mutexes, which this platform lacks ({name})"
    ))
}

impl Lock {
    /// Creates the lock `name` (or a generated `/fastipc-…` name) exclusively with `mode`.
    pub fn create(name: Option<&str>, mode: u32) -> Result<Lock> {
        if mode & !0o777 != 0 {
            return Err(Error::Invalid(format!(
                "mode must be permission bits (0 to 0o777), not {mode:#o}"
            )));
        }
        let mode = Mode::from_bits_truncate(mode as _);
        let requested = name.map(|n| names::posix_name(n, Kind::Lock)).transpose()?;
        if !mutex::ROBUST {
            return Err(unsupported(requested.as_deref().unwrap_or("")));
        }
        loop {
            let name = requested
                .clone()
                .unwrap_or_else(|| names::generated(names::random_u64()));
            // Recorded first, committed once it exists (a failure drops the pending entry).
            let pending = registry::begin(Kind::Lock, &name, SEGMENT_SIZE as u64);
            let fd = match rustix::shm::open(
                name.as_str(),
                rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR,
                mode,
            ) {
                Ok(fd) => fd,
                Err(Errno::EXIST) if requested.is_none() => continue,
                Err(e) => return Err(Error::os(e, "shm_open", &name)),
            };
            let made = (|| {
                rustix::fs::fchmod(&fd, mode).map_err(|e| Error::os(e, "fchmod", &name))?;
                rustix::fs::ftruncate(&fd, SEGMENT_SIZE as u64)
                    .map_err(|e| Error::os(e, "ftruncate", &name))?;
                reserve(fd.as_fd(), SEGMENT_SIZE as u64)
                    .map_err(|e| Error::os(e, "posix_fallocate", &name))?;
                let map = Mapping::shared(fd.as_fd(), SEGMENT_SIZE)
                    .map_err(|e| Error::os(e, "mmap", &name))?;
                let mutex = SharedMutex::new(map).map_err(|e| Error::os(e, "mmap", &name))?;
                mutex
                    .init()
                    .map_err(|e| Error::os(e, "pthread_mutex_init", &name))?;
                Ok(mutex)
            })();
            return match made {
                Ok(mutex) => {
                    pending.commit();
                    Ok(Lock::wrap(mutex, name))
                }
                Err(err) => {
                    let _ = rustix::shm::unlink(name.as_str());
                    Err(err)
                }
            };
        }
    }

    /// Opens the existing lock `name`, waiting briefly for a creator that is still setting it up.
    pub fn open(name: &str) -> Result<Lock> {
        let name = names::posix_name(name, Kind::Lock)?;
        if !mutex::ROBUST {
            return Err(unsupported(&name));
        }
        let fd = rustix::shm::open(name.as_str(), rustix::shm::OFlags::RDWR, Mode::empty())
            .map_err(|e| Error::os(e, "shm_open", &name))?;
        let start = Instant::now();
        loop {
            let st = rustix::fs::fstat(&fd).map_err(|e| Error::os(e, "fstat", &name))?;
            let size = usize::try_from(st.st_size).unwrap_or(0);
            if size == SEGMENT_SIZE {
                let map = Mapping::shared(fd.as_fd(), SEGMENT_SIZE)
                    .map_err(|e| Error::os(e, "mmap", &name))?;
                let mutex = SharedMutex::new(map).map_err(|e| Error::os(e, "mmap", &name))?;
                loop {
                    if mutex.is_ready() {
                        return Ok(Lock::wrap(mutex, name));
                    }
                    if start.elapsed() > INIT_WAIT {
                        return Err(not_a_lock(&name));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            if size > 0 || start.elapsed() > INIT_WAIT {
                return Err(not_a_lock(&name));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A lock at a place in someone else's shared memory (see `SharedMutex::borrowed`):
    /// initialised there when `init`, else waited for (briefly) until its initialiser is done.
    /// `label` names it in messages.
    #[cfg_attr(not(feature = "python"), allow(dead_code))]
    pub(crate) fn in_region(mutex: SharedMutex, init: bool, label: String) -> Result<Lock> {
        if !mutex::ROBUST {
            return Err(unsupported(&label));
        }
        if init {
            mutex
                .init()
                .map_err(|e| Error::os(e, "pthread_mutex_init", &label))?;
        } else {
            let start = Instant::now();
            while !mutex.is_ready() {
                if start.elapsed() > INIT_WAIT {
                    return Err(Error::Invalid(format!(
                        "no fastipc lock was initialised at {label} (create it with init=True)"
                    )));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(Lock::wrap(mutex, label))
    }

    fn wrap(mutex: SharedMutex, name: String) -> Lock {
        Lock {
            mutex: Some(mutex),
            name,
            closed: AtomicBool::new(false),
            held: AtomicBool::new(false),
        }
    }

    fn mutex(&self) -> Result<&SharedMutex> {
        match &self.mutex {
            Some(m) if !self.closed.load(Ordering::Acquire) => Ok(m),
            _ => Err(Error::os(Errno::BADF, "lock", &self.name)),
        }
    }

    /// The name in POSIX form.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes waits in other threads end (with EBADF) at their next slice.
    pub fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Whether a thread of this process holds the lock through this value.
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// Takes the lock, waiting until `deadline` (a zero deadline tries once): `Ok(None)` when
    /// the deadline passes first. Waits in slices of at most [`SLICE`], running `interrupt`
    /// between them. A lock whose owner died is made consistent and reported as such.
    /// `EDEADLK` if the calling thread holds it already and would wait (it is not reentrant:
    /// waiting for itself would never end); trying once then just gives `Ok(None)`.
    pub fn acquire(
        &self,
        deadline: Deadline,
        interrupt: &mut dyn Interrupt,
    ) -> Result<Option<Acquired>> {
        loop {
            let mutex = self.mutex()?;
            let slice = match deadline.remaining() {
                Some(left) if left.is_zero() => None,
                Some(left) => Some(left.min(SLICE)),
                None => Some(SLICE),
            };
            match mutex.lock(slice) {
                Ok(how) => {
                    self.held.store(true, Ordering::Release);
                    if how == Locked::OwnerDied {
                        if let Err(e) = mutex.make_consistent() {
                            return Err(Error::os(e, "pthread_mutex_consistent", &self.name));
                        }
                        return Ok(Some(Acquired::PreviousOwnerDied));
                    }
                    return Ok(Some(Acquired::Normally));
                }
                // Trying once while this very thread holds it: simply not available.
                Err(Errno::DEADLK) if slice.is_none() => return Ok(None),
                Err(Errno::BUSY | Errno::TIMEDOUT | Errno::AGAIN | Errno::INTR) => {
                    if slice.is_none() {
                        return Ok(None);
                    }
                    interrupt.check()?;
                }
                Err(e) => return Err(Error::os(e, "pthread_mutex_lock", &self.name)),
            }
        }
    }

    /// Whether anyone holds the lock, a holder that died included until an `acquire` takes it
    /// over. Takes nothing and recovers nothing. `NotSupported` off Linux.
    pub fn is_locked(&self) -> Result<bool> {
        self.mutex()?.is_locked().map_err(|e| match e {
            Errno::NOSYS => Error::NotSupported(format!(
                "Lock.locked() reads the mutex's futex word, which only Linux exposes ({})",
                self.name
            )),
            e => Error::os(e, "locked", &self.name),
        })
    }

    /// Releases the lock; `EPERM` if the calling thread does not hold it.
    pub fn release(&self) -> Result<()> {
        let Some(mutex) = &self.mutex else {
            return Err(Error::os(Errno::BADF, "unlock", &self.name));
        };
        mutex
            .unlock()
            .map_err(|e| Error::os(e, "pthread_mutex_unlock", &self.name))?;
        self.held.store(false, Ordering::Release);
        Ok(())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if self.held.load(Ordering::Acquire) {
            // A thread of this process holds the mutex, so the kernel's robust list points into
            // the mapping: keep it mapped, so that the thread's death still marks the owner dead.
            std::mem::forget(self.mutex.take());
        }
    }
}

fn not_a_lock(name: &str) -> Error {
    Error::Invalid(format!(
        "{name} is not a fastipc lock segment (wrong size, or its creator never finished \
         initialising it)"
    ))
}

/// Removes the name `name`; processes that opened it keep using the lock.
pub fn unlink(name: &str) -> Result<()> {
    let name = names::posix_name(name, Kind::Lock)?;
    rustix::shm::unlink(name.as_str()).map_err(|e| Error::os(e, "shm_unlink", &name))?;
    registry::forget(Kind::Lock, &name);
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::wait::Uninterrupted;

    #[test]
    fn lock_timeout_and_owner_death_in_a_thread() {
        std::env::set_var(
            "FASTIPC_REGISTRY_DIR",
            std::env::temp_dir().join("fastipc-rust-tests"),
        );
        let a = Lock::create(None, 0o600).unwrap();
        let name = a.name().to_string();
        let b = Lock::open(&name).unwrap();
        let now = Deadline::after(Some(Duration::ZERO));
        assert!(!a.is_locked().unwrap());
        assert_eq!(
            a.acquire(now, &mut Uninterrupted).unwrap(),
            Some(Acquired::Normally)
        );
        assert_eq!(a.acquire(now, &mut Uninterrupted).unwrap(), None);
        assert!(a.is_locked().unwrap() && b.is_locked().unwrap());
        let soon = Deadline::after(Some(Duration::from_millis(80)));
        let other = std::thread::spawn(move || {
            let got = b.acquire(soon, &mut Uninterrupted).unwrap();
            (b, got)
        });
        let (b, got) = other.join().unwrap();
        assert_eq!(got, None);
        a.release().unwrap();
        // A thread that dies holding the lock: the next acquirer is told.
        let b = std::thread::spawn(move || {
            assert!(b
                .acquire(Deadline::NEVER, &mut Uninterrupted)
                .unwrap()
                .is_some());
            b
        })
        .join()
        .unwrap();
        // The dead thread still counts as the holder, and asking does not take it over.
        assert!(a.is_locked().unwrap() && a.is_locked().unwrap());
        assert_eq!(
            a.acquire(
                Deadline::after(Some(Duration::from_secs(5))),
                &mut Uninterrupted
            )
            .unwrap(),
            Some(Acquired::PreviousOwnerDied)
        );
        assert!(a.is_locked().unwrap());
        a.release().unwrap();
        assert!(!a.is_locked().unwrap());
        drop(b);
        unlink(&name).unwrap();
    }
}
