//! Waiting in an idle event loop's stead: when an asyncio loop has nothing else to do, a
//! receive waits for its message here rather than in the loop (see [`Idle`], and
//! `fastipc/aio/_ready.py`, `Readiness.idle()`, for when a loop is idle).

use std::os::fd::{BorrowedFd, RawFd};
use std::thread::ThreadId;
use std::time::Duration;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};

use crate::py::fds::with_borrowed;

/// An event loop with nothing else to do, which a receive may wait in the stead of.
///
/// An asyncio loop whose ready queue is empty would next sleep in `epoll_wait` until one of its
/// descriptors is ready or its next timer is due. A receive whose message has not arrived waits
/// here instead, for its socket and for the loop's epoll descriptor together, with the GIL
/// released, for at most `limit` (up to the next timer, see `fastipc/aio/_ready.py`). If its
/// message comes first, it returns it without the loop's two passes (the wake-up and the task's
/// step); if anything else the loop watches becomes ready (or a signal, or a thread's
/// `call_soon_threadsafe`), it gives the wait back to the loop at once. The socket is not
/// watched by the loop meanwhile, so the loop's descriptor is readable only for others' work.
#[derive(Clone, Copy)]
pub struct Idle<'a> {
    /// The loop's epoll (or kqueue) descriptor.
    pub loop_fd: BorrowedFd<'a>,
    /// The longest wait here.
    pub limit: Duration,
}

impl Idle<'_> {
    /// Runs `f` with the idle wait `(loop_fd, seconds)` that `Readiness.idle()` gives (none when
    /// `loop_fd` is negative).
    pub fn with<R>((loop_fd, seconds): (RawFd, f64), f: impl FnOnce(Option<Idle<'_>>) -> R) -> R {
        let limit = Duration::try_from_secs_f64(seconds).unwrap_or(Duration::ZERO);
        with_borrowed(loop_fd, |loop_fd| {
            f(loop_fd.map(|loop_fd| Idle { loop_fd, limit }))
        })
    }
}

/// No idle wait: the loop has work, or is not one whose descriptor can be waited beside.
pub const NOT_IDLE: (RawFd, f64) = (-1, 0.0);

/// What [`LoopView::idle`] remembers of the loop a connection's receives last ran on.
pub struct LoopView {
    /// The loop's `__dict__` (`None` for a loop without a descriptor to wait beside, such as uvloop).
    dict: Option<Py<PyDict>>,
    /// Its selector's descriptor, negative if it has none.
    fd: RawFd,
    /// Whether its `time()` is asyncio's own (`time.monotonic()`), so that its timers can be
    /// compared with the monotonic clock here.
    monotonic: bool,
    /// `threading.get_ident()` of the thread it was seen running in, and that thread.
    ident: Py<PyAny>,
    thread: ThreadId,
}

/// What [`LoopView::quick`] found.
enum Quick {
    /// The answer.
    Answer((RawFd, f64)),
    /// A case for `Readiness.idle()`; `same`: the loop is the one seen last time (it runs in
    /// this thread: a thread runs one loop at a time).
    Ask { same: bool },
}

impl LoopView {
    /// `readable.idle()` (a `fastipc.aio._ready.Readiness`) as `(loop_fd, seconds)`, its common
    /// case answered here, reading the loop's `__dict__` rather than running Python: the loop
    /// seen last time is running in this thread (its `_thread_id` is this thread's, as asyncio
    /// sets it while the loop runs), has nothing ready but cancelled callbacks, is not stopping,
    /// does not watch `readable`'s descriptor, and its next timer (if its clock is asyncio's
    /// own) is not due. Anything else is asked of `Readiness.idle()`, and the loop it found is
    /// remembered in `view` for the next time.
    pub fn idle(
        py: Python<'_>,
        view: &mut Option<LoopView>,
        readable: &Bound<'_, PyAny>,
    ) -> PyResult<(RawFd, f64)> {
        let same = match view.as_ref() {
            Some(known) => match known.quick(py, readable)? {
                Quick::Answer(answer) => return Ok(answer),
                Quick::Ask { same } => same,
            },
            None => false,
        };
        let answer = readable.call_method0(intern!(py, "idle"))?;
        if !same {
            *view = LoopView::of(py, readable)?;
        }
        if answer.len()? == 0 {
            return Ok(NOT_IDLE);
        }
        answer.extract()
    }

