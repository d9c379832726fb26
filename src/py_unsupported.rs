//! The `fastipc._fastipc` extension module where the core is not built (not Unix: Windows).
//!
//! It is no backend: it holds `AVAILABLE = False` and `UNAVAILABLE_REASON`, nothing else.
//! `fastipc._backend` reads them and runs the package on its pure-Python fallback, or, under
//! `FASTIPC_BACKEND=rust`, raises an `ImportError` that gives the reason.

use pyo3::prelude::*;

/// The reason, naming the platform (`std::env::consts::OS`, e.g. "windows").
fn reason() -> String {
    format!(
        "fastipc's Rust backend is built on Unix only, not on {}: this extension has none of it",
        std::env::consts::OS
    )
}

#[pymodule]
fn _fastipc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("AVAILABLE", false)?;
    m.add("UNAVAILABLE_REASON", reason())
}
