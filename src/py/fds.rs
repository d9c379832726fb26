//! Descriptor arguments and results: Python ints (or objects with `fileno()`) in, ints out.

// The crate denies `unsafe_code`; descriptor numbers from Python become `BorrowedFd`s here.
#![allow(unsafe_code)]

use std::os::fd::{BorrowedFd, IntoRawFd, OwnedFd, RawFd};

use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::creds::Credentials;
use crate::socket::SCM_MAX_FD;

/// Raw descriptor numbers taken from a Python sequence, checked to be open.
pub struct FdList(Vec<RawFd>);

impl FdList {
    /// Reads `fds`: ints, or objects with a `fileno()` method.
    pub fn extract(fds: Option<&Bound<'_, PyAny>>) -> PyResult<FdList> {
        let Some(fds) = fds else {
            return Ok(FdList(Vec::new()));
        };
        let mut out = Vec::new();
        for item in fds.try_iter()? {
            let item = item?;
            let raw: RawFd = match item.extract::<RawFd>() {
                Ok(n) => n,
                Err(_) if item.hasattr("fileno")? => item.call_method0("fileno")?.extract()?,
                Err(_) => {
                    return Err(PyTypeError::new_err(
                        "descriptors are ints or objects with a fileno() method",
                    ))
                }
            };
            if raw < 0 {
                return Err(PyValueError::new_err(format!("invalid descriptor {raw}")));
            }
            if out.len() == SCM_MAX_FD {
                return Err(PyValueError::new_err(format!(
                    "more than {SCM_MAX_FD} descriptors in one message"
                )));
            }
            out.push(raw);
        }
        for &raw in &out {
            // SAFETY: only inspected for this call; an fd that is not open makes fcntl fail.
            let fd = unsafe { BorrowedFd::borrow_raw(raw) };
            if let Err(e) = rustix::io::fcntl_getfd(fd) {
                return Err(PyOSError::new_err((
                    e.raw_os_error(),
                    crate::error::errno_text(e),
                    format!("descriptor {raw}"),
                )));
            }
        }
        Ok(FdList(out))
    }

    /// Borrowed views for the duration of one send.
    pub fn borrow(&self) -> Vec<BorrowedFd<'_>> {
        self.0
            .iter()
            // SAFETY: each number was checked open just above, and the caller keeps the objects
            // alive for the duration of the call (Python holds the GIL-protected references or
            // the caller's own ints). Should another thread close one in between, sendmsg
            // answers EBADF: no memory is at stake, only which descriptor travels.
            .map(|&raw| unsafe { BorrowedFd::borrow_raw(raw) })
            .collect()
    }
}

/// Runs `f` with `raw`, a descriptor number that the caller keeps open for the call (an event
/// loop's own, for `fastipc.aio`'s idle waits), borrowed; a negative number is none.
pub fn with_borrowed<R>(raw: RawFd, f: impl FnOnce(Option<BorrowedFd<'_>>) -> R) -> R {
    if raw < 0 {
        return f(None);
    }
    // SAFETY: only polled for the duration of `f`, never closed or read. The caller keeps it
    // open (the running loop's descriptor); a number that is not open makes poll report
    // POLLNVAL on it, which the idle wait takes as "the loop has work".
    let fd = unsafe { BorrowedFd::borrow_raw(raw) };
    f(Some(fd))
}

/// Hands received descriptors to Python: the caller owns them from now on.
pub fn into_raw(fds: Vec<OwnedFd>) -> Vec<RawFd> {
    fds.into_iter().map(IntoRawFd::into_raw_fd).collect()
}

/// `fastipc.Credentials(pid, uid, gid)`.
pub fn credentials(py: Python<'_>, c: Credentials) -> PyResult<Py<PyAny>> {
    static CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let class = CLASS.import(py, "fastipc._types", "Credentials")?;
    Ok(class.call1((c.pid, c.uid, c.gid))?.unbind())
}

/// Takes ownership of a descriptor number that Python handed over for good (what
/// `multiprocessing.reduction.DupFd(...).detach()` returns); checked to be open.
pub fn adopt(raw: RawFd) -> PyResult<OwnedFd> {
    use std::os::fd::FromRawFd;
    if raw < 0 {
        return Err(PyValueError::new_err(format!("invalid descriptor {raw}")));
    }
    // SAFETY: only inspected; an fd that is not open makes fcntl fail.
    let fd = unsafe { BorrowedFd::borrow_raw(raw) };
    if let Err(e) = rustix::io::fcntl_getfd(fd) {
        return Err(PyOSError::new_err((
            e.raw_os_error(),
            crate::error::errno_text(e),
            format!("descriptor {raw}"),
        )));
    }
    // SAFETY: the descriptor is open and the caller gave up its ownership (see above).
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
