//! Named shared memory shrunk under its mapping: a process-wide `SIGBUS` handler that turns the
//! fault into zero pages and a mark, so that a queue or channel reports a corrupt channel instead
//! of the process dying.
//!
//! A `MAP_SHARED` mapping of a POSIX segment that another process `ftruncate`s to fewer bytes
//! raises `SIGBUS` at the first access past the new end. Each mapping that may be shrunk (the
//! named segments of queues and channels, the segments of big messages) is registered here
//! ([`register`]); the handler, for a fault inside a registered range, maps anonymous zero pages
//! over the whole range (`mmap(MAP_FIXED)`), sets the range's mark and returns, so that the
//! faulting access completes on zeroes. The caller checks the mark ([`Guard::truncated`]: one
//! atomic load) after each operation and reports the truncation.
//!
//! The registry is a fixed table of atomics: the handler takes no lock and allocates nothing. An
//! entry's range is guarded by a sequence number (odd while it changes), and a range is removed
//! before its mapping is unmapped, so that a later mapping at the same address is never taken for
//! ours. Faults that are not ours go to the handler that was installed before ours (Python's
//! `faulthandler`, a debugger's, or the default action: the process dies as it would have).
//!
//! The handler is installed once, at the first registration. A forked child inherits both the
//! handler and the table, with its mappings at the same addresses: it stays right there too.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How many mappings can be watched at once; more are mapped unwatched (documented).
const ENTRIES: usize = 4096;

/// One watched range.
#[derive(Debug)]
struct Entry {
    /// Taken by a registration (set before the range is written, cleared after it is erased).
    claimed: AtomicBool,
    /// Even while the range is stable, odd while it changes (a seqlock the handler reads).
    seq: AtomicUsize,
    start: AtomicUsize,
    /// 0: no range.
    len: AtomicUsize,
    /// The handler put zero pages over the range.
    truncated: AtomicBool,
}

impl Entry {
    const fn new() -> Entry {
        Entry {
            claimed: AtomicBool::new(false),
            seq: AtomicUsize::new(0),
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            truncated: AtomicBool::new(false),
        }
    }

    fn set(&self, start: usize, len: usize) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        self.start.store(start, Ordering::SeqCst);
        self.len.store(len, Ordering::SeqCst);
        self.truncated.store(false, Ordering::SeqCst);
        self.seq.fetch_add(1, Ordering::SeqCst);
    }

    /// The range, if it was stable while read.
    fn range(&self) -> Option<(usize, usize)> {
        let before = self.seq.load(Ordering::Acquire);
        if before % 2 == 1 {
            return None;
        }
        let start = self.start.load(Ordering::Acquire);
        let len = self.len.load(Ordering::Acquire);
        (len > 0 && self.seq.load(Ordering::Acquire) == before).then_some((start, len))
    }
}

static TABLE: [Entry; ENTRIES] = [const { Entry::new() }; ENTRIES];
/// Every entry ever claimed lies below this index (the handler scans no further).
static HIGH: AtomicUsize = AtomicUsize::new(0);

/// A watched mapping: its mark, and its entry freed on drop. Drop it before unmapping.
#[derive(Debug)]
pub struct Guard {
    entry: &'static Entry,
}

impl Guard {
    /// Whether the handler replaced the mapping with zero pages (the segment shrank under it).
    #[inline]
    pub fn truncated(&self) -> bool {
        self.entry.truncated.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.entry.set(0, 0);
        self.entry.claimed.store(false, Ordering::Release);
    }
}

/// Watches the mapping `start..start+len` (mapped and not yet used by anyone else); `None` when
/// the platform has no handler or the table is full (then a truncation still raises `SIGBUS`).
pub fn register(start: *mut u8, len: usize) -> Option<Guard> {
    if len == 0 || !handler::install() {
        return None;
    }
    let index = TABLE.iter().position(|e| {
        e.claimed
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })?;
    let entry = &TABLE[index];
    entry.set(start as usize, len);
    HIGH.fetch_max(index + 1, Ordering::SeqCst);
    Some(Guard { entry })
}

