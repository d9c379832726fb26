//! `fastipc.SignalReceiver` and `fastipc.kill_and_wait`.
#![cfg_attr(not(target_os = "linux"), allow(unused_imports, dead_code))]

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyTuple};

use crate::py::blocking::detached;
use crate::py::timeout_arg;

#[cfg(target_os = "linux")]
fn info_to_py(py: Python<'_>, info: crate::signals::Info) -> PyResult<Py<PyAny>> {
    static MAKE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let make = MAKE.get_or_try_init(py, || {
        Ok::<_, PyErr>(
            py.import("fastipc._records")?
                .getattr("make_signal_info")?
                .unbind(),
        )
    })?;
    let status = (info.signo == libc::SIGCHLD).then_some(info.status);
    Ok(make
        .bind(py)
        .call1((info.signo, info.pid, info.uid, info.code, status))?
        .unbind())
}

/// A pollable receiver of chosen signals (signalfd): they are blocked in the calling thread and
/// read from a descriptor usable with selectors and asyncio.
#[cfg(target_os = "linux")]
#[pyclass(frozen, module = "fastipc", name = "SignalReceiver")]
pub struct SignalReceiver {
    inner: crate::py::slot::Slot<crate::signals::SignalReceiver>,
    signals: Vec<i32>,
}

#[cfg(target_os = "linux")]
#[pymethods]
impl SignalReceiver {
    #[new]
    fn new(signals: &Bound<'_, PyAny>) -> PyResult<SignalReceiver> {
        use crate::py::errors::IntoPy;
        let mut numbers = Vec::new();
        for item in signals.try_iter()? {
            numbers.push(item?.extract::<i32>()?);
        }
        let rx = crate::signals::SignalReceiver::new(&numbers).py_err()?;
        Ok(SignalReceiver {
            signals: rx.signals().to_vec(),
            inner: crate::py::slot::Slot::new(rx),
        })
    }

    /// The signal numbers received.
    #[getter]
    fn signals(&self) -> Vec<i32> {
        self.signals.clone()
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Waits for one signal: a `SignalInfo`. `TimeoutError` at the deadline.
    #[pyo3(signature = (timeout=None))]
    fn receive(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let timeout = timeout_arg(timeout)?;
        let rx = self.inner.get("signalfd")?;
        let info = detached(py, |check| rx.receive(timeout, check))?;
        info_to_py(py, info)
    }

    /// Every signal pending now (possibly none), without waiting.
    fn drain(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        use crate::py::errors::IntoPy;
        let rx = self.inner.get("signalfd")?;
        let infos = rx.drain().py_err()?;
        let list = PyList::empty(py);
        for info in infos {
            list.append(info_to_py(py, info)?)?;
        }
        Ok(list.unbind())
    }

    /// The descriptor: readable while a signal is pending.
    fn fileno(&self) -> PyResult<i32> {
        use std::os::fd::AsRawFd;
        Ok(self.inner.get("signalfd")?.as_fd().as_raw_fd())
    }

    /// Closes the descriptor and, on the thread that created the receiver, unblocks the signals
    /// it blocked (pending ones are then delivered as usual). Idempotent.
    fn close(&self) -> PyResult<()> {
        use crate::py::errors::IntoPy;
        if let Some(rx) = self.inner.close() {
            rx.restore_mask().py_err()?;
        }
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.close()
    }

    fn __repr__(&self) -> String {
        use std::os::fd::AsRawFd;
        match self.inner.get("signalfd") {
            Ok(rx) => format!(
                "<fastipc.SignalReceiver signals={:?} fd={}>",
                self.signals,
                rx.as_fd().as_raw_fd()
            ),
            Err(_) => format!("<fastipc.SignalReceiver signals={:?} closed>", self.signals),
        }
    }
}

/// Sends `sig` to process `pid` (or to process group `pid` if `group`) and waits until it has
/// exited (a zombie counts; it is not reaped). `TimeoutError` at the deadline; 0 only waits.
#[pyfunction]
#[pyo3(signature = (pid, sig=15, *, timeout=None, group=false))]
pub fn kill_and_wait(
    py: Python<'_>,
    pid: i32,
    sig: i32,
    timeout: Option<f64>,
    group: bool,
) -> PyResult<()> {
    let timeout = timeout_arg(timeout)?;
    detached(py, |check| {
        crate::signals::signal_and_wait(pid, sig, group, timeout, check)
    })
}
