//! The blocking loop of the bindings: release the GIL, run the core operation (which waits in
//! slices of at most 50 ms), and between slices re-attach to run the signal handlers so that
//! Ctrl-C raises `KeyboardInterrupt` promptly.

use pyo3::prelude::*;

use crate::error::Error;
use crate::py::errors::to_py;
use crate::wait::Interrupt;

/// Runs Python's signal handlers between slices; keeps the exception one of them raised.
#[derive(Default)]
pub struct SignalCheck {
    /// The exception to raise instead of the core's `Interrupted`.
    pub pending: Option<PyErr>,
}

impl SignalCheck {
    /// Stops the operation with `err` (raised as is), e.g. a failed allocation.
    pub fn fail(&mut self, err: PyErr) -> Error {
        self.pending = Some(err);
        Error::Interrupted
    }
}

impl Interrupt for SignalCheck {
    // `Python::check_signals` itself does not fit `attach`'s closure, which is generic over the
    // `Python<'py>` lifetime.
    #[allow(clippy::redundant_closure_for_method_calls)]
    fn check(&mut self) -> Result<(), Error> {
        match Python::attach(|py| py.check_signals()) {
            Ok(()) => Ok(()),
            Err(err) => Err(self.fail(err)),
        }
    }
}

/// Runs `op` with the GIL released and converts its error.
pub fn detached<T, F>(py: Python<'_>, op: F) -> PyResult<T>
where
    F: FnOnce(&mut SignalCheck) -> Result<T, Error> + Send,
    T: Send,
{
    let mut check = SignalCheck::default();
    let result = py.detach(|| op(&mut check));
    result.map_err(|e| to_py(e, check.pending.take()))
}
