//! Named semaphores: the POSIX objects C programs (`sem_open`) and `posix_ipc` use under the same
//! name, with waits bounded by a deadline and interruptible between slices.

use rustix::io::Errno;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, PyRepr, Result};
use crate::names::{self, Kind};
use crate::registry;
use crate::sys::sem::{self as sys, NamedSem};
use crate::wait::{Deadline, Interrupt, SLICE};

/// An open named semaphore.
#[derive(Debug)]
pub struct Semaphore {
    sem: NamedSem,
    name: String,
    closed: AtomicBool,
    /// How long the last wait of this handle lasted, in ns (0: none yet), for [`spin_budget`].
    last_wait_ns: AtomicU64,
}

fn c_name(name: &str) -> Result<CString> {
    CString::new(name).map_err(|_| {
        Error::Invalid(format!(
            "semaphore name {} contains a NUL byte",
            PyRepr(name)
        ))
    })
}

/// Least time the first phase of [`Semaphore::acquire`] polls before it sleeps in the kernel.
pub const SPIN_MIN: Duration = Duration::from_micros(50);
/// Most time it polls, reached only while the waits of this handle keep ending that soon.
pub const SPIN_MAX: Duration = Duration::from_micros(250);

/// The polling budget after a wait that lasted `last`: a little more than that wait if it was
/// short (the peer answers at a steady pace: catch its answer awake), the minimum otherwise.
pub fn spin_budget(last: Duration) -> Duration {
    if last.is_zero() || last > SPIN_MAX {
        return SPIN_MIN;
    }
    (last * 3 / 2 + Duration::from_micros(20)).clamp(SPIN_MIN, SPIN_MAX)
}

/// Whether timed waits are real kernel waits here (false on macOS: a polling loop).
pub const REAL_TIMED_WAIT: bool = sys::HAS_TIMEDWAIT;

/// The largest value a semaphore may hold.
pub fn value_max() -> u32 {
    sys::value_max()
}

impl Semaphore {
    /// Creates `name` (or a generated `/fastipc-…` name) exclusively with `value` and `mode`.
    pub fn create(name: Option<&str>, value: u32, mode: u32) -> Result<Semaphore> {
        if mode & !0o777 != 0 {
            return Err(Error::Invalid(format!(
                "mode must be permission bits (0 to 0o777), not {mode:#o}"
            )));
        }
        if value > sys::value_max() {
            return Err(Error::Invalid(format!(
                "initial value {value} is larger than the maximum {}",
                sys::value_max()
            )));
        }
        // Recorded first, committed once it exists (a failed creation drops the pending entry).
        let (name, sem, pending) = match name {
            Some(name) => {
                let name = names::posix_name(name, Kind::Sem)?;
                let c = c_name(&name)?;
                let pending = registry::begin(Kind::Sem, &name, 0);
                let sem = NamedSem::open(&c, true, mode, value)
                    .map_err(|e| Error::os(e, "sem_open", &name))?;
                (name, sem, pending)
            }
            None => loop {
                let name = names::generated(names::random_u64());
                let c = c_name(&name)?;
                let pending = registry::begin(Kind::Sem, &name, 0);
                match NamedSem::open(&c, true, mode, value) {
                    Ok(sem) => break (name, sem, pending),
                    Err(Errno::EXIST) => continue,
                    Err(e) => return Err(Error::os(e, "sem_open", &name)),
                }
            },
        };
        fix_mode(&name, mode);
        pending.commit();
        Ok(Semaphore {
            sem,
            name,
            closed: AtomicBool::new(false),
            last_wait_ns: AtomicU64::new(0),
        })
    }

    /// Opens the existing semaphore `name`.
    pub fn open(name: &str) -> Result<Semaphore> {
        let name = names::posix_name(name, Kind::Sem)?;
        let sem = NamedSem::open(&c_name(&name)?, false, 0, 0)
            .map_err(|e| Error::os(e, "sem_open", &name))?;
        Ok(Semaphore {
            sem,
            name,
            closed: AtomicBool::new(false),
            last_wait_ns: AtomicU64::new(0),
        })
    }

