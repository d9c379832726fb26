//! The lock of each side of a ring: a u64 word in the segment holding the owner's pid and start
//! time, owned by the process (any of its threads may release it), taken over when its owner
//! died.
//!
//! ```text
//! +0  u32  0: free; else the owner's pid (bits 0-30), bit 31: a waiter sleeps (the futex word)
//! +4  u32  the low 32 bits of the owner's start time (Linux: /proc/PID/stat field 22), 0: unknown
//! ```
//!
//! Both halves change together, by one 64-bit compare-and-swap: taking it is a compare-and-swap
//! of 0 to the owner's word, releasing it one of the owner's word to 0 (then `FUTEX_WAKE` on the
//! low half when the waiters bit was set). A contended taker spins briefly, then looks at the
//! owner before each sleep of at most 5 ms (an owner found alive is believed for 5 ms): a pid that does not exist, a zombie, a process whose start time is not
//! the recorded one (the pid was reused), or a value that cannot be a pid (garbage a peer wrote)
//! is a dead owner, whose lock is taken over with one compare-and-swap; the caller then repairs
//! what the lock protects. Nothing in the word is ever dereferenced: a hostile value costs a
//! takeover or a wait bounded by the caller's timeout, never a crash.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::raw::{futex_wait, futex_wake_one};
use super::wait::{spin_for, spinning_allowed, Waiting};
use crate::error::Result;

/// The waiters bit of the lock word.
pub const WAITERS: u64 = 1 << 31;
/// The owner's pid in the lock word.
pub const PID_MASK: u64 = 0x7fff_ffff;
/// Linux's largest possible pid (`PID_MAX_LIMIT`): a larger owner is garbage, hence dead.
const PID_LIMIT: u32 = 1 << 22;
/// How long a contended taker spins before it looks at the owner and sleeps.
const LOCK_SPIN: Duration = Duration::from_micros(2);

/// How a lock was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Free, or released by a live owner.
    Free,
    /// Taken over from a dead owner (or from a value that names none): repair what it guards.
    FromDead,
}

/// The two words of a lock: the u64 and its low half (the futex word).
#[derive(Debug, Clone, Copy)]
pub struct LockWord<'a> {
    /// The whole word.
    pub word: &'a AtomicU64,
    /// Its low 32 bits, where the pid and the waiters bit are.
    pub futex: &'a AtomicU32,
}

/// This process's lock word (start time and pid); 0 until computed (again, after a fork).
static ME: AtomicU64 = AtomicU64::new(0);
static REGISTERED: std::sync::Once = std::sync::Once::new();

/// Forgets the cached pid (a forked child has another one); registered with `pthread_atfork`.
extern "C" fn forget_pid() {
    ME.store(0, Ordering::Relaxed);
}

/// This process's lock word: the low 32 bits of its start time and its pid, cached (the cache
/// is cleared in a forked child).
pub fn me() -> u64 {
    let me = ME.load(Ordering::Relaxed);
    if me != 0 {
        return me;
    }
    REGISTERED.call_once(|| super::raw::on_fork_child(forget_pid));
    let pid = std::process::id();
    let start = match owner_state(pid) {
        Owner::Alive(start) => start & 0xffff_ffff,
        Owner::Gone | Owner::Unknown => 0,
    };
    let me = start << 32 | u64::from(pid) & PID_MASK;
    ME.store(me, Ordering::Relaxed);
    me
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

/// How long an owner found alive is believed alive without another look at `/proc`.
const ALIVE_FOR: Duration = Duration::from_millis(5);

/// The lock word last found to name a live owner, and when (coarse milliseconds).
static ALIVE: AtomicU64 = AtomicU64::new(0);
static ALIVE_AT: AtomicU64 = AtomicU64::new(0);

/// Whether the owner named by lock word `word` is gone (`me`: this process's word).
fn owner_dead(word: u64, me: u64) -> bool {
    if word & PID_MASK == me & PID_MASK {
        return false;
    }
    let word = word & !WAITERS;
    let now = super::raw::coarse_ms();
    #[allow(clippy::cast_possible_truncation)] // 5
    let fresh = ALIVE_FOR.as_millis() as u64;
    if ALIVE.load(Ordering::Relaxed) == word
        && now.saturating_sub(ALIVE_AT.load(Ordering::Relaxed)) < fresh
    {
        return false;
    }
    let dead = look_at_owner(word);
    if !dead {
        ALIVE_AT.store(now, Ordering::Relaxed);
        ALIVE.store(word, Ordering::Relaxed);
    }
    dead
}

fn look_at_owner(word: u64) -> bool {
    let pid = word & PID_MASK;
    #[allow(clippy::cast_possible_truncation)] // 31 bits
    let pid = pid as u32;
    if pid > PID_LIMIT {
        return true;
    }
    let stamp = word >> 32;
    match owner_state(pid) {
        Owner::Gone => true,
        Owner::Alive(start) => stamp != 0 && stamp != start & 0xffff_ffff,
        Owner::Unknown => !pid_exists(pid),
    }
}

fn pid_exists(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|p| rustix::process::test_kill_process(p) != Err(rustix::io::Errno::SRCH))
}

