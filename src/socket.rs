//! Sockets: listeners, framed stream/seqpacket connections and datagram sockets, as plain Rust
//! types that own their descriptors. Addresses are remapped as described in [`crate::addr`].

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, Shutdown, SocketAddrAny, SocketAddrUnix,
    SocketFlags, SocketType,
};

use crate::addr::{Address, EPHEMERAL};
use crate::error::{Error, Result};
use crate::frame::{self, Header};
use crate::sockdir::{self, SocketDir};
use crate::wait::{Deadline, Interrupt, Ready, Wait, SLICE};

/// Default limit on the size of one received message: 64 MiB.
pub const DEFAULT_MAX_MESSAGE: u64 = 64 * 1024 * 1024;
/// Size of the read-ahead buffer that small messages come through. Larger messages are read
/// straight into their destination: a 64 KiB message read through the buffer paid two extra
/// copies and was 7 % slower than a stdlib socket reading into a preallocated buffer.
const RX_BUFFER: usize = 8 * 1024;
/// Kernel send buffer size asked for on Unix sockets.
const KERNEL_BUFFER: usize = 4 * 1024 * 1024;
/// Most descriptors one message can carry (Linux's `SCM_MAX_FD`), checked before sending.
pub const SCM_MAX_FD: usize = 253;
/// Control-message space for [`SCM_MAX_FD`] descriptors and one set of credentials.
const CMSG_SPACE: usize = rustix::cmsg_space!(ScmRights(SCM_MAX_FD), ScmCredentials(1));

