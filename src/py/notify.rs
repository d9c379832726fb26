//! Notification descriptors (`fileno()`, `space_fileno()`) and pickling into a child process.
//!
//! A descriptor is made on the first call only: an eventfd, and one thread per queue or channel
//! end and direction that sleeps on the ring's futex (announcing itself as a sleeper, so that the
//! other side wakes it) and keeps the eventfd readable exactly while a message is waiting (or
//! while there is space). Nothing is paid on the fast path while nobody asked for one; it works
//! for a named queue opened by an unrelated process, since it needs nothing but the ring. The
//! thread ends within 50 ms of the object's close, and closes the descriptor then.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::channel::{End, Queue, Ring};
use crate::py::errors::to_py;
use crate::py::ringops::Owner;
use crate::wait::SLICE;

#[derive(Clone)]
enum WeakOwner {
    Queue(Weak<Queue>),
    Channel(Weak<End>),
}

impl WeakOwner {
    fn upgrade(&self) -> Option<Owner> {
        match self {
            WeakOwner::Queue(w) => w.upgrade().map(Owner::Queue),
            WeakOwner::Channel(w) => w.upgrade().map(Owner::Channel),
        }
    }
}

struct Watcher {
    owner: WeakOwner,
    fd: i32,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Table = HashMap<(usize, bool), Watcher>;

fn table() -> &'static Mutex<Table> {
    static TABLE: std::sync::OnceLock<Mutex<Table>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn key(owner: &Owner) -> (usize, WeakOwner) {
    match owner {
        Owner::Queue(q) => (Arc::as_ptr(q) as usize, WeakOwner::Queue(Arc::downgrade(q))),
        Owner::Channel(e) => (
            Arc::as_ptr(e) as usize,
            WeakOwner::Channel(Arc::downgrade(e)),
        ),
    }
}

/// The descriptor readable while a message is waiting (`data`) or while there is space.
pub fn fileno(owner: &Owner, data: bool) -> PyResult<i32> {
    let (addr, weak) = key(owner);
    let mut table = table().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = table.get(&(addr, data)) {
        if known.owner.upgrade().is_some() && !known.stop.load(Ordering::Acquire) {
            return Ok(known.fd);
        }
    }
    let fd = rustix::event::eventfd(
        0,
        rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
    )
    .map_err(|e| to_py(crate::error::Error::os(e, "eventfd", "notification"), None))?;
    let raw = fd.as_raw_fd();
    let stop = Arc::new(AtomicBool::new(false));
    let (owner, flag) = (weak.clone(), Arc::clone(&stop));
    let thread = std::thread::Builder::new()
        .name("fastipc-notify".into())
        .spawn(move || watch(&owner, &fd, data, &flag))
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
    table.insert(
        (addr, data),
        Watcher {
            owner: weak,
            fd: raw,
            stop,
            thread: Some(thread),
        },
    );
    Ok(raw)
}

/// Ends the watcher threads of `owner` (at its close) and closes their descriptors.
pub fn stop(py: Python<'_>, owner: &Owner) {
    let (addr, _) = key(owner);
    let mut threads = Vec::new();
    {
        let mut table = table().lock().unwrap_or_else(PoisonError::into_inner);
        for data in [true, false] {
            if let Some(mut w) = table.remove(&(addr, data)) {
                w.stop.store(true, Ordering::Release);
                threads.extend(w.thread.take());
            }
        }
    }
    if threads.is_empty() {
        return;
    }
    owner.tx().wake_all();
    owner.rx().wake_all();
    py.detach(|| {
        for t in threads {
            let _ = t.join();
        }
    });
}

fn set(fd: BorrowedFd<'_>, on: bool, signalled: &mut bool) {
    if on && !*signalled {
        let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
    } else if !on && *signalled {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(fd, &mut buf);
    }
    *signalled = on;
}

fn watch(weak: &WeakOwner, fd: &OwnedFd, data: bool, stop: &AtomicBool) {
    let mut signalled = false;
    while let Some(owner) = weak.upgrade() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let ring: &Ring = if data { owner.rx() } else { owner.tx() };
        let (tail, head) = (ring.position(true), ring.position(false));
        let ready = if data {
            tail != head
        } else {
            ring.has_space(0)
        };
        set(fd.as_fd(), ready, &mut signalled);
        // Ready for data: wait for consumers (head); not ready: for producers (tail). The other
        // way round for space.
        let on_tail = ready != data;
        ring.watch(on_tail, if on_tail { tail } else { head }, SLICE);
    }
}

/// `multiprocessing.reduction.DupFd(fd)` while a `multiprocessing.Process` is being started; a
/// `TypeError` otherwise (the memory cannot travel in bytes).
pub fn dup_for_child<'py>(
    py: Python<'py>,
    fd: BorrowedFd<'_>,
    what: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let popen = py
        .import("multiprocessing.context")?
        .call_method0("get_spawning_popen")?;
    if popen.is_none() {
        return Err(PyTypeError::new_err(format!(
            "{what} can be pickled only into a multiprocessing.Process (as its argument): its \
             memory cannot travel in bytes"
        )));
    }
    py.import("multiprocessing.reduction")?
        .getattr("DupFd")?
        .call1((fd.as_raw_fd(),))
}
