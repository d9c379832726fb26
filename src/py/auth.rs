//! The `authkey` handshake of `multiprocessing.connection`: the Rust backend runs
//! `fastipc._auth`, the pure-Python implementation the fallback shares, on its own connections.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::py::connection::Connection;

/// The key and the per-peer handshake deadline (seconds) of an authenticated listener.
pub(crate) struct Auth {
    key: Py<PyBytes>,
    handshake: f64,
}

fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("fastipc._auth")
}

/// Validates `listen`/`connect`'s `authkey` and `handshake_timeout` (`_auth.options`).
pub(crate) fn options(
    py: Python<'_>,
    kind: &str,
    authkey: Option<&Bound<'_, PyAny>>,
    handshake_timeout: f64,
) -> PyResult<Option<Auth>> {
    let Some(authkey) = authkey else {
        return Ok(None);
    };
    let checked = module(py)?
        .getattr("options")?
        .call1((kind, authkey, handshake_timeout))?;
    let (key, handshake): (Bound<'_, PyBytes>, f64) = checked.extract()?;
    Ok(Some(Auth {
        key: key.unbind(),
        handshake,
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

/// The listener's side of the handshake; false (the connection closed) if the peer failed it.
pub(crate) fn server(
    py: Python<'_>,
    conn: &Py<Connection>,
    auth: &Auth,
    accept_left: Option<f64>,
) -> PyResult<bool> {
    module(py)?
        .getattr("server_handshake")?
        .call1((
            conn.clone_ref(py),
            auth.key.clone_ref(py),
            auth.handshake,
            accept_left,
        ))?
        .extract()
}

/// The connecting side: `AuthenticationError` (the connection closed) if the peer refused us.
pub(crate) fn client(
    py: Python<'_>,
    conn: &Py<Connection>,
    auth: &Auth,
    timeout: Option<f64>,
) -> PyResult<()> {
    module(py)?.getattr("client_handshake")?.call1((
        conn.clone_ref(py),
        auth.key.clone_ref(py),
        timeout,
    ))?;
    Ok(())
}
