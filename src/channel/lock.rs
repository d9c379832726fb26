//! The lock of each side of a ring: a futex word in the segment holding the owner's pid, owned
//! by the process (any of its threads may release it), taken over when its owner died.
//!
//! ```text
//! +0  u32  0: free; else the owner's pid (bits 0-30), bit 31: a waiter sleeps on the word
//! +8  u64  the owner's start time (Linux: /proc/PID/stat field 22), 0 when unknown
//! ```
//!
//! Taking it is one compare-and-swap of 0 to the pid; releasing it, one compare-and-swap of the
//! pid to 0 (and `FUTEX_WAKE` when the waiters bit was set). A contended taker spins briefly,
//! then looks at the owner once per slice: a pid that does not exist, a zombie, a process whose
//! start time is not the recorded one (the pid was reused), or a value that cannot be a pid
//! (garbage a peer wrote) is a dead owner, whose lock is taken over (the start time cleared,
//! then one compare-and-swap of the word); the caller then repairs what the lock protects. An
//! owner stores its start time after taking the lock and clears it before releasing it. Nothing in the word is ever dereferenced: a
//! hostile value costs a takeover or a wait bounded by the caller's timeout, never a crash.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::raw::{futex_wait, futex_wake_one};
use super::wait::{spin_for, spinning_allowed, Waiting};
use crate::error::Result;

/// The waiters bit of the lock word.
pub const WAITERS: u32 = 1 << 31;
/// The owner's pid in the lock word.
pub const PID_MASK: u32 = !WAITERS;
/// Linux's largest possible pid (`PID_MAX_LIMIT`): a larger owner is garbage, hence dead.
const PID_LIMIT: u32 = 1 << 22;
/// How long a contended taker spins before it looks at the owner and sleeps.
const LOCK_SPIN: Duration = Duration::from_micros(5);

/// How a lock was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Free, or released by a live owner.
    Free,
    /// Taken over from a dead owner (or from a value that names none): repair what it guards.
    FromDead,
}

static ME: AtomicU32 = AtomicU32::new(0);
static ME_START: AtomicU64 = AtomicU64::new(0);
static REGISTERED: std::sync::Once = std::sync::Once::new();

/// Forgets the cached pid (a forked child has another one); registered with `pthread_atfork`.
extern "C" fn forget_pid() {
    ME.store(0, Ordering::Relaxed);
}

/// This process's pid and start time, cached (the cache is cleared in a forked child).
pub fn me() -> (u32, u64) {
    let pid = ME.load(Ordering::Acquire);
    if pid != 0 {
        return (pid, ME_START.load(Ordering::Relaxed));
    }
    REGISTERED.call_once(|| super::raw::on_fork_child(forget_pid));
    let pid = std::process::id();
    let start = match owner_state(pid) {
        Owner::Alive(start) => start,
        Owner::Gone | Owner::Unknown => 0,
    };
    ME_START.store(start, Ordering::Relaxed);
    ME.store(pid, Ordering::Release);
    (pid, start)
}

/// What `/proc` says of a pid.
enum Owner {
    /// Running (or stopped), started at this time (clock ticks after boot).
    Alive(u64),
    /// No such process, or a zombie.
    Gone,
    /// `/proc` cannot tell.
    Unknown,
}

fn owner_state(pid: u32) -> Owner {
    let text = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Owner::Gone,
        Err(_) => return Owner::Unknown,
    };
    // "pid (comm) state ppid ...": the command may hold spaces and parentheses.
    let Some(rest) = text.rfind(')').map(|at| &text[at + 1..]) else {
        return Owner::Unknown;
    };
    let mut fields = rest.split_ascii_whitespace();
    match fields.next() {
        Some("Z" | "X" | "x") => return Owner::Gone,
        None => return Owner::Unknown,
        Some(_) => {}
    }
    // The state is field 3; the start time is field 22.
    fields
        .nth(18)
        .and_then(|f| f.parse().ok())
        .map_or(Owner::Unknown, Owner::Alive)
}

/// Whether the owner named by lock word `word` (with start time `stamp`, 0: unknown) is gone.
fn owner_dead(word: u32, stamp: u64, me: u32) -> bool {
    let pid = word & PID_MASK;
    if pid == me {
        return false;
    }
    if pid > PID_LIMIT {
        return true;
    }
    match owner_state(pid) {
        Owner::Gone => true,
        Owner::Alive(start) => stamp != 0 && stamp != start,
        Owner::Unknown => !pid_exists(pid),
    }
}

