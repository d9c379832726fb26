//! Connecting to an address, and adopting a connected socket given as a descriptor.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketType};

use crate::addr::Address;
use crate::error::{Error, Result};
use crate::wait::{Deadline, Interrupt, Ready, Wait};

use super::datagram::Datagram;
use super::options::{configure_connected, new_socket, set_blocking};
use super::resolve::{abstract_addr, family_of, ip_addrs, resolve, unix_addr, Target};
use super::stream::Stream;
use super::{Kind, NO_TIMEOUT};

/// Connects to `address`.
pub fn connect(
    address: &Address,
    kind: Kind,
    socket_dir: Option<&Path>,
    max_message: u64,
    timeout: Option<Duration>,
    interrupt: &mut dyn Interrupt,
) -> Result<Stream> {
    let mut wait = Wait {
        deadline: Deadline::after(timeout),
        interrupt,
        closed: None,
        sliced_fd: false,
    };
    let wait = &mut wait;
    if kind == Kind::Datagram {
        return Err(Error::Invalid(
            "use DatagramSocket::connect for datagram sockets".into(),
        ));
    }
    let resolved = resolve(address, socket_dir, false)?;
    let what = address.logical(kind.ip_prefix());
    let (fd, tcp) = match &resolved.target {
        Target::Unix(path) => {
            let addr = unix_addr(path, &what)?;
            let fd = new_socket(AddressFamily::UNIX, kind, true, &what)?;
            connect_fd(fd.as_fd(), &addr, wait, &what)?;
            (fd, false)
        }
        Target::Abstract(name) => {
            let addr = abstract_addr(name, &what)?;
            let fd = new_socket(AddressFamily::UNIX, kind, true, &what)?;
            connect_fd(fd.as_fd(), &addr, wait, &what)?;
            (fd, false)
        }
        Target::Ip(host, port) => {
            if kind == Kind::SeqPacket {
                return Err(Error::NotSupported(format!(
                    "seqpacket sockets exist only for Unix addresses, not {what}"
                )));
            }
            let mut last = None;
            let mut connected = None;
            for sa in ip_addrs(host, *port, &what)? {
                let fd = new_socket(family_of(&sa), kind, true, &what)?;
                match connect_fd(fd.as_fd(), &sa, wait, &what) {
                    Ok(()) => {
                        connected = Some(fd);
                        break;
                    }
                    Err(e @ (Error::Timeout { .. } | Error::Interrupted)) => return Err(e),
                    Err(e) => last = Some(e),
                }
            }
            match connected {
                Some(fd) => (fd, true),
                None => {
                    return Err(
                        last.unwrap_or_else(|| Error::os(Errno::CONNREFUSED, "connect", &what))
                    )
                }
            }
        }
    };
    set_blocking(fd.as_fd(), &what)?;
    let mut stream = Stream::adopt(fd, kind, what, tcp, max_message)?;
    stream.shared_dir = resolved.dir.is_some_and(|d| d.shared);
    Ok(stream)
}

/// A non-blocking connect bounded by `wait`. A full Unix listen queue answers EAGAIN: retried
/// until the deadline, like a blocking connect would wait.
pub(super) fn connect_fd(
    fd: BorrowedFd<'_>,
    addr: &impl rustix::net::addr::SocketAddrArg,
    wait: &mut Wait<'_>,
    what: &str,
) -> Result<()> {
    let mut in_progress = match rustix::net::connect(fd, addr) {
        Ok(()) | Err(Errno::ISCONN) => return Ok(()),
        Err(Errno::INPROGRESS | Errno::ALREADY) => true,
        Err(Errno::AGAIN | Errno::INTR) => false,
        Err(e) => return Err(Error::os(e, "connect", what)),
    };
    wait.sliced_fd = false;
    wait.run(fd, Ready::Write, "connect", what, |_| {
        if in_progress {
            return match rustix::net::sockopt::socket_error(fd)? {
                Ok(()) => {
                    // Writable and no error: connected, unless poll woke for nothing.
                    match rustix::net::getpeername(fd) {
                        Ok(_) => Ok(()),
                        Err(Errno::NOTCONN) => Err(Errno::AGAIN),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
        }
        match rustix::net::connect(fd, addr) {
            Ok(()) | Err(Errno::ISCONN) => Ok(()),
            Err(Errno::INPROGRESS | Errno::ALREADY) => {
                in_progress = true;
                Err(Errno::INPROGRESS)
            }
            Err(e) => Err(e),
        }
    })
}

/// A socket taken over from a descriptor.
#[derive(Debug)]
pub enum Adopted {
    /// A stream or seqpacket socket.
    Stream(Stream),
    /// A datagram socket.
    Datagram(Datagram),
}

/// Wraps a connected socket given as a descriptor (received from another process, say): its
/// kind and family are read from the socket itself. Not a socket: `OSError(ENOTSOCK)`.
pub fn adopt(fd: OwnedFd, peer: String, max_message: u64) -> Result<Adopted> {
    let ty =
        rustix::net::sockopt::socket_type(&fd).map_err(|e| Error::os(e, "getsockopt", &peer))?;
    let tcp = rustix::net::getsockname(&fd)
        .map_err(|e| Error::os(e, "getsockname", &peer))?
        .address_family()
        != AddressFamily::UNIX;
    set_blocking(fd.as_fd(), &peer)?;
    let kind = if ty == SocketType::STREAM {
        Kind::Stream
    } else if ty == SocketType::SEQPACKET {
        Kind::SeqPacket
    } else if ty == SocketType::DGRAM {
        configure_connected(fd.as_fd(), Kind::Datagram, tcp, &peer)?;
        return Ok(Adopted::Datagram(Datagram {
            fd,
            local: None,
            path: None,
            ownership: None,
            dir: None,
            ip: tcp,
            peer: Mutex::new(Some(peer)),
            closed: AtomicBool::new(false),
            timeout_ns: AtomicU64::new(NO_TIMEOUT),
        }));
    } else {
        return Err(Error::Invalid(format!("{peer}: unsupported socket type")));
    };
    Ok(Adopted::Stream(Stream::adopt(
        fd,
        kind,
        peer,
        tcp,
        max_message,
    )?))
}