    /// The name in POSIX form.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes waits in other threads end (with EBADF) at their next slice, and every later
    /// operation fail with EBADF. The handle itself is closed when the value is dropped.
    pub fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Whether [`Semaphore::mark_closed`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Decrements the value, waiting until `deadline` if it is zero: `Ok(false)` when the
    /// deadline passes first. Waits in slices of at most [`SLICE`], running `interrupt` between
    /// them; a zero deadline tries once.
    pub fn acquire(&self, deadline: Deadline, interrupt: &mut dyn Interrupt) -> Result<bool> {
        let start = Instant::now();
        let got = self.wait(deadline, interrupt);
        if let Ok(true) = got {
            let took = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.last_wait_ns.store(took, Ordering::Relaxed);
        }
        got
    }

    fn wait(&self, deadline: Deadline, interrupt: &mut dyn Interrupt) -> Result<bool> {
        if deadline.remaining() != Some(Duration::ZERO) && self.spin(deadline)? {
            return Ok(true);
        }
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::os(Errno::BADF, "sem_wait", &self.name));
            }
            let result = match deadline.remaining() {
                Some(left) if left.is_zero() => match self.sem.try_wait() {
                    Err(Errno::AGAIN) => return Ok(false),
                    other => other,
                },
                Some(left) => self.sem.wait_for(left.min(SLICE)),
                None => self.sem.wait_for(SLICE),
            };
            match result {
                Ok(()) => return Ok(true),
                Err(Errno::TIMEDOUT | Errno::AGAIN | Errno::INTR) => interrupt.check()?,
                Err(e) => return Err(Error::os(e, "sem_wait", &self.name)),
            }
        }
    }

    /// The adaptive first phase of a wait: poll with `sem_trywait`, yielding the CPU between
    /// tries (so that a peer on the same core runs at once), for the [`spin_budget`] of the last
    /// wait. A peer that answers within that time is caught awake: no sleep in the kernel here,
    /// no wake-up system call on its side, and no cross-CPU wake-up (an inter-processor interrupt,
    /// tens of microseconds in a virtual machine). A slower one costs [`SPIN_MIN`], then the real
    /// wait begins. Other tasks on this CPU run whenever it yields.
    fn spin(&self, deadline: Deadline) -> Result<bool> {
        let start = Instant::now();
        let last = Duration::from_nanos(self.last_wait_ns.load(Ordering::Relaxed));
        let budget = spin_budget(last);
        loop {
            match self.sem.try_wait() {
                Ok(()) => return Ok(true),
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(e) => return Err(Error::os(e, "sem_trywait", &self.name)),
            }
            if start.elapsed() >= budget
                || deadline.remaining() == Some(Duration::ZERO)
                || self.closed.load(Ordering::Relaxed)
            {
                return Ok(false);
            }
            std::thread::yield_now();
        }
    }

    /// Yields the CPU once (a peer runnable on this core runs now), then tries again; nothing
    /// happens if no other task is runnable here. The callers' cheap first step before a wait.
    pub fn yield_then_try(&self) -> Result<bool> {
        std::thread::yield_now();
        self.try_acquire()
    }

    /// Decrements the value if that needs no waiting.
    pub fn try_acquire(&self) -> Result<bool> {
        loop {
            match self.sem.try_wait() {
                Ok(()) => return Ok(true),
                Err(Errno::AGAIN) => return Ok(false),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::os(e, "sem_trywait", &self.name)),
            }
        }
    }

    /// Increments the value `n` times. `EOVERFLOW` past the maximum (the posts before it stay).
    pub fn release(&self, n: u32) -> Result<()> {
        for _ in 0..n {
            self.sem
                .post()
                .map_err(|e| Error::os(e, "sem_post", &self.name))?;
        }
        Ok(())
    }

    /// The current value; `NotSupported` on macOS.
    pub fn value(&self) -> Result<u32> {
        match self.sem.value() {
            Ok(v) => Ok(u32::try_from(v).unwrap_or(0)),
            Err(Errno::NOSYS) => Err(Error::NotSupported(format!(
                "the value of a semaphore cannot be read on this platform (sem_getvalue) ({})",
                self.name
            ))),
            Err(e) => Err(Error::os(e, "sem_getvalue", &self.name)),
        }
    }
}

/// Gives a new semaphore exactly `mode` (`sem_open` applies the umask). Linux keeps named
/// semaphores as `/dev/shm/sem.<name>`; elsewhere there is no file to change.
fn fix_mode(name: &str, mode: u32) {
    #[cfg(target_os = "linux")]
    {
        let path = format!("/dev/shm/sem.{}", name.trim_start_matches('/'));
        let _ = rustix::fs::chmod(path.as_str(), rustix::fs::Mode::from_bits_truncate(mode));
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (name, mode);
    }
}

/// Removes the name `name`; open handles keep working.
pub fn unlink(name: &str) -> Result<()> {
    let name = names::posix_name(name, Kind::Sem)?;
    sys::unlink(&c_name(&name)?).map_err(|e| Error::os(e, "sem_unlink", &name))?;
    registry::forget(Kind::Sem, &name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::Uninterrupted;
    use std::time::Instant;

    #[test]
    fn spin_budget_follows_short_waits_only() {
        assert_eq!(spin_budget(Duration::ZERO), SPIN_MIN);
        assert_eq!(spin_budget(Duration::from_micros(5)), SPIN_MIN);
        assert_eq!(
            spin_budget(Duration::from_micros(100)),
            Duration::from_micros(170)
        );
        assert_eq!(spin_budget(Duration::from_micros(200)), SPIN_MAX);
        assert_eq!(spin_budget(Duration::from_millis(3)), SPIN_MIN);
    }

    #[test]
    fn post_wait_timeout() {
        std::env::set_var(
            "FASTIPC_REGISTRY_DIR",
            std::env::temp_dir().join("fastipc-rust-tests"),
        );
        let name = format!(
            "/fastipc-test-sem-{}-{:x}",
            std::process::id(),
            names::random_u64()
        );
        let s = Semaphore::create(Some(&name), 1, 0o600).unwrap();
        let t = Semaphore::open(&name).unwrap();
        assert!(t
            .acquire(Deadline::after(Some(Duration::ZERO)), &mut Uninterrupted)
            .unwrap());
        assert!(!s.try_acquire().unwrap());
        let start = Instant::now();
        let got = s
            .acquire(
                Deadline::after(Some(Duration::from_millis(120))),
                &mut Uninterrupted,
            )
            .unwrap();
        assert!(!got);
        assert!(start.elapsed() >= Duration::from_millis(120));
        s.release(3).unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(t.value().unwrap(), 3);
        }
        unlink(&name).unwrap();
        assert_eq!(
            Semaphore::open(&name).unwrap_err().errno(),
            Some(Errno::NOENT)
        );
    }
}
