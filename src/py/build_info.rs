//! `fastipc._fastipc.build_info()`: how this extension was built, for `fastipc info` and bug
//! reports.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The crate version, `"release"` or `"debug"`, the target triple, the enabled Cargo features
/// and whether the module asks for the GIL on a free-threaded interpreter. (The Python API level
/// shows in the extension's file name, `.abi3.so` for the stable ABI: `fastipc info` reads it
/// there.)
#[pyfunction]
pub fn build_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let info = PyDict::new(py);
    info.set_item("backend", "rust")?;
    info.set_item("version", env!("CARGO_PKG_VERSION"))?;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    info.set_item("profile", profile)?;
    info.set_item("target", env!("FASTIPC_TARGET"))?;
    let features: Vec<&str> = [("python", cfg!(feature = "python"))]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
    info.set_item("features", features)?;
    // As declared by `#[pymodule(gil_used = true)]` in `py/mod.rs` (the attribute takes a
    // literal): keep the two in step.
    info.set_item("gil_used", true)?;
    Ok(info)
}
