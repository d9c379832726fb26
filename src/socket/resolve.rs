//! What an [`Address`] leads to once the socket directory is known: a Unix path, an abstract
//! name, or IP addresses from the resolver.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix};

use crate::addr::Address;
use crate::error::{Error, Result};
use crate::sockdir::{self, SocketDir};

pub(super) fn unix_addr(path: &Path, what: &str) -> Result<SocketAddrUnix> {
    SocketAddrUnix::new(path).map_err(|e| Error::os(e, "socket path", what))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn abstract_addr(name: &[u8], what: &str) -> Result<SocketAddrUnix> {
    SocketAddrUnix::new_abstract_name(name).map_err(|e| Error::os(e, "socket name", what))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn abstract_addr(_name: &[u8], what: &str) -> Result<SocketAddrUnix> {
    Err(Error::NotSupported(format!(
        "abstract Unix sockets exist only on Linux ({what})"
    )))
}

pub(super) fn ip_addrs(host: &str, port: u16, what: &str) -> Result<Vec<SocketAddr>> {
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

pub(super) fn family_of(addr: &SocketAddr) -> AddressFamily {
    if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    }
}

/// Where an address leads once the socket directory is known.
pub(super) enum Target {
    Unix(PathBuf),
    Abstract(Vec<u8>),
    Ip(String, u16),
}

/// An address together with what it resolves to.
pub(super) struct Resolved {
    pub(super) address: Address,
    pub(super) target: Target,
    pub(super) dir: Option<SocketDir>,
}

pub(super) fn resolve(
    address: &Address,
    socket_dir: Option<&Path>,
    create_dir: bool,
) -> Result<Resolved> {
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
