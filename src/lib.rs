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
//! take every option and an interrupt check. The wire format, for peers in other languages, is
//! specified in the repository's `docs/wire.md`; `examples/rust/` is a client and a server built
//! this way.

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
pub use socket::{Datagram, Kind, Listener, SocketOptions, Stream, DEFAULT_MAX_MESSAGE};
