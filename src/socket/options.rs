//! Creating sockets and the options every fastipc socket gets: close-on-exec, blocking with
//! sliced timeouts, credentials passing, send buffers, no SIGPIPE, no Nagle delay and keepalive
//! on TCP.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags};

use crate::error::{Error, Result};
use crate::wait::SLICE;

use super::Kind;

/// Kernel send buffer size asked for on Unix sockets.
pub(super) const KERNEL_BUFFER: usize = 4 * 1024 * 1024;

pub(super) fn new_socket(
    family: AddressFamily,
    kind: Kind,
    nonblocking: bool,
    what: &str,
) -> Result<OwnedFd> {
    let mut flags = SocketFlags::CLOEXEC;
    if nonblocking {
        flags |= SocketFlags::NONBLOCK;
    }
    rustix::net::socket_with(family, kind.socket_type(), flags, None).map_err(|e| match e {
        Errno::PROTONOSUPPORT | Errno::SOCKTNOSUPPORT | Errno::PROTOTYPE
            if kind == Kind::SeqPacket =>
        {
            Error::NotSupported(format!(
                "seqpacket Unix sockets do not exist on this platform ({what})"
            ))
        }
        e => Error::os(e, "socket", what),
    })
}

/// Turns on `SO_PASSCRED` on a Unix datagram socket before it is bound, so that every datagram
/// it receives carries its sender's credentials (never placeholders: the cookbook's race of
/// enabling it after the peer sent is closed by doing it first), and on seqpacket connections,
/// where it tells an empty packet (which carries credentials) from end of file (which does not).
/// Not on unbound datagram sockets: Linux would bind a sender with `SO_PASSCRED` to an
/// arbitrary abstract name, which its peers would then see.
pub(super) fn pass_credentials(fd: BorrowedFd<'_>, kind: Kind, what: &str) -> Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if kind != Kind::Stream {
        rustix::net::sockopt::set_socket_passcred(fd, true)
            .map_err(|e| Error::os(e, "setsockopt", what))?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (fd, kind, what);
    Ok(())
}

pub(super) fn set_blocking(fd: BorrowedFd<'_>, what: &str) -> Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd).map_err(|e| Error::os(e, "fcntl", what))?;
    if flags.contains(OFlags::NONBLOCK) {
        rustix::fs::fcntl_setfl(fd, flags - OFlags::NONBLOCK)
            .map_err(|e| Error::os(e, "fcntl", what))?;
    }
    Ok(())
}

/// TCP keepalive: a connection quiet for [`KEEPALIVE_IDLE`] is probed every
/// [`KEEPALIVE_INTERVAL`], and [`KEEPALIVE_COUNT`] probes unanswered end it (`ETIMEDOUT`): a peer
/// whose host vanished is detected within 30 + 3 x 10 = 60 s of silence (`docs/sockets.md`).
pub(crate) const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// See [`KEEPALIVE_IDLE`].
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// See [`KEEPALIVE_IDLE`].
pub(crate) const KEEPALIVE_COUNT: u32 = 3;

/// Turns on keepalive with fastipc's timing ([`KEEPALIVE_IDLE`]) where the platform has the
/// options, and with the system's timing elsewhere.
fn keepalive(fd: BorrowedFd<'_>) -> rustix::io::Result<()> {
    use rustix::net::sockopt;
    sockopt::set_socket_keepalive(fd, true)?;
    #[cfg(not(any(
        target_os = "haiku",
        target_os = "nto",
        target_os = "openbsd",
        target_os = "redox"
    )))]
    {
        sockopt::set_tcp_keepidle(fd, KEEPALIVE_IDLE)?;
        sockopt::set_tcp_keepintvl(fd, KEEPALIVE_INTERVAL)?;
        sockopt::set_tcp_keepcnt(fd, KEEPALIVE_COUNT)?;
    }
    Ok(())
}

/// Options every connected socket of fastipc gets: bounded blocking (so that a wait is sliced),
/// no SIGPIPE where the platform needs a socket option for it, large send buffers, and no
/// Nagle delay and keepalive on TCP.
pub(super) fn configure_connected(
    fd: BorrowedFd<'_>,
    kind: Kind,
    tcp: bool,
    what: &str,
) -> Result<()> {
    use rustix::net::sockopt;
    let err = |e| Error::os(e, "setsockopt", what);
    sockopt::set_socket_timeout(fd, sockopt::Timeout::Recv, Some(SLICE)).map_err(err)?;
    sockopt::set_socket_timeout(fd, sockopt::Timeout::Send, Some(SLICE)).map_err(err)?;
    #[cfg(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    ))]
    sockopt::set_socket_nosigpipe(fd, true).map_err(err)?;
    if tcp {
        if kind == Kind::Stream {
            sockopt::set_tcp_nodelay(fd, true).map_err(err)?;
            keepalive(fd).map_err(err)?;
        }
    } else {
        size_buffers(fd);
    }
    Ok(())
}

/// Asks for [`KERNEL_BUFFER`]-sized send buffers on Unix sockets. A packet must fit the
/// sender's buffer, so seqpacket and datagram sockets need it to carry large packets at all; a
/// stream moves a large message in one wake-up of each side instead of one per default-sized
/// buffer. Measured with 1 MiB round trips on a 2-core VM: processes on different cores 817-842 us
/// with the default buffer, 279-316 us with 1-4 MiB; on one core 287-294 us against 301-307 us
/// (cache-colder pages). Different cores is the common case, so streams are sized too.
/// The privileged form is tried first; the plain one is capped by `net.core.wmem_max`. Best
/// effort: a smaller buffer only costs wake-ups, or lowers the largest packet
/// (`MessageTooLarge`).
pub(super) fn size_buffers(fd: BorrowedFd<'_>) {
    use rustix::net::sockopt;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if sockopt::set_socket_send_buffer_size_force(fd, KERNEL_BUFFER).is_ok() {
        return;
    }
    let _ = sockopt::set_socket_send_buffer_size(fd, KERNEL_BUFFER);
}

#[cfg(not(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "dragonfly"
)))]
pub(super) const NOSIGNAL: SendFlags = SendFlags::NOSIGNAL;
#[cfg(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
pub(super) const NOSIGNAL: SendFlags = SendFlags::empty();

pub(super) fn send_flags(nonblocking: bool) -> SendFlags {
    if nonblocking {
        NOSIGNAL | SendFlags::DONTWAIT
    } else {
        NOSIGNAL
    }
}

pub(super) fn recv_flags(nonblocking: bool) -> RecvFlags {
    if nonblocking {
        RecvFlags::DONTWAIT
    } else {
        RecvFlags::empty()
    }
}
