//! fastipc: fast, safe interprocess communication.
//!
//! The core compiles and is tested without Python (`cargo test --no-default-features`), so a Rust
//! program can be the other end of any fastipc channel. The `python` feature adds the PyO3
//! bindings of the `fastipc._fastipc` extension module.

// `unsafe` only where the crate touches raw memory or the OS: `sys/`, and `py/buffer.rs` and
// `py/fds.rs` (Python's C API), each with `#![allow(unsafe_code)]` at its top.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod addr;
pub mod creds;
pub mod error;
pub mod filelock;
pub mod frame;
pub mod lock;
#[cfg(target_os = "linux")]
pub mod mqueue;
pub mod names;
pub mod pipe;
pub mod registry;
pub mod sem;
pub mod shm;
pub mod signals;
pub mod sockdir;
pub mod socket;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod sysvmq;
pub mod wait;

pub(crate) mod sys;

// PyO3 extracts a function's arguments as owned values (`PathBuf`, `Vec`) and calls getters on
// `&self` even when they return a constant (`readable`, `kind`).
#[cfg(feature = "python")]
#[allow(clippy::needless_pass_by_value, clippy::unused_self)]
mod py;

pub use addr::Address;
pub use error::{Error, Result};
pub use socket::{Datagram, Kind, Listener, Stream, DEFAULT_MAX_MESSAGE};
