//! Datagram sockets: Unix datagram when remapped, UDP otherwise.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrAny, SocketAddrUnix, SocketFlags, SocketType};

use crate::addr::Address;
use crate::error::{Error, Result};
use crate::sockdir::{self, PathOwnership, SocketDir};
use crate::wait::{Deadline, Interrupt, Ready, Wait};

use super::ancillary::{check_fd_count, recv_ancillary, send_ancillary, Ancillary};
use super::bind::{bind_any, Bound};
use super::options::{configure_connected, new_socket, recv_flags, send_flags, set_blocking};
use super::resolve::{abstract_addr, ip_addrs, unix_addr, Target};
use super::{Kind, NO_TIMEOUT};

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
    pub(super) fd: OwnedFd,
    pub(super) local: Option<String>,
    pub(super) path: Option<PathBuf>,
    pub(super) ownership: Option<PathOwnership>,
    pub(super) dir: Option<SocketDir>,
    pub(super) ip: bool,
    pub(super) peer: Mutex<Option<String>>,
    pub(super) closed: AtomicBool,
    pub(super) timeout_ns: AtomicU64,
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