/// Takes the lock, waiting as `w` says.
pub fn lock(l: LockWord<'_>, w: &mut Waiting<'_>) -> Result<Taken> {
    let me = me();
    if l.word
        .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        return Ok(Taken::Free);
    }
    if w.now && l.word.load(Ordering::Relaxed) & PID_MASK != me & PID_MASK {
        // A call that does not wait for messages or space (put_nowait, get_nowait) still waits
        // a moment for a lock another process holds: its holder needs microseconds
        // (milliseconds if descheduled), and "full" or "empty" would be untrue;
        // multiprocessing.Queue waits for its locks the same way. Not for a holder in this
        // process: that may be a thread holding a view, which needs this thread's GIL to let go.
        let mut grace = Waiting::new(
            crate::wait::Deadline::after(Some(LOCK_GRACE)),
            &mut *w.interrupt,
            w.what,
        );
        return contended(l, me, &mut grace);
    }
    contended(l, me, w)
}

/// How long a call that does not wait for messages or space waits for a busy lock. One held
/// by a view or a reservation stays held until released: the call then gives up.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

fn contended(l: LockWord<'_>, me: u64, w: &mut Waiting<'_>) -> Result<Taken> {
    let mut spun = !spinning_allowed() || w.now;
    // Once asleep, a taker keeps the waiters bit set: others may still sleep.
    let mut slept = 0;
    loop {
        let cur = l.word.load(Ordering::Relaxed);
        if cur & PID_MASK == 0 {
            if l.word
                .compare_exchange(
                    cur,
                    me | (cur & WAITERS) | slept,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return Ok(Taken::Free);
            }
            continue;
        }
        if !spun {
            spun = true;
            spin_for(LOCK_SPIN, || l.word.load(Ordering::Relaxed) & PID_MASK == 0);
            continue;
        }
        if owner_dead(cur, me) {
            if l.word
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
        // Short sleeps: an owner found alive is believed for up to ALIVE_FOR without a look.
        let slice = w.next_slice()?.min(ALIVE_FOR);
        if cur & WAITERS == 0
            && l.word
                .compare_exchange(cur, cur | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        #[allow(clippy::cast_possible_truncation)] // the low half, on purpose
        futex_wait(l.futex, (cur | WAITERS) as u32, slice);
        slept = WAITERS;
        if l.word.load(Ordering::Relaxed) == cur | WAITERS {
            w.interrupt.check()?;
        }
    }
}

/// Releases the lock if this process holds it (false: it does not, and nothing changed; a
/// forked child's copy of a reservation, or a lock word a peer overwrote).
pub fn unlock(l: LockWord<'_>) -> bool {
    let me = me();
    let mut cur = l.word.load(Ordering::Relaxed);
    loop {
        if cur & !WAITERS != me {
            return false;
        }
        match l
            .word
            .compare_exchange_weak(cur, 0, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    if cur & WAITERS != 0 {
        futex_wake_one(l.futex);
    }
    true
}

/// Whether this process holds the lock.
pub fn held(l: LockWord<'_>) -> bool {
    l.word.load(Ordering::Relaxed) & !WAITERS == me()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::Uninterrupted;

    #[test]
    fn take_release_and_take_over() {
        let word = AtomicU64::new(0);
        let futex = AtomicU32::new(0); // never slept on: the waits below do not wait
        let l = LockWord {
            word: &word,
            futex: &futex,
        };
        let mut un = Uninterrupted;
        let mut w = Waiting::nonblocking(&mut un, "test");
        assert_eq!(lock(l, &mut w).unwrap(), Taken::Free);
        assert!(held(l));
        assert_eq!(
            word.load(Ordering::Relaxed) & PID_MASK,
            u64::from(std::process::id())
        );
        // Held by this process: a second taker times out.
        assert!(lock(l, &mut w).is_err());
        assert!(unlock(l));
        assert!(!unlock(l));
        // Garbage: a pid that cannot exist, then one that does not.
        for garbage in [0x7fff_fff0, WAITERS | 0x7fff_0000, u64::from(PID_LIMIT - 1)] {
            word.store(garbage | 12345 << 32, Ordering::Relaxed);
            assert_eq!(lock(l, &mut w).unwrap(), Taken::FromDead);
            assert!(held(l));
            assert!(unlock(l));
        }
        // A live process (pid 1) with a start time that is not its own: the pid was reused.
        word.store(u64::from(u32::MAX - 1) << 32 | 1, Ordering::Relaxed);
        assert_eq!(lock(l, &mut w).unwrap(), Taken::FromDead);
        assert!(unlock(l));
        // ... and with an unknown one: alive, waited for.
        word.store(1, Ordering::Relaxed);
        assert!(lock(l, &mut w).is_err());
        assert!(!unlock(l));
    }
}