    /// The answer without Python, if the common case holds.
    fn quick(&self, py: Python<'_>, readable: &Bound<'_, PyAny>) -> PyResult<Quick> {
        let Some(dict) = &self.dict else {
            // No descriptor to wait beside (uvloop): never idle, as Readiness.idle() answers.
            return Ok(Quick::Answer(NOT_IDLE));
        };
        let dict = dict.bind(py);
        let running = std::thread::current().id() == self.thread
            && match dict.get_item(intern!(py, "_thread_id"))? {
                Some(ident) => ident.is(&self.ident) || ident.eq(&self.ident)?,
                None => false,
            };
        if !running {
            return Ok(Quick::Ask { same: false });
        }
        let ask = Quick::Ask { same: true };
        let falsy = |name: &Bound<'_, PyString>| -> PyResult<bool> {
            Ok(match dict.get_item(name)? {
                Some(value) => !value.is_truthy()?,
                None => false,
            })
        };
        if !falsy(intern!(py, "_stopping"))?
            || !all_cancelled(py, dict.get_item(intern!(py, "_ready"))?)?
            || !readable.getattr(intern!(py, "_loop"))?.is_none()
        {
            return Ok(ask);
        }
        let mut seconds = idle_max(py)?;
        let Some(timers) = dict.get_item(intern!(py, "_scheduled"))? else {
            return Ok(ask);
        };
        if timers.is_truthy()? {
            if !self.monotonic {
                return Ok(ask);
            }
            let when: f64 = timers
                .get_item(0)?
                .getattr(intern!(py, "_when"))?
                .extract()?;
            seconds = seconds.min(when - monotonic_now());
            if seconds <= 0.0 {
                return Ok(Quick::Answer(NOT_IDLE));
            }
        }
        Ok(Quick::Answer((self.fd, seconds)))
    }

    /// What `readable.idle()` just found: its loop and that loop's descriptor.
    fn of(py: Python<'_>, readable: &Bound<'_, PyAny>) -> PyResult<Option<LoopView>> {
        let running = readable.getattr(intern!(py, "_idle_loop"))?;
        if running.is_none() {
            return Ok(None);
        }
        let fd: RawFd = readable.getattr(intern!(py, "_idle_fd"))?.extract()?;
        let dict = if fd < 0 {
            None
        } else {
            Some(
                running
                    .getattr(intern!(py, "__dict__"))?
                    .cast_into::<PyDict>()?
                    .unbind(),
            )
        };
        let time = running.get_type().getattr(intern!(py, "time"))?;
        let monotonic = time.is(asyncio_time(py)?);
        Ok(Some(LoopView {
            dict,
            fd,
            monotonic,
            ident: get_ident(py)?.unbind(),
            thread: std::thread::current().id(),
        }))
    }
}

/// `time.monotonic()`, as asyncio's loops read their clock.
fn monotonic_now() -> f64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    #[allow(clippy::cast_precision_loss)] // seconds since boot: exact in an f64's 53 bits
    let seconds = now.tv_sec as f64;
    seconds + f64::from(u32::try_from(now.tv_nsec).unwrap_or(0)) * 1e-9
}

/// `asyncio.base_events.BaseEventLoop.time`, asyncio's own clock.
fn asyncio_time(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static TIME: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    TIME.get_or_try_init(py, || {
        let base = py.import("asyncio.base_events")?.getattr("BaseEventLoop")?;
        Ok::<_, PyErr>(base.getattr("time")?.unbind())
    })
    .map(|time| time.bind(py))
}

/// Whether the loop's ready queue holds nothing but cancelled callbacks (which a loop pass
/// would drop: a task that never yields leaves there the ones cancelled while it ran).
fn all_cancelled(py: Python<'_>, ready: Option<Bound<'_, PyAny>>) -> PyResult<bool> {
    let Some(ready) = ready else {
        return Ok(false);
    };
    if !ready.is_truthy()? {
        return Ok(true);
    }
    for handle in ready.try_iter()? {
        if !handle?.getattr(intern!(py, "_cancelled"))?.is_truthy()? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `threading.get_ident()`.
fn get_ident(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static GET_IDENT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    GET_IDENT.import(py, "threading", "get_ident")?.call0()
}

/// `fastipc.aio._ready.IDLE_MAX`, read each time (tests change it).
fn idle_max(py: Python<'_>) -> PyResult<f64> {
    static READY: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    let globals = READY.get_or_try_init(py, || {
        let module = py.import("fastipc.aio._ready")?;
        Ok::<_, PyErr>(module.dict().unbind())
    })?;
    match globals.bind(py).get_item(intern!(py, "IDLE_MAX"))? {
        Some(value) => value.extract(),
        None => Ok(0.0),
    }
}
