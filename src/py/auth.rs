//! `listen`/`connect`'s `authkey` options. The handshake itself runs in the core
//! ([`crate::auth`]), with the interpreter released: a listener's in its `accept`, a client's
//! right after its `connect`. The arguments are checked by `fastipc._auth.options`, as the
//! fallback checks them, so that both backends refuse the same values with the same errors.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::auth::{AuthKey, Required};
use crate::py::errors::IntoPy;

fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("fastipc._auth")
}

/// Validates `listen`/`connect`'s `authkey` and `handshake_timeout` (`_auth.options`): the key
/// and the per-peer deadline (`None` for one too long to represent: as long as `accept` waits).
pub(crate) fn options(
    py: Python<'_>,
    kind: &str,
    authkey: Option<&Bound<'_, PyAny>>,
    handshake_timeout: f64,
) -> PyResult<Option<Required>> {
    let Some(authkey) = authkey else {
        return Ok(None);
    };
    let checked = module(py)?
        .getattr("options")?
        .call1((kind, authkey, handshake_timeout))?;
    let (key, handshake): (Bound<'_, PyBytes>, f64) = checked.extract()?;
    Ok(Some(Required {
        key: AuthKey::new(key.as_bytes()).py_err()?,
        handshake_timeout: Duration::try_from_secs_f64(handshake).ok(),
    }))
}

/// Refuses a listener without `authkey` on a TCP host that is not loopback, unless allowed.
pub(crate) fn refuse_exposed(
    py: Python<'_>,
    host: &str,
    address: &str,
    allow_unauthenticated: bool,
) -> PyResult<()> {
    module(py)?
        .getattr("refuse_exposed")?
        .call1((host, address, allow_unauthenticated))?;
    Ok(())
}