/// The entry whose range holds `addr` (async-signal-safe: atomic loads only).
fn find(addr: usize) -> Option<(&'static Entry, usize, usize)> {
    let high = HIGH.load(Ordering::Acquire).min(ENTRIES);
    TABLE[..high].iter().find_map(|e| {
        let (start, len) = e.range()?;
        (addr >= start && addr - start < len).then_some((e, start, len))
    })
}

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd"
))]
mod handler {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Once, OnceLock};

    use libc::{c_int, c_void, siginfo_t};

    /// The disposition before ours, to hand foreign faults to.
    struct Previous(libc::sigaction);
    // SAFETY: a plain C struct of integers and function addresses, written once before the handler
    // is installed and only read afterwards.
    unsafe impl Sync for Previous {}
    // SAFETY: as above.
    unsafe impl Send for Previous {}

    static ONCE: Once = Once::new();
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    static PREVIOUS: OnceLock<Previous> = OnceLock::new();

    /// Installs the handler once; whether it is installed.
    pub fn install() -> bool {
        ONCE.call_once(|| {
            // SAFETY: an all-zero sigaction is a valid value of the C struct (SIG_DFL, no flags).
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: queries the current disposition into `old`, on our stack.
            if unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &raw mut old) } != 0 {
                return;
            }
            let _ = PREVIOUS.set(Previous(old));
            // SAFETY: as above.
            let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
            // SAFETY: fills the mask of the struct on our stack.
            unsafe { libc::sigemptyset(&raw mut new.sa_mask) };
            // SAFETY: installs a handler that is async-signal-safe (atomics, mmap, sigaction).
            if unsafe { libc::sigaction(libc::SIGBUS, &raw const new, std::ptr::null_mut()) } == 0 {
                INSTALLED.store(true, Ordering::Release);
            }
        });
        INSTALLED.load(Ordering::Acquire)
    }

    #[cfg(target_os = "linux")]
    fn errno_location() -> *mut c_int {
        // SAFETY: returns the address of this thread's errno; no argument.
        unsafe { libc::__errno_location() }
    }

    #[cfg(target_os = "android")]
    fn errno_location() -> *mut c_int {
        // SAFETY: returns the address of this thread's errno; no argument.
        unsafe { libc::__errno() }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn errno_location() -> *mut c_int {
        // SAFETY: returns the address of this thread's errno; no argument.
        unsafe { libc::__error() }
    }

    /// The faulting address and whether the kernel sent the signal for a fault (not `kill`).
    fn fault(info: *const siginfo_t) -> Option<usize> {
        if info.is_null() {
            return None;
        }
        // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
        let info = unsafe { &*info };
        if info.si_code <= 0 {
            return None; // sent by a process (SI_USER, SI_TKILL, SI_QUEUE): no address
        }
        // SAFETY: for a kernel-generated SIGBUS the siginfo holds the fault's address.
        let addr = unsafe { info.si_addr() };
        Some(addr as usize)
    }

    extern "C" fn on_sigbus(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
        let errno = errno_location();
        // SAFETY: this thread's errno, saved and restored around the calls below.
        let saved = unsafe { *errno };
        if let Some((entry, start, len)) = fault(info).and_then(super::find) {
            entry.truncated.store(true, Ordering::SeqCst);
            // SAFETY: `start..start+len` is a live mapping of ours (registered ranges are removed
            // before they are unmapped); MAP_FIXED replaces it in one step with private zero pages
            // of the same size, so every pointer into it stays valid. mmap is a plain system call.
            let zeroes = unsafe {
                libc::mmap(
                    start as *mut c_void,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANON | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if zeroes != libc::MAP_FAILED {
                // SAFETY: as above.
                unsafe { *errno = saved };
                return;
            }
        }
        chain(sig, info, ctx);
        // SAFETY: as above.
        unsafe { *errno = saved };
    }

    /// A fault that is not ours (or that could not be mended): the previous disposition's turn.
    fn chain(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
        let sent = fault(info).is_none();
        if let Some(Previous(prev)) = PREVIOUS.get() {
            match prev.sa_sigaction {
                // (a fault cannot be ignored: the kernel kills for it as for SIG_DFL)
                libc::SIG_IGN if sent => return,
                libc::SIG_DFL | libc::SIG_IGN => {}
                f if prev.sa_flags & libc::SA_SIGINFO != 0 => {
                    // SAFETY: with SA_SIGINFO the address is a three-argument signal handler,
                    // installed by whoever set that disposition.
                    let f: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) =
                        unsafe { std::mem::transmute(f) };
                    f(sig, info, ctx);
                    return;
                }
                f => {
                    // SAFETY: without SA_SIGINFO the address is a one-argument signal handler.
                    let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(f) };
                    f(sig);
                    return;
                }
            }
        }
        // The default action: restore it; the faulting access runs again and the process dies
        // of SIGBUS as it would have without us (a sent signal is raised again, delivered once
        // this handler returns).
        // SAFETY: an all-zero sigaction is SIG_DFL with an empty mask.
        let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
        dfl.sa_sigaction = libc::SIG_DFL;
        // SAFETY: sigaction and raise are async-signal-safe; the struct is on our stack.
        unsafe {
            libc::sigaction(sig, &raw const dfl, std::ptr::null_mut());
            if sent {
                libc::raise(sig);
            }
        }
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd"
)))]
mod handler {
    /// No handler here: mappings are not watched.
    pub fn install() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::{find, register};

    #[test]
    fn ranges_come_and_go() {
        let mut block = vec![0u8; 64];
        let start = block.as_mut_ptr();
        let guard = register(start, 64).expect("a free entry");
        assert!(!guard.truncated());
        let at = start as usize;
        assert!(find(at).is_some());
        assert!(find(at + 63).is_some());
        assert!(find(at + 64).is_none());
        drop(guard);
        assert!(find(at).is_none(), "no stale range once unregistered");
    }
}
