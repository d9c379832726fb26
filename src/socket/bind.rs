//! Binding: a Unix path under its lock (recovering a stale socket file), the port-0 search of a
//! remapped address in the socket directory, abstract names and IP addresses.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags};

use crate::addr::{Address, EPHEMERAL};
use crate::error::{Error, Result};
use crate::sockdir::{self, PathOwnership, SocketDir};

use super::options::{new_socket, pass_credentials};
use super::resolve::{abstract_addr, family_of, ip_addrs, resolve, unix_addr, Target};
use super::Kind;

/// Whether something accepts connections at `path` (a foreign program may listen without a lock).
pub(super) fn path_is_live(path: &Path, kind: Kind) -> bool {
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

/// Whether `path` itself (a symlink is not followed) is a socket file. Only a socket can be
/// stale: a regular file, a directory, a FIFO or a symlink at the path is never removed.
fn is_socket_file(path: &Path) -> bool {
    rustix::fs::lstat(path).is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Socket)
}

/// Binds a Unix socket at `path` under its lock, recovering a stale socket file; anything else
/// at the path makes it `EADDRINUSE`, untouched.
pub(super) fn bind_owned(
    path: &Path,
    kind: Kind,
    private: bool,
    what: &str,
) -> Result<(OwnedFd, PathOwnership)> {
    let addr = unix_addr(path, what)?;
    let lock = sockdir::take_lock(path, what)?;
    let fd = new_socket(AddressFamily::UNIX, kind, true, what)?;
    pass_credentials(fd.as_fd(), kind, what)?;
    let bound = match rustix::net::bind(&fd, &addr) {
        Err(Errno::ADDRINUSE) if is_socket_file(path) && !path_is_live(path, kind) => {
            let _ = rustix::fs::unlink(path);
            rustix::net::bind(&fd, &addr)
        }
        other => other,
    };
    if let Err(errno) = bound {
        lock.abandon();
        return Err(Error::os(errno, "bind", what));
    }
    if private {
        let _ = rustix::fs::chmod(path, Mode::RUSR | Mode::WUSR);
    }
    Ok((fd, lock.own(path, what)?))
}

/// A pseudo-random starting point for port-0 searches (no dependency needed for this).
pub(super) fn random_port_start() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let span = u64::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
    // The remainder is below `span`, at most 65536 - 1024: it fits a port.
    EPHEMERAL.start() + u16::try_from(h.finish() % span).unwrap_or(0)
}

/// Binds a remapped address, picking a free port for port 0.
pub(super) fn bind_remapped(
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
        let offset = (u32::from(start - EPHEMERAL.start()) + i) % span;
        let port = EPHEMERAL.start() + u16::try_from(offset).unwrap_or(0);
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
pub(super) struct Bound {
    pub(super) fd: OwnedFd,
    pub(super) address: Address,
    pub(super) path: Option<PathBuf>,
    pub(super) ownership: Option<PathOwnership>,
    pub(super) dir: Option<SocketDir>,
    pub(super) tcp: bool,
}

pub(super) fn bind_any(address: &Address, kind: Kind, socket_dir: Option<&Path>) -> Result<Bound> {
    let resolved = resolve(address, socket_dir, true)?;
    let what = address.logical(kind.ip_prefix());
    match resolved.target {
        Target::Unix(path) => {
            let (fd, ownership, address) = if let Some(dir) = &resolved.dir {
                bind_remapped(address, dir, kind)?
            } else {
                let (fd, own) = bind_owned(&path, kind, false, &what)?;
                (fd, own, resolved.address)
            };
            Ok(Bound {
                fd,
                path: Some(ownership.path().to_path_buf()),
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
