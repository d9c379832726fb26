//! The `authkey` handshake of Python's `multiprocessing.connection`, in the core: a Rust peer
//! authenticates to a Python one (fastipc or the standard library's `Listener`/`Client`) and
//! back, and the Python bindings run it with the interpreter released.
//!
//! Each side proves that it holds the shared key without sending it. The side that listens
//! challenges first: it sends `#CHALLENGE#` and a random message, the other side answers with an
//! HMAC of that message keyed by the authkey, and the challenger replies `#WELCOME#` or
//! `#FAILURE#`. Then the roles swap. Every message is one framed message of the connection
//! (`docs/wire.md` gives the bytes).
//!
//! - fastipc challenges in the form of Python 3.12+: `{sha256}` and 40 random bytes, answered by
//!   `{sha256}` and the HMAC-SHA256 of the whole challenge;
//! - it accepts the legacy answer of Python 3.11 and earlier (a bare 16-byte HMAC-MD5), and any
//!   digest Python accepts in a prefix (`md5`, `sha256`, `sha384`, `sha3_256`, `sha3_384`);
//! - it answers a legacy challenge (20 bytes, no prefix) with a bare HMAC-MD5, as 3.12 does.
//!
//! Every message is received with a limit of [`MAX_LENGTH`] bytes (a longer length prefix is
//! refused before anything is allocated), answers are compared in constant time, and the
//! listener's side runs under a per-peer deadline ([`HANDSHAKE_TIMEOUT`] by default) so that a
//! silent or hostile peer cannot hold up an accept loop: it is closed and counted in
//! [`Listener::refused`](crate::Listener::refused). `authkey` authenticates; it does not encrypt.
//!
//! - `digest`: the messages themselves, no I/O (pure, tested against Python's `hmac`)
//! - `handshake`: the two sides over a [`Stream`](crate::Stream), with a deadline

pub mod digest;
mod handshake;

use std::time::Duration;

use crate::error::{Error, Result};

pub(crate) use handshake::server_watching;
pub use handshake::{client, server};

/// How long a listener waits for a peer to finish the handshake, by default.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// The first bytes of a challenge message.
pub const CHALLENGE: &[u8] = b"#CHALLENGE#";
/// The challenger's reply to a right answer.
pub const WELCOME: &[u8] = b"#WELCOME#";
/// The challenger's reply to a wrong answer (then it closes the connection).
pub const FAILURE: &[u8] = b"#FAILURE#";
/// Random bytes in a challenge fastipc sends (as Python 3.12+; 3.11 sends 20).
pub const MESSAGE_LENGTH: usize = 40;
/// The longest handshake message either side accepts (the standard library's limit too).
pub const MAX_LENGTH: u64 = 256;

/// A shared secret: any non-empty bytes. Its `Debug` form does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey(Vec<u8>);

impl AuthKey {
    /// The key; [`Error::Invalid`] if it is empty.
    pub fn new(key: impl Into<Vec<u8>>) -> Result<AuthKey> {
        let key = key.into();
        if key.is_empty() {
            return Err(Error::Invalid("authkey must not be empty".into()));
        }
        Ok(AuthKey(key))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthKey({} bytes)", self.0.len())
    }
}

/// What a listener asks of each peer it accepts: the key, and how long the peer has to prove
/// it holds it (`None`: as long as `accept`'s own timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Required {
    /// The shared key.
    pub key: AuthKey,
    /// The per-peer deadline of the handshake.
    pub handshake_timeout: Option<Duration>,
}

/// Fills `buf` with random bytes from the kernel (`getrandom`, else `/dev/urandom`); never
/// with anything weaker.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return urandom(&mut buf[filled..]),
        }
    }
    Ok(())
}

fn urandom(buf: &mut [u8]) -> Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| {
            let errno = rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO);
            Error::os(errno, "read", "/dev/urandom")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_non_empty_and_not_shown() {
        assert!(
            matches!(AuthKey::new(Vec::new()), Err(Error::Invalid(m)) if m == "authkey must not be empty")
        );
        let key = AuthKey::new(*b"secret").expect("a key");
        assert_eq!(key.as_bytes(), b"secret");
        assert_eq!(format!("{key:?}"), "AuthKey(6 bytes)");
    }

    #[test]
    fn random_bytes_differ() {
        let (mut a, mut b) = ([0u8; MESSAGE_LENGTH], [0u8; MESSAGE_LENGTH]);
        random_bytes(&mut a).expect("random");
        random_bytes(&mut b).expect("random");
        assert_ne!(a, b);
        let mut c = [0u8; 7];
        urandom(&mut c).expect("/dev/urandom");
    }
}

#[cfg(test)]
mod tests_end_to_end;