/// What a `recvmsg` brought besides the bytes.
#[derive(Debug, Default)]
struct Ancillary {
    fds: Vec<OwnedFd>,
    creds: Option<crate::creds::Credentials>,
    truncated: bool,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const CMSG_CLOEXEC: RecvFlags = RecvFlags::CMSG_CLOEXEC;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const CMSG_CLOEXEC: RecvFlags = RecvFlags::empty();

/// `recvmsg` into `dst`, collecting descriptors (close-on-exec from the start where the platform
/// can, at once otherwise) and credentials. A truncated control message closes every descriptor
/// that did arrive and reports `truncated`.
fn recv_ancillary(
    fd: BorrowedFd<'_>,
    dst: &mut [u8],
    flags: RecvFlags,
    out: &mut Ancillary,
) -> Result<(usize, Option<SocketAddrAny>), Errno> {
    let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(dst)];
    let msg = rustix::net::recvmsg(fd, &mut iov, &mut control, flags | CMSG_CLOEXEC)?;
    for message in control.drain() {
        match message {
            RecvAncillaryMessage::ScmRights(fds) => {
                for received in fds {
                    #[cfg(not(any(target_os = "linux", target_os = "android")))]
                    let _ = rustix::io::fcntl_setfd(&received, rustix::io::FdFlags::CLOEXEC);
                    out.fds.push(received);
                }
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            RecvAncillaryMessage::ScmCredentials(ucred) => {
                out.creds = Some(crate::creds::Credentials {
                    pid: Some(ucred.pid.as_raw_nonzero().get()),
                    uid: ucred.uid.as_raw(),
                    gid: ucred.gid.as_raw(),
                });
            }
            _ => {}
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        out.fds.clear();
        out.truncated = true;
    }
    Ok((msg.bytes, msg.address))
}

/// `sendmsg` of `iov` with `fds` attached (and our credentials when `creds`).
fn send_ancillary(
    fd: BorrowedFd<'_>,
    iov: &[IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
    creds: bool,
    flags: SendFlags,
    addr: Option<&SocketAddrAny>,
) -> Result<usize, Errno> {
    let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        control.push(SendAncillaryMessage::ScmRights(fds));
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if creds {
        control.push(SendAncillaryMessage::ScmCredentials(rustix::net::UCred {
            pid: rustix::process::getpid(),
            uid: rustix::process::geteuid(),
            gid: rustix::process::getegid(),
        }));
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = creds;
    match addr {
        None => rustix::net::sendmsg(fd, iov, &mut control, flags),
        Some(addr) => rustix::net::sendmsg_addr(fd, addr, iov, &mut control, flags),
    }
}

fn check_fd_count(count: usize, what: &str) -> Result<()> {
    if count > SCM_MAX_FD {
        return Err(Error::Invalid(format!(
            "{count} descriptors in one message: at most {SCM_MAX_FD} can travel together ({what})"
        )));
    }
    Ok(())
}

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
                "kind must be 'stream', 'seqpacket' or 'datagram', not {other:?}"
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

fn new_socket(family: AddressFamily, kind: Kind, nonblocking: bool, what: &str) -> Result<OwnedFd> {
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
fn pass_credentials(fd: BorrowedFd<'_>, kind: Kind, what: &str) -> Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if kind != Kind::Stream {
        rustix::net::sockopt::set_socket_passcred(fd, true)
            .map_err(|e| Error::os(e, "setsockopt", what))?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (fd, kind, what);
    Ok(())
}

fn set_blocking(fd: BorrowedFd<'_>, what: &str) -> Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd).map_err(|e| Error::os(e, "fcntl", what))?;
    if flags.contains(OFlags::NONBLOCK) {
        rustix::fs::fcntl_setfl(fd, flags - OFlags::NONBLOCK)
            .map_err(|e| Error::os(e, "fcntl", what))?;
    }
    Ok(())
}

/// Options every connected socket of fastipc gets: bounded blocking (so that a wait is sliced),
/// no SIGPIPE where the platform needs a socket option for it, large send buffers, and no
/// Nagle delay on TCP.
fn configure_connected(fd: BorrowedFd<'_>, kind: Kind, tcp: bool, what: &str) -> Result<()> {
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
fn size_buffers(fd: BorrowedFd<'_>) {
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
const NOSIGNAL: SendFlags = SendFlags::NOSIGNAL;
#[cfg(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
const NOSIGNAL: SendFlags = SendFlags::empty();

fn send_flags(nonblocking: bool) -> SendFlags {
    if nonblocking {
        NOSIGNAL | SendFlags::DONTWAIT
    } else {
        NOSIGNAL
    }
}

fn recv_flags(nonblocking: bool) -> RecvFlags {
    if nonblocking {
        RecvFlags::DONTWAIT
    } else {
        RecvFlags::empty()
    }
}

fn unix_addr(path: &Path, what: &str) -> Result<SocketAddrUnix> {
    SocketAddrUnix::new(path).map_err(|e| Error::os(e, "socket path", what))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8], what: &str) -> Result<SocketAddrUnix> {
    SocketAddrUnix::new_abstract_name(name).map_err(|e| Error::os(e, "socket name", what))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_name: &[u8], what: &str) -> Result<SocketAddrUnix> {
    Err(Error::NotSupported(format!(
        "abstract Unix sockets exist only on Linux ({what})"
    )))
}

fn ip_addrs(host: &str, port: u16, what: &str) -> Result<Vec<SocketAddr>> {
    let found: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| match e.raw_os_error() {
            Some(code) => Error::os(Errno::from_raw_os_error(code), "resolve", what),
            None => Error::Resolve {
                what: what.to_string(),
                msg: e.to_string(),
            },
        })?
        .collect();
    if found.is_empty() {
        return Err(Error::Resolve {
            what: what.to_string(),
            msg: "no address".into(),
        });
    }
    Ok(found)
}

fn family_of(addr: &SocketAddr) -> AddressFamily {
    if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    }
}

/// Where an address leads once the socket directory is known.
enum Target {
    Unix(PathBuf),
    Abstract(Vec<u8>),
    Ip(String, u16),
}

/// An address together with what it resolves to.
struct Resolved {
    address: Address,
    target: Target,
    dir: Option<SocketDir>,
}

fn resolve(address: &Address, socket_dir: Option<&Path>, create_dir: bool) -> Result<Resolved> {
    let (target, dir) = match address {
        Address::Remapped { .. } => {
            let dir = if create_dir {
                sockdir::prepare(socket_dir)?
            } else {
                sockdir::check_existing(socket_dir)?
            };
            let path = address.remapped_path(&dir.path).unwrap_or_default();
            (Target::Unix(path), Some(dir))
        }
        Address::UnixPath(path) => (Target::Unix(path.clone()), None),
        Address::Abstract(name) => (Target::Abstract(name.clone()), None),
        Address::Ip { host, port } => (Target::Ip(host.clone(), *port), None),
    };
    Ok(Resolved {
        address: address.clone(),
        target,
        dir,
    })
}

/// What [`crate::addr::Address`] means here, without touching the file system.
pub fn describe(address: &Address, socket_dir: Option<&Path>) -> String {
    match address {
        Address::Remapped { .. } => {
            let (dir, _) = sockdir::choose(socket_dir);
            format!(
                "unix:{}",
                address.remapped_path(&dir).unwrap_or_default().display()
            )
        }
        other => other.logical("tcp"),
    }
}

/// The proof that a listener owns its socket path: the lock it holds and the identity of the
/// socket file it bound, so that it unlinks the path only while it is still its own.
#[derive(Debug)]
struct PathOwnership {
    lock: OwnedFd,
    lock_path: PathBuf,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl PathOwnership {
    fn release(self) {
        if let Ok(st) = rustix::fs::lstat(&self.path) {
            if identity(&st) == (self.dev, self.ino) {
                let _ = rustix::fs::unlink(&self.path);
            }
        }
        // Still holding the lock: whoever opens the old lock file next sees that it was replaced.
        let _ = rustix::fs::unlink(&self.lock_path);
        drop(self.lock);
    }
}

/// A file's (device, inode): its identity. The field types differ between platforms.
#[allow(clippy::unnecessary_cast)]
fn identity(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

fn lock_path_for(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock next to `path`, making sure the lock file is the one at the path now.
fn take_lock(path: &Path, what: &str) -> Result<(OwnedFd, PathBuf)> {
    const TRANSIENT_WAITS: u32 = 50;
    let lock_path = lock_path_for(path);
    let mut transient_waits = 0;
    for _ in 0..200 {
        let fd = rustix::fs::open(
            &lock_path,
            OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| Error::os(e, "lock", lock_path.display().to_string()))?;
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                // A holder with no socket file at the path is passing through: binding, or
                // closing (it unlinks the socket first). Wait for it briefly; a live listener
                // (socket present) makes the address busy at once.
                if transient_waits < TRANSIENT_WAITS && rustix::fs::lstat(path).is_err() {
                    transient_waits += 1;
                    drop(fd);
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                return Err(Error::os(Errno::ADDRINUSE, "listen", what));
            }
            Err(e) => return Err(Error::os(e, "lock", lock_path.display().to_string())),
        }
        let held = rustix::fs::fstat(&fd).map_err(|e| Error::os(e, "lock", what))?;
        match rustix::fs::lstat(&lock_path) {
            Ok(now) if now.st_dev == held.st_dev && now.st_ino == held.st_ino => {
                return Ok((fd, lock_path))
            }
            // The previous owner unlinked it between our open and our flock: take the new one.
            _ => continue,
        }
    }
    Err(Error::os(Errno::ADDRINUSE, "listen", what))
}

/// Whether something accepts connections at `path` (a foreign program may listen without a lock).
fn path_is_live(path: &Path, kind: Kind) -> bool {
    let Ok(probe) = rustix::net::socket_with(
        AddressFamily::UNIX,
        kind.socket_type(),
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    ) else {
        return true;
    };
    let Ok(addr) = SocketAddrUnix::new(path) else {
        return true;
    };
    !matches!(
        rustix::net::connect(&probe, &addr),
        Err(Errno::CONNREFUSED | Errno::NOENT)
    )
}

/// Binds a Unix socket at `path` under its lock, recovering a stale socket file.
fn bind_owned(
    path: &Path,
    kind: Kind,
    private: bool,
    what: &str,
) -> Result<(OwnedFd, PathOwnership)> {
    let addr = unix_addr(path, what)?;
    let (lock, lock_path) = take_lock(path, what)?;
    let fd = new_socket(AddressFamily::UNIX, kind, true, what)?;
    pass_credentials(fd.as_fd(), kind, what)?;
    let bound = match rustix::net::bind(&fd, &addr) {
        Err(Errno::ADDRINUSE) if !path_is_live(path, kind) => {
            let _ = rustix::fs::unlink(path);
            rustix::net::bind(&fd, &addr)
        }
        other => other,
    };
    if let Err(errno) = bound {
        // Leave no lock file behind for a path that is not ours.
        let _ = rustix::fs::unlink(&lock_path);
        return Err(Error::os(errno, "bind", what));
    }
    if private {
        let _ = rustix::fs::chmod(path, Mode::RUSR | Mode::WUSR);
    }
    let st = rustix::fs::lstat(path).map_err(|e| Error::os(e, "bind", what))?;
    let (dev, ino) = identity(&st);
    Ok((
        fd,
        PathOwnership {
            lock,
            lock_path,
            path: path.to_path_buf(),
            dev,
            ino,
        },
    ))
}

/// A pseudo-random starting point for port-0 searches (no dependency needed for this).
fn random_port_start() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let span = u64::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
    EPHEMERAL.start() + (h.finish() % span) as u16
}

/// Binds a remapped address, picking a free port for port 0.
fn bind_remapped(
    address: &Address,
    dir: &SocketDir,
    kind: Kind,
) -> Result<(OwnedFd, PathOwnership, Address)> {
    if address.port() != Some(0) {
        let path = address.remapped_path(&dir.path).unwrap_or_default();
        let what = address.logical("tcp");
        let (fd, own) = bind_owned(&path, kind, !dir.shared, &what)?;
        return Ok((fd, own, address.clone()));
    }
    let start = random_port_start();
    let span = u32::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
    for i in 0..span {
        let port = EPHEMERAL.start() + ((u32::from(start - EPHEMERAL.start()) + i) % span) as u16;
        let candidate = address.with_port(port);
        let path = candidate.remapped_path(&dir.path).unwrap_or_default();
        if rustix::fs::lstat(&path).is_ok() {
            continue;
        }
        match bind_owned(&path, kind, !dir.shared, &candidate.logical("tcp")) {
            Ok((fd, own)) => return Ok((fd, own, candidate)),
            Err(e) if e.errno() == Some(Errno::ADDRINUSE) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::os(
        Errno::ADDRINUSE,
        "listen",
        address.logical("tcp"),
    ))
}

/// A bound socket: the descriptor, what it is bound to, and the ownership of its path.
struct Bound {
    fd: OwnedFd,
    address: Address,
    path: Option<PathBuf>,
    ownership: Option<PathOwnership>,
    dir: Option<SocketDir>,
    tcp: bool,
}

fn bind_any(address: &Address, kind: Kind, socket_dir: Option<&Path>) -> Result<Bound> {
    let resolved = resolve(address, socket_dir, true)?;
    let what = address.logical(kind.ip_prefix());
    match resolved.target {
        Target::Unix(path) => {
            let (fd, ownership, address) = match &resolved.dir {
                Some(dir) => bind_remapped(address, dir, kind)?,
                None => {
                    let (fd, own) = bind_owned(&path, kind, false, &what)?;
                    (fd, own, resolved.address)
                }
            };
            Ok(Bound {
                fd,
                path: Some(ownership.path.clone()),
                address,
                ownership: Some(ownership),
                dir: resolved.dir,
                tcp: false,
            })
        }
        Target::Abstract(name) => {
            let addr = abstract_addr(&name, &what)?;
            let fd = new_socket(AddressFamily::UNIX, kind, true, &what)?;
            pass_credentials(fd.as_fd(), kind, &what)?;
            rustix::net::bind(&fd, &addr).map_err(|e| Error::os(e, "bind", &what))?;
            Ok(Bound {
                fd,
                address: resolved.address,
                path: None,
                ownership: None,
                dir: None,
                tcp: false,
            })
        }
        Target::Ip(host, port) => {
            if kind == Kind::SeqPacket {
                return Err(Error::NotSupported(format!(
                    "seqpacket sockets exist only for Unix addresses, not {what}"
                )));
            }
            let mut last = None;
            for sa in ip_addrs(&host, port, &what)? {
                let fd = new_socket(family_of(&sa), kind, true, &what)?;
                if kind != Kind::Datagram {
                    let _ = rustix::net::sockopt::set_socket_reuseaddr(&fd, true);
                }
                match rustix::net::bind(&fd, &sa) {
                    Ok(()) => {
                        let port = match rustix::net::getsockname(&fd)
                            .ok()
                            .and_then(|a| SocketAddr::try_from(a).ok())
                        {
                            Some(local) => local.port(),
                            None => port,
                        };
                        return Ok(Bound {
                            fd,
                            address: Address::Ip { host, port },
                            path: None,
                            ownership: None,
                            dir: None,
                            tcp: true,
                        });
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(Error::os(last.unwrap_or(Errno::ADDRNOTAVAIL), "bind", what))
        }
    }
}

/// Who may connect to a listener: empty lists allow everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Allowed user ids (empty: any).
    pub uids: Vec<u32>,
    /// Allowed group ids (empty: any).
    pub gids: Vec<u32>,
}

impl Policy {
    fn is_open(&self) -> bool {
        self.uids.is_empty() && self.gids.is_empty()
    }
}

/// A listening stream or seqpacket socket.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    kind: Kind,
    address: String,
    path: Option<PathBuf>,
    tcp: bool,
    ownership: Option<PathOwnership>,
    shared_dir: bool,
    max_message: u64,
    closed: AtomicBool,
    policy: Policy,
    refused: AtomicU64,
}

impl Listener {
    /// Binds and listens at `address`. `policy` (None: the default) says who may connect;
    /// abstract sockets, which have no file permissions, default to the caller's own uid.
    pub fn bind(
        address: &Address,
        kind: Kind,
        backlog: i32,
        socket_dir: Option<&Path>,
        max_message: u64,
        policy: Option<Policy>,
    ) -> Result<Listener> {
        if kind == Kind::Datagram {
            return Err(Error::Invalid(
                "a datagram socket does not listen: use DatagramSocket".into(),
            ));
        }
        let policy = match (policy, address) {
            (Some(p), _) => p,
            (None, Address::Abstract(_)) => Policy {
                uids: vec![rustix::process::geteuid().as_raw()],
                gids: vec![],
            },
            (None, _) => Policy::default(),
        };
        let ip = matches!(address, Address::Ip { .. });
        if ip && !policy.is_open() {
            return Err(Error::NotSupported(format!(
                "allow_uids and allow_gids need a Unix socket: TCP has no peer credentials ({})",
                address.logical("tcp")
            )));
        }
        let bound = bind_any(address, kind, socket_dir)?;
        let logical = bound.address.logical(kind.ip_prefix());
        rustix::net::listen(&bound.fd, backlog.max(1))
            .map_err(|e| Error::os(e, "listen", &logical))?;
        Ok(Listener {
            fd: bound.fd,
            kind,
            address: logical,
            path: bound.path,
            tcp: bound.tcp,
            ownership: bound.ownership,
            shared_dir: bound.dir.is_some_and(|d| d.shared),
            max_message,
            closed: AtomicBool::new(false),
            policy,
            refused: AtomicU64::new(0),
        })
    }

    /// The logical address with the real port.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The socket path, for Unix path listeners.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether the socket directory is an explicitly named shared sticky one.
    pub fn shared_dir(&self) -> bool {
        self.shared_dir
    }

    /// The message limit given to accepted connections.
    pub fn max_message(&self) -> u64 {
        self.max_message
    }

    /// Waits up to `timeout` for a connection and accepts it.
    pub fn accept(
        &self,
        timeout: Option<Duration>,
        interrupt: &mut dyn Interrupt,
    ) -> Result<Stream> {
        let mut wait = Wait {
            deadline: Deadline::after(timeout),
            interrupt,
            closed: Some(&self.closed),
            // The listening descriptor is non-blocking: wait in poll.
            sliced_fd: false,
        };
        let fd = wait.run(
            self.fd.as_fd(),
            Ready::Read,
            "accept",
            &self.address,
            |_| {
                let fd = rustix::net::accept_with(&self.fd, SocketFlags::CLOEXEC)?;
                if !self.policy.is_open() && !self.admits(fd.as_fd()) {
                    // Refused: closed at once, counted, and the wait goes on.
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    drop(fd);
                    return Err(Errno::AGAIN);
                }
                Ok(fd)
            },
        )?;
        // BSD-derived systems hand the listener's O_NONBLOCK on to the accepted socket.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        set_blocking(fd.as_fd(), &self.address)?;
        Stream::adopt(
            fd,
            self.kind,
            self.address.clone(),
            self.tcp,
            self.max_message,
        )
    }

    fn admits(&self, fd: BorrowedFd<'_>) -> bool {
        match crate::creds::peer_credentials(fd, &self.address) {
            Ok(creds) => crate::creds::allowed(&creds, &self.policy.uids, &self.policy.gids),
            Err(_) => false,
        }
    }

    /// How many connections the policy refused.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The admission policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Marks the listener closed: an `accept` in another thread ends at its next slice.
    pub fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Borrows the descriptor.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(own) = self.ownership.take() {
            own.release();
        }
    }
}

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
fn connect_fd(
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

/// Descriptors that arrived with the bytes at absolute stream offsets `from..to`.
#[derive(Debug)]
struct PendingFds {
    from: u64,
    to: u64,
    fds: Vec<OwnedFd>,
}

/// Receive-side state of a stream: bytes read ahead of the current message, and descriptors
/// that arrived with them.
///
/// Which message descriptors belong to: the kernel stops a read right after the segment that
/// carries descriptors, and fastipc attaches them to the first segment of a frame. So the
/// descriptors of a read that covered `from..to` belong to the frame whose header starts in
/// that range and whose bytes reach `to` (no later frame can start inside the same segment).
#[derive(Debug, Default)]
pub struct RecvBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
    /// Absolute stream offset of `data[end]`: every byte ever read into the buffer.
    abs_end: u64,
    pending: Vec<PendingFds>,
    /// Descriptors of the message being received.
    claimed: Vec<OwnedFd>,
    /// A large message whose receive stopped part way (timeout, signal): the next receive
    /// continues it, so the stream never loses its place.
    partial: Option<Partial>,
}

/// The part of a large message received before its receive stopped.
#[derive(Debug)]
struct Partial {
    len: usize,
    data: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl RecvBuf {
    fn buffered(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Absolute stream offset of the first buffered byte.
    fn abs_start(&self) -> u64 {
        self.abs_end - (self.end - self.start) as u64
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes room for at least `want` more bytes at the end; returns the free tail.
    fn space(&mut self, want: usize) -> &mut [u8] {
        if self.data.len() < RX_BUFFER {
            self.data.resize(RX_BUFFER, 0);
        }
        if self.data.len() - self.end < want && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.data[self.end..]
    }

    /// Records `n` bytes read into the free tail, and the descriptors that came with them.
    fn filled(&mut self, n: usize, fds: Vec<OwnedFd>) {
        let from = self.abs_end;
        self.end += n;
        self.abs_end += n as u64;
        if !fds.is_empty() {
            self.pending.push(PendingFds {
                from,
                to: self.abs_end,
                fds,
            });
        }
    }

    /// Takes up to `dst.len()` buffered bytes into `dst`; returns how many.
    fn take_into(&mut self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.end - self.start);
        dst[..n].copy_from_slice(&self.data[self.start..self.start + n]);
        self.consume(n);
        n
    }

    /// Claims the descriptors of the frame at `header..header + total`; closes those of bytes
    /// before it that nobody claimed.
    fn claim(&mut self, header: u64, total: u64) {
        let mut keep = Vec::with_capacity(self.pending.len());
        for entry in self.pending.drain(..) {
            if entry.to <= header {
                drop(entry.fds);
            } else if entry.from <= header && header + total >= entry.to {
                self.claimed.extend(entry.fds);
            } else {
                keep.push(entry);
            }
        }
        self.pending = keep;
    }

    /// Every pending descriptor that arrived with bytes before absolute offset `upto`.
    fn claim_before(&mut self, upto: u64) {
        let mut keep = Vec::with_capacity(self.pending.len());
        for entry in self.pending.drain(..) {
            if entry.from < upto {
                self.claimed.extend(entry.fds);
            } else {
                keep.push(entry);
            }
        }
        self.pending = keep;
    }
}

/// How a received message is to be delivered.
#[derive(Debug)]
pub enum Incoming {
    /// A small message, already complete in the receive buffer: its bytes.
    Small(Vec<u8>),
    /// A large message of this length: allocate a destination and call
    /// [`Reader::read_payload`].
    Large(usize),
}

/// A connected stream or seqpacket socket with framed messages.
#[derive(Debug)]
pub struct Stream {
    fd: OwnedFd,
    kind: Kind,
    peer: String,
    tcp: bool,
    max_message: u64,
    closed: AtomicBool,
    /// Timeout of sends and receives in nanoseconds; `u64::MAX` for none.
    timeout_ns: AtomicU64,
    tx: Mutex<()>,
    rx: Mutex<RecvBuf>,
    /// Connected through an explicitly named shared socket directory (the caller may warn).
    shared_dir: bool,
}

const NO_TIMEOUT: u64 = u64::MAX;

impl Stream {
    /// Wraps a connected socket.
    pub fn adopt(
        fd: OwnedFd,
        kind: Kind,
        peer: String,
        tcp: bool,
        max_message: u64,
    ) -> Result<Stream> {
        configure_connected(fd.as_fd(), kind, tcp, &peer)?;
        if !tcp {
            pass_credentials(fd.as_fd(), kind, &peer)?;
        }
        Ok(Stream {
            fd,
            kind,
            peer,
            tcp,
            max_message,
            closed: AtomicBool::new(false),
            timeout_ns: AtomicU64::new(NO_TIMEOUT),
            tx: Mutex::new(()),
            rx: Mutex::new(RecvBuf::default()),
            shared_dir: false,
        })
    }

    /// A connected pair.
    pub fn pair(kind: Kind, max_message: u64) -> Result<(Stream, Stream)> {
        if kind == Kind::Datagram {
            return Err(Error::Invalid(
                "use DatagramSocket::pair for datagram sockets".into(),
            ));
        }
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            kind.socket_type(),
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| Error::os(e, "socketpair", "socketpair"))?;
        Ok((
            Stream::adopt(a, kind, "socketpair".into(), false, max_message)?,
            Stream::adopt(b, kind, "socketpair".into(), false, max_message)?,
        ))
    }

    /// Whether it was connected through an explicitly named shared sticky socket directory.
    pub fn shared_dir(&self) -> bool {
        self.shared_dir
    }

    /// The peer's logical address.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether it runs over TCP.
    pub fn is_tcp(&self) -> bool {
        self.tcp
    }

    /// The receive limit.
    pub fn max_message(&self) -> u64 {
        self.max_message
    }

    /// Borrows the descriptor.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Marks the stream closed: waits in other threads end with EBADF at their next slice.
    pub fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Whether [`Stream::mark_closed`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The timeout of sends and receives.
    pub fn timeout(&self) -> Option<Duration> {
        match self.timeout_ns.load(Ordering::Relaxed) {
            NO_TIMEOUT => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Sets the timeout of sends and receives.
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        let ns = timeout.map_or(NO_TIMEOUT, |t| {
            u64::try_from(t.as_nanos()).unwrap_or(NO_TIMEOUT - 1)
        });
        self.timeout_ns.store(ns, Ordering::Relaxed);
    }

    /// A wait bounded by this stream's timeout.
    pub fn wait<'a>(&'a self, interrupt: &'a mut dyn Interrupt) -> Wait<'a> {
        self.wait_until(Deadline::after(self.timeout()), interrupt)
    }

    /// A wait bounded by `deadline`.
    pub fn wait_until<'a>(
        &'a self,
        deadline: Deadline,
        interrupt: &'a mut dyn Interrupt,
    ) -> Wait<'a> {
        Wait {
            deadline,
            interrupt,
            closed: Some(&self.closed),
            sliced_fd: true,
        }
    }

    fn err_closed(&self, op: &'static str) -> Error {
        Error::os(Errno::BADF, op, &self.peer)
    }

    /// Sends one framed message (one packet on seqpacket sockets) with `fds` attached to its
    /// start. Frames from several threads never interleave.
    pub fn send_message(
        &self,
        data: &[u8],
        fds: &[BorrowedFd<'_>],
        interrupt: &mut dyn Interrupt,
    ) -> Result<()> {
        self.check_fds(fds)?;
        let mut wait = self.wait(interrupt);
        let _guard = self.tx.lock().map_err(|_| self.err_closed("send"))?;
        if self.kind == Kind::SeqPacket {
            return self.send_packet(data, fds, &mut wait);
        }
        let mut header = [0u8; frame::LONG];
        let hlen = frame::encode_header(data.len() as u64, &mut header);
        let total = hlen + data.len();
        let mut sent = 0usize;
        while sent < total {
            let n = wait.run(
                self.fd.as_fd(),
                Ready::Write,
                "send",
                &self.peer,
                |nonblocking| {
                    let iov_storage;
                    let iov: &[IoSlice<'_>] = if sent < hlen {
                        iov_storage = [IoSlice::new(&header[sent..hlen]), IoSlice::new(data)];
                        &iov_storage
                    } else {
                        iov_storage = [IoSlice::new(&data[sent - hlen..]), IoSlice::new(&[])];
                        &iov_storage[..1]
                    };
                    // The descriptors ride on the first bytes of the frame, and only on them.
                    let fds = if sent == 0 { fds } else { &[] };
                    send_ancillary(
                        self.fd.as_fd(),
                        iov,
                        fds,
                        false,
                        send_flags(nonblocking),
                        None,
                    )
                },
            )?;
            sent += n;
        }
        Ok(())
    }

    fn check_fds(&self, fds: &[BorrowedFd<'_>]) -> Result<()> {
        if fds.is_empty() {
            return Ok(());
        }
        if self.tcp {
            return Err(Error::NotSupported(format!(
                "descriptors travel only over Unix sockets, not TCP ({})",
                self.peer
            )));
        }
        check_fd_count(fds.len(), &self.peer)
    }

    fn send_packet(&self, data: &[u8], fds: &[BorrowedFd<'_>], wait: &mut Wait<'_>) -> Result<()> {
        let result = wait.run(
            self.fd.as_fd(),
            Ready::Write,
            "send",
            &self.peer,
            |nonblocking| {
                send_ancillary(
                    self.fd.as_fd(),
                    &[IoSlice::new(data)],
                    fds,
                    false,
                    send_flags(nonblocking),
                    None,
                )
            },
        );
        match result {
            Err(Error::Os {
                errno: Errno::MSGSIZE,
                ..
            }) => Err(Error::MessageTooLarge {
                size: data.len() as u64,
                limit: rustix::net::sockopt::socket_send_buffer_size(&self.fd).unwrap_or(0) as u64,
                what: format!(
                    "{}: larger than one seqpacket packet can be here (raise net.core.wmem_max)",
                    self.peer
                ),
            }),
            other => other.map(|_| ()),
        }
    }

    /// Sends every byte of `data` on the raw stream with `fds` attached to its first byte (one
    /// packet on seqpacket sockets). A stream needs at least one byte to carry descriptors.
    pub fn send_with_fds(
        &self,
        data: &[u8],
        fds: &[BorrowedFd<'_>],
        interrupt: &mut dyn Interrupt,
    ) -> Result<()> {
        self.check_fds(fds)?;
        if data.is_empty() && !fds.is_empty() && self.kind == Kind::Stream {
            return Err(Error::Invalid(
                "descriptors need at least one byte of data to travel on a stream socket".into(),
            ));
        }
        let mut wait = self.wait(interrupt);
        let _guard = self.tx.lock().map_err(|_| self.err_closed("send"))?;
        if self.kind == Kind::SeqPacket {
            return self.send_packet(data, fds, &mut wait);
        }
        let mut sent = 0usize;
        while sent < data.len() {
            let fds = if sent == 0 { fds } else { &[] };
            sent += wait.run(
                self.fd.as_fd(),
                Ready::Write,
                "send",
                &self.peer,
                |nonblocking| {
                    send_ancillary(
                        self.fd.as_fd(),
                        &[IoSlice::new(&data[sent..])],
                        fds,
                        false,
                        send_flags(nonblocking),
                        None,
                    )
                },
            )?;
        }
        Ok(())
    }

    /// Sends every byte of `data` on the raw stream (one packet on seqpacket sockets).
    pub fn send_all(&self, data: &[u8], interrupt: &mut dyn Interrupt) -> Result<()> {
        self.send_with_fds(data, &[], interrupt)
    }

    /// The credentials of the peer, taken when the connection was made.
    pub fn peer_credentials(&self) -> Result<crate::creds::Credentials> {
        if self.tcp {
            return Err(Error::NotSupported(format!(
                "peer credentials exist only for Unix sockets, not TCP ({})",
                self.peer
            )));
        }
        crate::creds::peer_credentials(self.fd.as_fd(), &self.peer)
    }

    /// A pidfd of the peer process (Linux 6.5 and later).
    pub fn peer_pidfd(&self) -> Result<OwnedFd> {
        if self.tcp {
            return Err(Error::NotSupported(format!(
                "peer pidfds exist only for Unix sockets, not TCP ({})",
                self.peer
            )));
        }
        crate::creds::peer_pidfd(self.fd.as_fd(), &self.peer)
    }

    /// Locks the receive side for one operation.
    pub fn reader(&self) -> Result<Reader<'_>> {
        let buf = self.rx.lock().map_err(|_| self.err_closed("recv"))?;
        Ok(Reader { stream: self, buf })
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        rustix::net::shutdown(&self.fd, how).map_err(|e| Error::os(e, "shutdown", &self.peer))
    }

    /// Receives one message completely (for Rust callers).
    pub fn recv_message(
        &self,
        limit: Option<u64>,
        interrupt: &mut dyn Interrupt,
    ) -> Result<Vec<u8>> {
        let mut wait = self.wait(interrupt);
        let mut reader = self.reader()?;
        let out = match reader.next_message(limit, &mut wait)? {
            Incoming::Small(bytes) => bytes,
            Incoming::Large(len) => {
                let mut out = vec![0u8; len];
                reader.read_payload(&mut out, &mut wait)?;
                out
            }
        };
        // Descriptors that came with it are closed: this caller did not ask for them.
        drop(reader.take_fds());
        Ok(out)
    }
}

/// One `recvmsg` on `stream` into `dst` (`extra`: peek flags), bounded by `wait`: the bytes and
/// what came with them.
fn recv_into(
    stream: &Stream,
    dst: &mut [u8],
    extra: RecvFlags,
    wait: &mut Wait<'_>,
) -> Result<(usize, Ancillary)> {
    let mut anc = Ancillary::default();
    let (n, _) = wait.run(
        stream.fd.as_fd(),
        Ready::Read,
        "recv",
        &stream.peer,
        |nonblocking| {
            anc = Ancillary::default();
            recv_ancillary(
                stream.fd.as_fd(),
                dst,
                recv_flags(nonblocking) | extra,
                &mut anc,
            )
        },
    )?;
    Ok((n, anc))
}

/// The receive side of a [`Stream`], locked for one operation.
pub struct Reader<'a> {
    stream: &'a Stream,
    buf: MutexGuard<'a, RecvBuf>,
}

impl Reader<'_> {
    /// One `recvmsg` into `dst` with the descriptors that came with it; a truncated control
    /// message is an error (its descriptors are closed).
    fn recv_some(&self, dst: &mut [u8], wait: &mut Wait<'_>) -> Result<(usize, Vec<OwnedFd>)> {
        let (n, anc) = recv_into(self.stream, dst, RecvFlags::empty(), wait)?;
        if anc.truncated {
            return Err(self.fds_truncated());
        }
        Ok((n, anc.fds))
    }

    fn fds_truncated(&self) -> Error {
        Error::FdsTruncated {
            what: self.stream.peer.clone(),
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of file. The bytes are kept even when
    /// the control message was truncated (the stream keeps its place).
    fn fill(&mut self, want: usize, wait: &mut Wait<'_>) -> Result<usize> {
        let space = self.buf.space(want);
        let (n, anc) = recv_into(self.stream, space, RecvFlags::empty(), wait)?;
        self.buf.filled(n, anc.fds);
        if anc.truncated {
            return Err(self.fds_truncated());
        }
        Ok(n)
    }

    fn check_limit(&self, len: u64, limit: Option<u64>) -> Result<()> {
        let max = limit.map_or(self.stream.max_message, |l| l.min(self.stream.max_message));
        if len > max {
            return Err(Error::MessageTooLarge {
                size: len,
                limit: max,
                what: self.stream.peer.clone(),
            });
        }
        Ok(())
    }

    /// The descriptors that came with the message just received (theirs to own now).
    pub fn take_fds(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.buf.claimed)
    }

    /// Reads the next message's header (and the whole message when it is small).
    /// Errors: `Eof` at a clean end of file, `Truncated`, `MessageTooLarge`.
    pub fn next_message(&mut self, limit: Option<u64>, wait: &mut Wait<'_>) -> Result<Incoming> {
        // Descriptors of an earlier message that nobody took are closed here.
        self.buf.claimed.clear();
        let resumed = self
            .buf
            .partial
            .as_mut()
            .map(|p| (p.len, std::mem::take(&mut p.fds)));
        if let Some((len, fds)) = resumed {
            self.buf.claimed = fds;
            return Ok(Incoming::Large(len));
        }
        if self.stream.kind == Kind::SeqPacket {
            return self.next_packet(limit, wait);
        }
        let (header, len) = loop {
            match frame::decode_header(self.buf.buffered()) {
                Header::Complete { header, len } => break (header, len),
                Header::Malformed(n) => {
                    return Err(Error::Invalid(format!(
                        "malformed message header (length {n}) from {}",
                        self.stream.peer
                    )))
                }
                Header::NeedMore(_) => {
                    let have = self.buf.buffered().len() as u64;
                    if self.fill(frame::LONG, wait)? == 0 {
                        return Err(if have == 0 {
                            Error::Eof {
                                what: self.stream.peer.clone(),
                            }
                        } else {
                            Error::Truncated {
                                expected: 4,
                                received: have,
                                what: format!("{} (in a length prefix)", self.stream.peer),
                            }
                        });
                    }
                }
            }
        };
        self.check_limit(len, limit)?;
        let at = self.buf.abs_start();
        let total = header as u64 + len;
        let len = usize::try_from(len).map_err(|_| Error::MessageTooLarge {
            size: len,
            limit: usize::MAX as u64,
            what: self.stream.peer.clone(),
        })?;
        if len > RX_BUFFER - frame::LONG {
            self.buf.consume(header);
            self.buf.claim(at, total);
            return Ok(Incoming::Large(len));
        }
        // Small: the header stays in the buffer until the whole message is there, so a receive
        // that times out part way leaves the stream where it was.
        let whole = header + len;
        while self.buf.buffered().len() < whole {
            let want = whole - self.buf.buffered().len();
            if self.fill(want, wait)? == 0 {
                return Err(Error::Truncated {
                    expected: len as u64,
                    received: (self.buf.buffered().len() - header) as u64,
                    what: self.stream.peer.clone(),
                });
            }
        }
        self.buf.claim(at, total);
        let out = self.buf.buffered()[header..whole].to_vec();
        self.buf.consume(whole);
        Ok(Incoming::Small(out))
    }

    fn next_packet(&mut self, limit: Option<u64>, wait: &mut Wait<'_>) -> Result<Incoming> {
        let stream = self.stream;
        let flags = RecvFlags::PEEK | RecvFlags::TRUNC;
        let (len, peeked) = recv_into(stream, &mut [], flags, wait)?;
        // A peek duplicates any descriptors on the packet: close those copies now.
        let has_creds = peeked.creds.is_some();
        drop(peeked);
        if len == 0 && self.end_of_file(has_creds) {
            return Err(Error::Eof {
                what: stream.peer.clone(),
            });
        }
        if let Err(e) = self.check_limit(len as u64, limit) {
            // Drop the packet (and any descriptors on it): the next message is intact.
            let mut anc = Ancillary::default();
            let _ = recv_ancillary(stream.fd.as_fd(), &mut [], RecvFlags::DONTWAIT, &mut anc);
            return Err(e);
        }
        if len > RX_BUFFER {
            return Ok(Incoming::Large(len));
        }
        // Small: one receive into the buffer (consuming the packet), one copy out.
        let mut small = std::mem::take(&mut self.buf.data);
        small.resize(RX_BUFFER, 0);
        let result = self.recv_some(&mut small, wait);
        let out = result.map(|(got, fds)| {
            self.buf.claimed = fds;
            small[..got].to_vec()
        });
        self.buf.data = small;
        Ok(Incoming::Small(out?))
    }

    /// Whether a zero-length read is the end of the stream rather than an empty packet. On
    /// Linux every packet carries credentials (`SO_PASSCRED`) and end of file does not;
    /// elsewhere an empty packet right before a hang-up reads as the end of file.
    fn end_of_file(&self, has_creds: bool) -> bool {
        if cfg!(any(target_os = "linux", target_os = "android")) {
            !has_creds
        } else {
            self.peer_hung_up()
        }
    }

    fn peer_hung_up(&self) -> bool {
        use rustix::event::{PollFd, PollFlags};
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let hup = PollFlags::RDHUP | PollFlags::HUP;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let hup = PollFlags::HUP;
        let mut fds = [PollFd::new(&self.stream.fd, PollFlags::IN | hup)];
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(1))
            && fds[0].revents().intersects(hup)
    }

    /// Fills `dst` (exactly the announced length) with the message's payload.
    pub fn read_payload(&mut self, dst: &mut [u8], wait: &mut Wait<'_>) -> Result<()> {
        if self.stream.kind == Kind::SeqPacket {
            let (n, fds) = self.recv_some(dst, wait)?;
            self.buf.claimed.extend(fds);
            if n != dst.len() {
                return Err(Error::Truncated {
                    expected: dst.len() as u64,
                    received: n as u64,
                    what: self.stream.peer.clone(),
                });
            }
            return Ok(());
        }
        let mut got = match self.buf.partial.take() {
            Some(partial) => {
                dst[..partial.data.len()].copy_from_slice(&partial.data);
                partial.data.len()
            }
            None => self.buf.take_into(dst),
        };
        while got < dst.len() {
            // Reads stay inside this frame, so whatever descriptors come are its own.
            let read = recv_into(self.stream, &mut dst[got..], RecvFlags::empty(), wait);
            let (n, anc) = match read {
                Ok(read) => read,
                Err(e @ (Error::Timeout { .. } | Error::Interrupted)) => {
                    self.keep_partial(dst, got);
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            self.buf.abs_end += n as u64;
            if anc.truncated {
                // The bytes stay with the message (continued by the next receive); the
                // descriptors that arrived are closed.
                self.keep_partial(dst, got + n);
                return Err(self.fds_truncated());
            }
            self.buf.claimed.extend(anc.fds);
            if n == 0 {
                return Err(Error::Truncated {
                    expected: dst.len() as u64,
                    received: got as u64,
                    what: self.stream.peer.clone(),
                });
            }
            got += n;
        }
        Ok(())
    }

    /// Keeps the first `got` bytes of a large message for the next receive to continue.
    fn keep_partial(&mut self, dst: &[u8], got: usize) {
        self.buf.partial = Some(Partial {
            len: dst.len(),
            data: dst[..got].to_vec(),
            fds: std::mem::take(&mut self.buf.claimed),
        });
    }

    /// Reads at most `dst.len()` raw bytes (one packet on seqpacket sockets); 0 at end of file.
    /// Descriptors that came with them are kept for [`Reader::take_fds`].
    pub fn read_some(&mut self, dst: &mut [u8], wait: &mut Wait<'_>) -> Result<usize> {
        self.buf.claimed.clear();
        if dst.is_empty() {
            return Ok(0);
        }
        if !self.buf.buffered().is_empty() {
            let n = self.buf.take_into(dst);
            let upto = self.buf.abs_start();
            self.buf.claim_before(upto);
            return Ok(n);
        }
        let (n, fds) = self.recv_some(dst, wait)?;
        self.buf.abs_end += n as u64;
        self.buf.claimed = fds;
        Ok(n)
    }

    /// Reads exactly `dst.len()` raw bytes. `Eof` if the stream ends before any, `Truncated` if
    /// part way.
    pub fn read_exact(&mut self, dst: &mut [u8], wait: &mut Wait<'_>) -> Result<()> {
        if self.stream.kind == Kind::SeqPacket {
            return Err(Error::NotSupported(
                "recv_exact reads a byte stream; a seqpacket socket carries packets".into(),
            ));
        }
        let mut got = 0;
        let mut fds = Vec::new();
        while got < dst.len() {
            let n = self.read_some(&mut dst[got..], wait)?;
            fds.append(&mut self.buf.claimed);
            if n == 0 {
                return Err(if got == 0 {
                    Error::Eof {
                        what: self.stream.peer.clone(),
                    }
                } else {
                    Error::Truncated {
                        expected: dst.len() as u64,
                        received: got as u64,
                        what: self.stream.peer.clone(),
                    }
                });
            }
            got += n;
        }
        self.buf.claimed = fds;
        Ok(())
    }

    /// Whether something can be read (buffered bytes, a message, or end of file) within `timeout`.
    pub fn poll(&self, timeout: Option<Duration>, interrupt: &mut dyn Interrupt) -> Result<bool> {
        if !self.buf.buffered().is_empty() {
            return Ok(true);
        }
        let deadline = Deadline::after(timeout);
        loop {
            if self.stream.is_closed() {
                return Err(self.stream.err_closed("poll"));
            }
            let left = deadline.remaining().unwrap_or(SLICE).min(SLICE);
            if crate::wait::poll_once(self.stream.fd.as_fd(), Ready::Read, left)
                .map_err(|e| Error::os(e, "poll", &self.stream.peer))?
            {
                return Ok(true);
            }
            if deadline.remaining() == Some(Duration::ZERO) {
                return Ok(false);
            }
            interrupt.check()?;
        }
    }
}

/// One received datagram, with what came along.
#[derive(Debug)]
pub struct Received {
    /// Bytes stored in the buffer.
    pub len: usize,
    /// The sender's logical address.
    pub sender: Option<String>,
    /// The sender's credentials, when the kernel gave them.
    pub creds: Option<crate::creds::Credentials>,
    /// Descriptors that came with the datagram (the caller's now).
    pub fds: Vec<OwnedFd>,
}

/// A datagram socket.
#[derive(Debug)]
pub struct Datagram {
    fd: OwnedFd,
    local: Option<String>,
    path: Option<PathBuf>,
    ownership: Option<PathOwnership>,
    dir: Option<SocketDir>,
    ip: bool,
    peer: Mutex<Option<String>>,
    closed: AtomicBool,
    timeout_ns: AtomicU64,
}

impl Datagram {
    /// Binds a datagram socket at `address`.
    pub fn bind(address: &Address, socket_dir: Option<&Path>) -> Result<Datagram> {
        let bound = bind_any(address, Kind::Datagram, socket_dir)?;
        set_blocking(bound.fd.as_fd(), &bound.address.logical("udp"))?;
        Datagram::from_bound(bound)
    }

    fn from_bound(bound: Bound) -> Result<Datagram> {
        let local = bound.address.logical("udp");
        configure_connected(bound.fd.as_fd(), Kind::Datagram, bound.tcp, &local)?;
        Ok(Datagram {
            fd: bound.fd,
            local: Some(local),
            path: bound.path,
            ownership: bound.ownership,
            dir: bound.dir,
            ip: bound.tcp,
            peer: Mutex::new(None),
            closed: AtomicBool::new(false),
            timeout_ns: AtomicU64::new(NO_TIMEOUT),
        })
    }

    /// Binds a fresh address of the same family as `address` and connects to it, so that
    /// replies reach this socket.
    pub fn connect_new(address: &Address, socket_dir: Option<&Path>) -> Result<Datagram> {
        let local = match address {
            Address::Remapped { host, .. } => Address::Remapped {
                host: host.clone(),
                port: 0,
            },
            Address::Ip { host, port } => {
                let any = match ip_addrs(host, *port, &address.logical("udp"))?.first() {
                    Some(SocketAddr::V6(_)) => "::",
                    _ => "0.0.0.0",
                };
                Address::Ip {
                    host: any.into(),
                    port: 0,
                }
            }
            Address::UnixPath(_) | Address::Abstract(_) => {
                let sock = Datagram::unbound(AddressFamily::UNIX)?;
                sock.connect(address)?;
                return Ok(sock);
            }
        };
        let sock = Datagram::bind(&local, socket_dir)?;
        sock.connect(address)?;
        Ok(sock)
    }

    fn unbound(family: AddressFamily) -> Result<Datagram> {
        let fd = new_socket(family, Kind::Datagram, false, "datagram socket")?;
        configure_connected(
            fd.as_fd(),
            Kind::Datagram,
            family != AddressFamily::UNIX,
            "datagram socket",
        )?;
        Ok(Datagram {
            fd,
            local: None,
            path: None,
            ownership: None,
            dir: None,
            ip: family != AddressFamily::UNIX,
            peer: Mutex::new(None),
            closed: AtomicBool::new(false),
            timeout_ns: AtomicU64::new(NO_TIMEOUT),
        })
    }

    /// A connected pair of Unix datagram sockets.
    pub fn pair() -> Result<(Datagram, Datagram)> {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| Error::os(e, "socketpair", "socketpair"))?;
        let wrap = |fd: OwnedFd| -> Result<Datagram> {
            configure_connected(fd.as_fd(), Kind::Datagram, false, "socketpair")?;
            Ok(Datagram {
                fd,
                local: None,
                path: None,
                ownership: None,
                dir: None,
                ip: false,
                peer: Mutex::new(Some("socketpair".into())),
                closed: AtomicBool::new(false),
                timeout_ns: AtomicU64::new(NO_TIMEOUT),
            })
        };
        Ok((wrap(a)?, wrap(b)?))
    }

    /// The local logical address.
    pub fn local(&self) -> Option<&str> {
        self.local.as_deref()
    }

    /// The local socket path.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The connected peer's logical address.
    pub fn peer(&self) -> Option<String> {
        self.peer.lock().ok().and_then(|p| p.clone())
    }

    /// Whether the socket directory is an explicitly named shared sticky one.
    pub fn shared_dir(&self) -> bool {
        self.dir.as_ref().is_some_and(|d| d.shared)
    }

    /// Borrows the descriptor.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Marks closed (waits in other threads end at their next slice).
    pub fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Sets the timeout of sends and receives.
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        let ns = timeout.map_or(NO_TIMEOUT, |t| {
            u64::try_from(t.as_nanos()).unwrap_or(NO_TIMEOUT - 1)
        });
        self.timeout_ns.store(ns, Ordering::Relaxed);
    }

    /// The timeout of sends and receives.
    pub fn timeout(&self) -> Option<Duration> {
        match self.timeout_ns.load(Ordering::Relaxed) {
            NO_TIMEOUT => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    fn wait<'a>(&'a self, interrupt: &'a mut dyn Interrupt) -> Wait<'a> {
        Wait {
            deadline: Deadline::after(self.timeout()),
            interrupt,
            closed: Some(&self.closed),
            sliced_fd: true,
        }
    }

    fn what(&self) -> String {
        self.local
            .clone()
            .or_else(|| self.peer())
            .unwrap_or_else(|| "datagram socket".into())
    }

    fn dir_path(&self) -> PathBuf {
        match &self.dir {
            Some(dir) => dir.path.clone(),
            None => sockdir::choose(None).0,
        }
    }

    fn target_of(&self, address: &Address) -> Result<(Target, String)> {
        let what = address.logical("udp");
        let target = match address {
            Address::Remapped { .. } => {
                let dir = match &self.dir {
                    Some(dir) => dir.path.clone(),
                    None => sockdir::check_existing(None)?.path,
                };
                Target::Unix(address.remapped_path(&dir).unwrap_or_default())
            }
            Address::UnixPath(p) => Target::Unix(p.clone()),
            Address::Abstract(n) => Target::Abstract(n.clone()),
            Address::Ip { host, port } => Target::Ip(host.clone(), *port),
        };
        Ok((target, what))
    }

    fn check_family(&self, target: &Target, what: &str) -> Result<()> {
        let ip_target = matches!(target, Target::Ip(..));
        if ip_target != self.ip {
            return Err(Error::Invalid(format!(
                "{what} is {} but this datagram socket is {}",
                if ip_target {
                    "an IP address"
                } else {
                    "a Unix address"
                },
                if self.ip { "UDP" } else { "a Unix socket" }
            )));
        }
        Ok(())
    }

    fn check_extras(&self, fds: &[BorrowedFd<'_>], creds: bool, what: &str) -> Result<()> {
        if self.ip && (creds || !fds.is_empty()) {
            return Err(Error::NotSupported(format!(
                "descriptors and credentials travel only over Unix sockets, not UDP ({what})"
            )));
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        if creds {
            return Err(Error::NotSupported(format!(
                "sending credentials with a datagram is implemented on Linux only ({what})"
            )));
        }
        check_fd_count(fds.len(), what)
    }

    /// Sends one datagram to `address` (or to the connected peer when `None`), with `fds`
    /// attached and, when `creds`, this process's credentials.
    pub fn send_to(
        &self,
        data: &[u8],
        address: Option<&Address>,
        fds: &[BorrowedFd<'_>],
        creds: bool,
        interrupt: &mut dyn Interrupt,
    ) -> Result<usize> {
        let (dest, what) = match address {
            Some(address) => {
                let (target, what) = self.target_of(address)?;
                self.check_family(&target, &what)?;
                let dest: SocketAddrAny = match target {
                    Target::Unix(path) => unix_addr(&path, &what)?.into(),
                    Target::Abstract(name) => abstract_addr(&name, &what)?.into(),
                    Target::Ip(host, port) => ip_addrs(&host, port, &what)?[0].into(),
                };
                (Some(dest), what)
            }
            None => (None, self.peer().unwrap_or_else(|| self.what())),
        };
        self.check_extras(fds, creds, &what)?;
        let mut wait = self.wait(interrupt);
        let fd = self.fd.as_fd();
        let sent = wait.run(fd, Ready::Write, "sendto", &what, |nb| {
            send_ancillary(
                fd,
                &[IoSlice::new(data)],
                fds,
                creds,
                send_flags(nb),
                dest.as_ref(),
            )
        });
        match sent {
            Err(Error::Os {
                errno: Errno::MSGSIZE,
                ..
            }) => Err(Error::MessageTooLarge {
                size: data.len() as u64,
                limit: rustix::net::sockopt::socket_send_buffer_size(fd).unwrap_or(0) as u64,
                what: format!("{what}: larger than one datagram can be here"),
            }),
            other => other,
        }
    }

    /// Connects to `address`: `send` and `recv` then use it.
    pub fn connect(&self, address: &Address) -> Result<()> {
        let (target, what) = self.target_of(address)?;
        self.check_family(&target, &what)?;
        let result = match target {
            Target::Unix(path) => rustix::net::connect(&self.fd, &unix_addr(&path, &what)?),
            Target::Abstract(name) => rustix::net::connect(&self.fd, &abstract_addr(&name, &what)?),
            Target::Ip(host, port) => {
                rustix::net::connect(&self.fd, &ip_addrs(&host, port, &what)?[0])
            }
        };
        result.map_err(|e| Error::os(e, "connect", &what))?;
        if let Ok(mut peer) = self.peer.lock() {
            *peer = Some(what);
        }
        Ok(())
    }

    /// Receives one datagram into `dst` (a longer one is truncated): its length, the sender's
    /// logical address, the sender's credentials (Unix sockets on Linux; `None` when the kernel
    /// had none to give, never a placeholder), and the descriptors that came with it.
    pub fn recv_full(&self, dst: &mut [u8], interrupt: &mut dyn Interrupt) -> Result<Received> {
        let what = self.what();
        let mut wait = self.wait(interrupt);
        let mut anc = Ancillary::default();
        let fd = self.fd.as_fd();
        let (n, from) = wait.run(fd, Ready::Read, "recvfrom", &what, |nb| {
            anc = Ancillary::default();
            recv_ancillary(fd, dst, recv_flags(nb), &mut anc)
        })?;
        if anc.truncated {
            return Err(Error::FdsTruncated { what });
        }
        // pid 0 is the kernel's placeholder for "no credentials were attached".
        let creds = anc.creds.filter(|c| c.pid.is_some_and(|p| p > 0));
        Ok(Received {
            len: n.min(dst.len()),
            sender: from.and_then(|a| self.logical_sender(a)),
            creds,
            fds: anc.fds,
        })
    }

    /// Receives one datagram into `dst` (a longer one is truncated); returns its length and
    /// the sender's logical address. Descriptors that came with it are closed.
    pub fn recv_from(
        &self,
        dst: &mut [u8],
        interrupt: &mut dyn Interrupt,
    ) -> Result<(usize, Option<String>)> {
        let got = self.recv_full(dst, interrupt)?;
        Ok((got.len, got.sender))
    }

    fn logical_sender(&self, addr: SocketAddrAny) -> Option<String> {
        if let Ok(ip) = SocketAddr::try_from(addr.clone()) {
            return Some(match ip {
                SocketAddr::V4(v4) => format!("udp:{}:{}", v4.ip(), v4.port()),
                SocketAddr::V6(v6) => format!("udp:[{}]:{}", v6.ip(), v6.port()),
            });
        }
        let unix = SocketAddrUnix::try_from(addr).ok()?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(name) = unix.abstract_name() {
            return Some(format!("unix:@{}", String::from_utf8_lossy(name)));
        }
        let path = PathBuf::from(std::ffi::OsStr::new(
            std::str::from_utf8(unix.path_bytes()?).ok()?,
        ));
        if path.as_os_str().is_empty() {
            return None;
        }
        if path.parent() == Some(self.dir_path().as_path()) {
            if let Some(remapped) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(Address::from_socket_name)
            {
                return Some(remapped.logical("udp"));
            }
        }
        Some(format!("unix:{}", path.display()))
    }
}

impl Drop for Datagram {
    fn drop(&mut self) {
        if let Some(own) = self.ownership.take() {
            own.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::Uninterrupted;
    use std::os::fd::AsRawFd;

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
    }

    fn recv_with_fds(s: &Stream) -> (Vec<u8>, Vec<OwnedFd>) {
        let mut stop = Uninterrupted;
        let mut wait = s.wait(&mut stop);
        let mut reader = s.reader().expect("reader");
        let out = match reader.next_message(None, &mut wait).expect("message") {
            Incoming::Small(v) => v,
            Incoming::Large(len) => {
                let mut v = vec![0u8; len];
                reader.read_payload(&mut v, &mut wait).expect("payload");
                v
            }
        };
        (out, reader.take_fds())
    }

    #[test]
    fn descriptors_stay_with_their_message() {
        let (a, b) = Stream::pair(Kind::Stream, DEFAULT_MAX_MESSAGE).expect("pair");
        let (r, w) = rustix::pipe::pipe().expect("pipe");
        let mut stop = Uninterrupted;
        // Several frames queued before the reader looks: its read-ahead covers all of them.
        a.send_message(b"one", &[], &mut stop).expect("send");
        a.send_message(b"two", &[r.as_fd()], &mut stop)
            .expect("send");
        a.send_message(b"three", &[], &mut stop).expect("send");
        a.send_message(&vec![7u8; 200_000], &[w.as_fd(), r.as_fd()], &mut stop)
            .expect("send");
        a.send_message(b"five", &[w.as_fd()], &mut stop)
            .expect("send");
        let counts: Vec<(usize, usize)> = (0..5)
            .map(|_| {
                let (m, fds) = recv_with_fds(&b);
                (m.len(), fds.len())
            })
            .collect();
        assert_eq!(counts, [(3, 0), (3, 1), (5, 0), (200_000, 2), (4, 1)]);
    }

    #[test]
    fn unclaimed_descriptors_are_closed() {
        let (a, b) = Stream::pair(Kind::Stream, DEFAULT_MAX_MESSAGE).expect("pair");
        let (r, w) = rustix::pipe::pipe().expect("pipe");
        let before = open_fds();
        let mut stop = Uninterrupted;
        for _ in 0..10 {
            a.send_message(b"x", &[r.as_fd(), w.as_fd()], &mut stop)
                .expect("send");
            // recv_message does not ask for descriptors: they are closed, not leaked.
            assert_eq!(b.recv_message(None, &mut stop).expect("recv"), b"x");
        }
        assert_eq!(open_fds(), before);
        assert!(w.as_raw_fd() >= 0);
    }

    #[test]
    fn too_many_descriptors_are_refused_before_sending() {
        let (a, _b) = Stream::pair(Kind::SeqPacket, DEFAULT_MAX_MESSAGE).expect("pair");
        let (r, _w) = rustix::pipe::pipe().expect("pipe");
        let many = vec![r.as_fd(); SCM_MAX_FD + 1];
        let err = a.send_message(b"x", &many, &mut Uninterrupted).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    }
}

#[cfg(test)]
mod resume_tests {
    use super::*;
    use crate::wait::Uninterrupted;

    #[test]
    fn a_timeout_inside_a_message_loses_nothing() {
        let (a, b) = Stream::pair(Kind::Stream, DEFAULT_MAX_MESSAGE).expect("pair");
        b.set_timeout(Some(Duration::from_millis(20)));
        let mut stop = Uninterrupted;
        // 150 kB takes the large-message path yet fits the kernel's buffer while nobody reads.
        for size in [100usize, 150_000] {
            let message: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut header = [0u8; frame::LONG];
            let hlen = frame::encode_header(size as u64, &mut header);
            // Half a message, then the receiver times out, then the rest arrives.
            let mut first = header[..hlen].to_vec();
            first.extend_from_slice(&message[..size / 2]);
            a.send_all(&first, &mut stop).expect("send");
            let err = b.recv_message(None, &mut stop).unwrap_err();
            assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
            a.send_all(&message[size / 2..], &mut stop).expect("send");
            b.set_timeout(None);
            assert_eq!(b.recv_message(None, &mut stop).expect("recv"), message);
            b.set_timeout(Some(Duration::from_millis(20)));
        }
    }

    #[test]
    fn empty_seqpacket_messages_are_not_end_of_file() {
        let (a, b) = Stream::pair(Kind::SeqPacket, DEFAULT_MAX_MESSAGE).expect("pair");
        let mut stop = Uninterrupted;
        a.send_message(b"", &[], &mut stop).expect("send");
        a.send_message(b"x", &[], &mut stop).expect("send");
        a.send_message(b"", &[], &mut stop).expect("send");
        drop(a);
        assert_eq!(b.recv_message(None, &mut stop).expect("empty"), b"");
        assert_eq!(b.recv_message(None, &mut stop).expect("x"), b"x");
        assert_eq!(
            b.recv_message(None, &mut stop).expect("empty before close"),
            b""
        );
        assert!(matches!(
            b.recv_message(None, &mut stop),
            Err(Error::Eof { .. })
        ));
    }
}
