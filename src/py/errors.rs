//! Conversion of the core's errors into Python exceptions.

use pyo3::exceptions::{PyEOFError, PyKeyboardInterrupt, PyOSError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::{errno_text, Error};

pyo3::import_exception!(fastipc._errors, MessageTooLarge);
pyo3::import_exception!(fastipc._errors, TruncatedMessage);
pyo3::import_exception!(fastipc._errors, BufferTooShort);
pyo3::import_exception!(fastipc._errors, NotSupportedError);
pyo3::import_exception!(fastipc._errors, AuthenticationError);
pyo3::import_exception!(fastipc._errors, IPCError);
pyo3::import_exception!(fastipc._errors, SharedSocketDirWarning);
pyo3::import_exception!(socket, gaierror);

/// The Python exception for a core error; `pending` is the exception the interrupt check stored
/// (a `KeyboardInterrupt`, or whatever a signal handler raised).
pub fn to_py(err: Error, pending: Option<PyErr>) -> PyErr {
    match err {
        Error::Os { errno, op: _, what } => {
            PyOSError::new_err((errno.raw_os_error(), errno_text(errno), what))
        }
        Error::OsMsg { errno, msg, what } => PyOSError::new_err((errno.raw_os_error(), msg, what)),
        Error::UnsafeDir { errno, msg, path } => {
            PyOSError::new_err((errno.raw_os_error(), msg, path.display().to_string()))
        }
        Error::Timeout { what } => PyTimeoutError::new_err((
            rustix::io::Errno::TIMEDOUT.raw_os_error(),
            "timed out",
            what,
        )),
        Error::Interrupted => {
            pending.unwrap_or_else(|| PyKeyboardInterrupt::new_err("interrupted"))
        }
        e @ Error::MessageTooLarge { .. } => MessageTooLarge::new_err(e.to_string()),
        ref e @ Error::Truncated {
            expected, received, ..
        } => TruncatedMessage::new_err((e.to_string(), expected, received)),
        e @ Error::Eof { .. } => PyEOFError::new_err(e.to_string()),
        Error::BufferTooShort { message } => {
            Python::attach(|py| BufferTooShort::new_err((PyBytes::new(py, &message).unbind(),)))
        }
        Error::FdsTruncated { what } => PyOSError::new_err((
            rustix::io::Errno::MSGSIZE.raw_os_error(),
            "control message truncated: more descriptors arrived than maxfds allows, \
             and every descriptor that arrived was closed",
            what,
        )),
        Error::NotSupported(msg) => NotSupportedError::new_err(msg),
        Error::Invalid(msg) => PyValueError::new_err(msg),
        Error::Authentication(msg) => AuthenticationError::new_err(msg),
        e @ Error::Corrupt { .. } => IPCError::new_err(e.to_string()),
        e @ Error::Resolve { .. } => gaierror::new_err(e.to_string()),
    }
}

/// `?`-friendly conversion for results that carry no pending exception.
pub trait IntoPy<T> {
    /// Converts the error.
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, Error> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(|e| to_py(e, None))
    }
}
