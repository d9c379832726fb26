//! fastipc: fast, safe interprocess communication.
//!
//! The core compiles and is tested without Python (`cargo test --no-default-features`), so a Rust
//! program can be the other end of any fastipc channel. The `python` feature (on by default) adds
//! the PyO3 bindings of the `fastipc._fastipc` extension module; a Rust program leaves it out:
//!
//! ```toml
//! [dependencies]
//! fastipc = { path = "../fastipc", default-features = false }
//! ```
//!
//! With the defaults of Python's `fastipc.connect` and `fastipc.listen` ([`SocketOptions`] to
//! change them):
//!
//! ```no_run
//! # #[cfg(not(unix))]
//! # fn main() {}
//! # #[cfg(unix)]
//! # fn main() -> fastipc::Result<()> {
//! // A client: the listener at 127.0.0.1:5000 is the Unix socket
//! // <socket_dir>/127.0.0.1:5000 (see `addr` and `sockdir`).
//! let conn = fastipc::Stream::connect("127.0.0.1:5000")?;
//! conn.send_bytes(b"hello")?;
//! let reply: Vec<u8> = conn.recv_bytes()?;
//!
//! // A server.
//! let listener = fastipc::Listener::listen("127.0.0.1:5001")?;
//! for conn in listener.incoming() {
//!     let conn = conn?;
//!     let request = conn.recv_bytes()?;
//!     conn.send_bytes(&request)?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The full functions beside them ([`socket::connect`], [`Listener::bind`], [`Listener::accept`])
//! take every option and an interrupt check. [`SocketOptions::authkey`] adds the `authkey`
//! handshake of Python's `multiprocessing.connection` ([`auth`]), so a Rust peer authenticates to
//! fastipc's Python listeners and clients and to the standard library's. The wire format, for peers in other languages, is
//! specified in the repository's `docs/wire.md`; `examples/rust/` is a client and a server built
//! this way.
//!
//! The core is built on Unix only: every module but `frame` (pure code) is behind `cfg(unix)`,
//! and finer `cfg`s mark what is Linux-only. Elsewhere (Windows) the crate is `frame` plus, with
//! the `python` feature, an extension module that reports that it is no backend
//! (`src/py_unsupported.rs`), so that the Python package runs on its pure-Python fallback.

// `unsafe` only where the crate touches raw memory or the OS: `sys/`, `channel/raw.rs` (atomics on
// a shared ring), and `py/buffer.rs` and `py/fds.rs` (Python's C API), each with
// `#![allow(unsafe_code)]` at its top.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod frame;

#[cfg(unix)]
pub mod addr;
#[cfg(unix)]
pub mod auth;
#[cfg(unix)]
pub mod channel;
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
pub use auth::AuthKey;
#[cfg(unix)]
pub use error::{Error, Result};
#[cfg(unix)]
pub use socket::{Datagram, Kind, Listener, SocketOptions, Stream, DEFAULT_MAX_MESSAGE};