fn pid_exists(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|p| rustix::process::test_kill_process(p) != Err(rustix::io::Errno::SRCH))
}

/// Takes the lock at `word` (its start-time word `stamp`), waiting as `w` says.
pub fn lock(word: &AtomicU32, stamp: &AtomicU64, w: &mut Waiting<'_>) -> Result<Taken> {
    let (me, start) = me();
    if word
        .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        stamp.store(start, Ordering::Relaxed);
        return Ok(Taken::Free);
    }
    let taken = contended(word, stamp, me, w)?;
    stamp.store(start, Ordering::Relaxed);
    Ok(taken)
}

fn contended(word: &AtomicU32, stamp: &AtomicU64, me: u32, w: &mut Waiting<'_>) -> Result<Taken> {
    let mut spun = !spinning_allowed() || w.now;
    // Once asleep, a taker keeps the waiters bit set: others may still sleep.
    let mut slept = 0;
    loop {
        let cur = word.load(Ordering::Relaxed);
        if cur & PID_MASK == 0 {
            let new = me | (cur & WAITERS) | slept;
            if word
                .compare_exchange(cur, new, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(Taken::Free);
            }
            continue;
        }
        if !spun {
            spun = true;
            spin_for(LOCK_SPIN, || word.load(Ordering::Relaxed) & PID_MASK == 0);
            continue;
        }
        let seen = stamp.load(Ordering::Acquire);
        if owner_dead(cur, seen, me) {
            // The dead owner's start time goes first: a checker that saw the new owner's pid
            // beside it would take the new owner for a reused pid.
            if stamp
                .compare_exchange(seen, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if word
                .compare_exchange(
                    cur,
                    me | (cur & WAITERS),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return Ok(Taken::FromDead);
            }
            continue;
        }
        let slice = w.next_slice()?;
        if cur & WAITERS == 0
            && word
                .compare_exchange(cur, cur | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        futex_wait(word, cur | WAITERS, slice);
        slept = WAITERS;
        if word.load(Ordering::Relaxed) == cur | WAITERS {
            w.interrupt.check()?;
        }
    }
}

/// Releases the lock if this process holds it (false: it does not, and nothing changed; a
/// forked child's copy of a reservation, or a lock word a peer overwrote).
pub fn unlock(word: &AtomicU32, stamp: &AtomicU64) -> bool {
    let me = me().0;
    let mut cur = word.load(Ordering::Relaxed);
    loop {
        if cur & PID_MASK != me {
            return false;
        }
        stamp.store(0, Ordering::Relaxed);
        match word.compare_exchange_weak(cur, 0, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    if cur & WAITERS != 0 {
        futex_wake_one(word);
    }
    true
}

/// Whether this process holds the lock.
pub fn held(word: &AtomicU32) -> bool {
    word.load(Ordering::Relaxed) & PID_MASK == me().0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::Uninterrupted;

    #[test]
    fn take_release_and_take_over() {
        let word = AtomicU32::new(0);
        let stamp = AtomicU64::new(0);
        let mut un = Uninterrupted;
        let mut w = Waiting::nonblocking(&mut un, "test");
        assert_eq!(lock(&word, &stamp, &mut w).unwrap(), Taken::Free);
        assert!(held(&word));
        // Held by this process: a second taker times out.
        assert!(lock(&word, &stamp, &mut w).is_err());
        assert!(unlock(&word, &stamp));
        assert!(!unlock(&word, &stamp));
        // Garbage: a pid that cannot exist, then one that does not.
        for garbage in [0x7fff_fff0, WAITERS | 0x7fff_0000, PID_LIMIT - 1] {
            word.store(garbage, Ordering::Relaxed);
            assert_eq!(lock(&word, &stamp, &mut w).unwrap(), Taken::FromDead);
            assert_eq!(word.load(Ordering::Relaxed) & PID_MASK, me().0);
            assert!(unlock(&word, &stamp));
        }
        // A live process (pid 1) with a start time that is not its own: the pid was reused.
        word.store(1, Ordering::Relaxed);
        stamp.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(lock(&word, &stamp, &mut w).unwrap(), Taken::FromDead);
        assert!(unlock(&word, &stamp));
        // ... and with its own (or an unknown one): alive, waited for.
        word.store(1, Ordering::Relaxed);
        stamp.store(0, Ordering::Relaxed);
        assert!(lock(&word, &stamp, &mut w).is_err());
        assert!(!unlock(&word, &stamp));
    }
}
