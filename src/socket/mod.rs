//! Sockets: listeners, framed stream/seqpacket connections and datagram sockets, as plain Rust
//! types that own their descriptors. Addresses are remapped as described in [`crate::addr`].
//!
//! One file per concern, cut as the bindings (`py/`) and the fallback (`_fallback/`) are:
//!
//! - `ancillary`: descriptors and credentials on `sendmsg`/`recvmsg` (`_fds.py`)
//! - `options`: creating sockets and the options every fastipc socket gets
//! - `resolve`: what an address leads to (`_addr.py`)
//! - `bind`: binding at a path under its lock, the port-0 search, abstract and IP addresses
//!   (`_sockdir.py`, `_open.py`); the ownership of a path itself lives in [`crate::sockdir`]
//! - `listener`, `connect`: listening and its policy, connecting and adopting (`_listener.py`,
//!   `_open.py`)
//! - `recvbuf`: the pure receive buffer of a stream; `stream`: the send side and the
//!   connection; `reader`: the receive side (`_conn.py`)
//! - `datagram`: datagram sockets (`_dgram.py`)
//! - `builder`: the short Rust API over all of these ([`SocketOptions`], [`Stream::connect`],
//!   [`Listener::listen`], [`Stream::send_bytes`], [`Stream::recv_bytes`]), with the defaults
//!   of Python's `fastipc.connect` and `fastipc.listen`

mod ancillary;
mod bind;
mod builder;
mod connect;
mod datagram;
// The receive buffer's methods, public for the fuzz targets in `fuzz/` only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod listener;
mod options;
mod reader;
mod recvbuf;
mod resolve;
mod stream;
#[cfg(test)]
mod tests;

pub use builder::{Connections, SocketOptions, DEFAULT_BACKLOG};
pub use connect::{adopt, connect, Adopted};
pub use datagram::{Datagram, Received};
pub use listener::{Listener, Policy};
pub use reader::Reader;
pub use recvbuf::RecvBuf;
pub use resolve::describe;
pub use stream::{Incoming, Stream};

use crate::error::{Error, PyRepr, Result};
use rustix::net::SocketType;

/// Default limit on the size of one received message: 64 MiB.
pub const DEFAULT_MAX_MESSAGE: u64 = 64 * 1024 * 1024;
/// Most descriptors one message can carry (Linux's `SCM_MAX_FD`), checked before sending.
pub const SCM_MAX_FD: usize = 253;
/// A stored timeout (nanoseconds, in an atomic) meaning "none".
const NO_TIMEOUT: u64 = u64::MAX;

/// The kind of socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A byte stream carrying framed messages.
    Stream,
    /// Reliable, ordered packets: one message is one packet (Unix sockets only).
    SeqPacket,
    /// Datagrams: Unix datagram when remapped, UDP otherwise.
    Datagram,
}

impl Kind {
    /// Parses "stream", "seqpacket" or "datagram".
    pub fn parse(text: &str) -> Result<Kind> {
        match text {
            "stream" => Ok(Kind::Stream),
            "seqpacket" => Ok(Kind::SeqPacket),
            "datagram" => Ok(Kind::Datagram),
            other => Err(Error::Invalid(format!(
                "kind must be 'stream', 'seqpacket' or 'datagram', not {}",
                PyRepr(other)
            ))),
        }
    }

    /// The name, as parsed.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Stream => "stream",
            Kind::SeqPacket => "seqpacket",
            Kind::Datagram => "datagram",
        }
    }

    fn socket_type(self) -> SocketType {
        match self {
            Kind::Stream => SocketType::STREAM,
            Kind::SeqPacket => SocketType::SEQPACKET,
            Kind::Datagram => SocketType::DGRAM,
        }
    }

    fn ip_prefix(self) -> &'static str {
        if self == Kind::Datagram {
            "udp"
        } else {
            "tcp"
        }
    }
}
