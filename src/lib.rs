//! fastipc: fast, safe interprocess communication.
//!
//! The core compiles and is tested without Python (`cargo test --no-default-features`), so a Rust
//! program can be the other end of any fastipc channel. The `python` feature adds the PyO3
//! bindings of the `fastipc._fastipc` extension module.
//!
//! The core is built on Unix only: every module but `frame` (pure code) is behind `cfg(unix)`,
//! and finer `cfg`s mark what is Linux-only. Elsewhere (Windows) the crate is `frame` plus, with
//! the `python` feature, an extension module that reports that it is no backend
//! (`src/py_unsupported.rs`), so that the Python package runs on its pure-Python fallback.

// `unsafe` only where the crate touches raw memory or the OS: `sys/`, and `py/buffer.rs` and
// `py/fds.rs` (Python's C API), each with `#![allow(unsafe_code)]` at its top.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod frame;

#[cfg(unix)]
pub mod addr;
#[cfg(unix)]
pub mod creds;
#[cfg(unix)]
pub mod error;
#[cfg(unix)]
pub mod filelock;
#[cfg(unix)]
pub mod lock;
#[cfg(target_os = "linux")]
pub mod mqueue;
#[cfg(unix)]
pub mod names;
#[cfg(unix)]
pub mod pipe;
#[cfg(unix)]
pub mod registry;
#[cfg(unix)]
pub mod sem;
#[cfg(unix)]
pub mod shm;
#[cfg(unix)]
pub mod signals;
#[cfg(unix)]
pub mod sockdir;
#[cfg(unix)]
pub mod socket;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod sysvmq;
#[cfg(unix)]
pub mod wait;

#[cfg(unix)]
pub(crate) mod sys;

// PyO3 extracts a function's arguments as owned values (`PathBuf`, `Vec`) and calls getters on
// `&self` even when they return a constant (`readable`, `kind`).
#[cfg(all(feature = "python", unix))]
#[allow(clippy::needless_pass_by_value, clippy::unused_self)]
mod py;

// The extension module where the core is not built: it says so, and no more.
#[cfg(all(feature = "python", not(unix)))]
mod py_unsupported;

#[cfg(unix)]
pub use addr::Address;
#[cfg(unix)]
pub use error::{Error, Result};
#[cfg(unix)]
pub use socket::{Datagram, Kind, Listener, Stream, DEFAULT_MAX_MESSAGE};
