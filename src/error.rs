//! The one error type of the crate. Every variant names the address, path or name involved.

use rustix::io::Errno;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in fastipc's core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system call failed.
    #[error("{op} {what}: {}", errno_text(*.errno))]
    Os {
        /// The errno the kernel returned.
        errno: Errno,
        /// What was being done ("connect", "bind" ...).
        op: &'static str,
        /// The logical address, path or name involved.
        what: String,
    },
    /// An operating-system call failed, with an explanation better than the errno's text (a
    /// system limit, a wrong kind of file ...).
    #[error("{msg}: {what}")]
    OsMsg {
        /// The errno.
        errno: Errno,
        /// The explanation.
        msg: String,
        /// The path or name involved.
        what: String,
    },
    /// The deadline passed before the operation could complete.
    #[error("timed out: {what}")]
    Timeout {
        /// The address or name involved.
        what: String,
    },
    /// The caller's interrupt check asked to stop (a pending signal, in Python).
    #[error("interrupted")]
    Interrupted,
    /// A message is larger than the limit in force.
    #[error("message of {size} bytes is larger than the limit of {limit} bytes ({what})")]
    MessageTooLarge {
        /// Size of the message (or of the length prefix received).
        size: u64,
        /// The limit.
        limit: u64,
        /// The address involved.
        what: String,
    },
    /// The peer closed the connection in the middle of a message.
    #[error("peer closed the connection in the middle of a message: got {received} of {expected} bytes ({what})")]
    Truncated {
        /// Bytes that were due.
        expected: u64,
        /// Bytes that arrived.
        received: u64,
        /// The address involved.
        what: String,
    },
    /// A clean end of file between messages.
    #[error("end of file: the peer closed the connection ({what})")]
    Eof {
        /// The address involved.
        what: String,
    },
    /// The buffer given for a message is too small; the message is carried along.
    #[error("buffer too small for a message of {} bytes", .message.len())]
    BufferTooShort {
        /// The whole message, so that nothing is lost.
        message: Vec<u8>,
    },
    /// More descriptors arrived than there was room for; every one that arrived was closed.
    #[error("control message truncated: more descriptors arrived than maxfds allows; every descriptor that arrived was closed ({what})")]
    FdsTruncated {
        /// The address involved.
        what: String,
    },
    /// The operation does not exist for this socket kind, address or platform.
    #[error("{0}")]
    NotSupported(String),
    /// A host name could not be resolved.
    #[error("cannot resolve {what}: {msg}")]
    Resolve {
        /// The address.
        what: String,
        /// The resolver's message.
        msg: String,
    },
    /// The `authkey` handshake failed: the peer holds another key, none, or does not speak the
    /// handshake ([`crate::auth`]).
    #[error("{0}")]
    Authentication(String),
    /// An address or argument the caller gave is malformed.
    #[error("{0}")]
    Invalid(String),
    /// A shared-memory queue or channel holds values no correct peer writes (an index or length
    /// out of range, an unknown layout): the segment is corrupt or written by a hostile peer.
    #[error("corrupt channel: {what}")]
    Corrupt {
        /// What was found, and where.
        what: String,
    },
    /// The socket directory is unsafe to use (symlink, foreign owner, writable by others).
    #[error("{msg}: {}", .path.display())]
    UnsafeDir {
        /// EPERM or ENOTDIR.
        errno: Errno,
        /// Human-readable reason.
        msg: String,
        /// The directory.
        path: std::path::PathBuf,
    },
}

impl Error {
    /// An OS error for `op` on `what`.
    pub fn os(errno: Errno, op: &'static str, what: impl Into<String>) -> Self {
        Error::Os {
            errno,
            op,
            what: what.into(),
        }
    }

    /// The errno, for OS errors.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Os { errno, .. }
            | Error::UnsafeDir { errno, .. }
            | Error::OsMsg { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// The C library's text for an errno, without Rust's " (os error N)" suffix.
pub fn errno_text(errno: Errno) -> String {
    let text = std::io::Error::from_raw_os_error(errno.raw_os_error()).to_string();
    match text.rfind(" (os error ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// Shows a string as Python's `repr` does (`'text'`, or `"it's"` when it holds a single quote
/// and no double one, with `\n`, `\x00`, `\\` and such escaped), so that an error message quotes
/// what the user passed exactly as the pure-Python backend's message does.
pub struct PyRepr<'a>(pub &'a str);

impl std::fmt::Display for PyRepr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        let text = self.0;
        let quote = if text.contains('\'') && !text.contains('"') {
            '"'
        } else {
            '\''
        };
        f.write_char(quote)?;
        for c in text.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '\t' => f.write_str("\\t")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                c if c == quote => write!(f, "\\{c}")?,
                c if c.is_control() => match u32::from(c) {
                    code @ 0..=0xff => write!(f, "\\x{code:02x}")?,
                    code @ 0x100..=0xffff => write!(f, "\\u{code:04x}")?,
                    code => write!(f, "\\U{code:08x}")?,
                },
                c => f.write_char(c)?,
            }
        }
        f.write_char(quote)
    }
}

#[cfg(test)]
mod tests {
    use super::PyRepr;

    #[test]
    fn quotes_as_python_repr_does() {
        let cases = [
            ("zz", "'zz'"),
            ("", "''"),
            ("it's", "\"it's\""),
            ("a'b\"c", "'a\\'b\"c'"),
            ("say \"hi\"", "'say \"hi\"'"),
            ("/a\0b", "'/a\\x00b'"),
            ("tab\there\nnl\r", "'tab\\there\\nnl\\r'"),
            ("back\\slash", "'back\\\\slash'"),
            ("\u{7f}\u{85}", "'\\x7f\\x85'"),
            ("é✓", "'é✓'"),
        ];
        for (text, python) in cases {
            assert_eq!(PyRepr(text).to_string(), python, "{text:?}");
        }
    }
}
