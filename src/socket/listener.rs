//! Listening sockets and who may connect to them.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::SocketFlags;

use crate::addr::Address;
use crate::auth::{AuthKey, Required};
use crate::error::{Error, Result};
use crate::sockdir::PathOwnership;
use crate::wait::{Deadline, Interrupt, Ready, Wait};

use super::bind::bind_any;
use super::stream::Stream;
use super::Kind;

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
    pub(super) fd: OwnedFd,
    pub(super) kind: Kind,
    pub(super) address: String,
    pub(super) path: Option<PathBuf>,
    pub(super) tcp: bool,
    pub(super) ownership: Option<PathOwnership>,
    pub(super) shared_dir: bool,
    pub(super) max_message: u64,
    pub(super) closed: AtomicBool,
    pub(super) policy: Policy,
    pub(super) refused: AtomicU64,
    /// The `authkey` handshake every accepted peer must pass, if any.
    pub(super) auth: Option<Required>,
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
            auth: None,
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

    /// Asks every peer it accepts to prove that it holds `key` (the `authkey` handshake of
    /// [`crate::auth`]) within `handshake_timeout` (`None`: as long as `accept`'s own timeout);
    /// a peer that fails is closed and counted in [`Listener::refused`].
    pub fn require_authkey(&mut self, key: AuthKey, handshake_timeout: Option<Duration>) {
        self.auth = Some(Required {
            key,
            handshake_timeout,
        });
    }

    /// What [`Listener::require_authkey`] asked for, if anything.
    pub fn authkey_required(&self) -> Option<&Required> {
        self.auth.as_ref()
    }

    /// Waits up to `timeout` for a connection and accepts it. With an authkey, the peer must
    /// pass the handshake within what is left of `timeout` and its own deadline; one that does
    /// not is closed and counted in [`Listener::refused`], and the wait goes on.
    pub fn accept(
        &self,
        timeout: Option<Duration>,
        interrupt: &mut dyn Interrupt,
    ) -> Result<Stream> {
        let deadline = Deadline::after(timeout);
        loop {
            let stream = self.accept_until(deadline, interrupt)?;
            let Some(auth) = &self.auth else {
                return Ok(stream);
            };
            let handshake = match (auth.handshake_timeout, deadline.remaining()) {
                (Some(own), Some(left)) => Deadline::after(Some(own.min(left))),
                (own, left) => Deadline::after(own.or(left)),
            };
            let passed = crate::auth::server_watching(
                &stream,
                &auth.key,
                handshake,
                Some(&self.closed),
                interrupt,
            );
            match passed {
                Ok(()) => return Ok(stream),
                Err(Error::Interrupted) => return Err(Error::Interrupted),
                Err(_) if self.closed.load(Ordering::Acquire) => {
                    return Err(Error::os(Errno::BADF, "accept", &self.address));
                }
                // The peer failed: `stream` is dropped (closed), counted, and the wait goes on.
                Err(_) => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn accept_until(&self, deadline: Deadline, interrupt: &mut dyn Interrupt) -> Result<Stream> {
        let mut wait = Wait {
            deadline,
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

    /// How many connections the policy or the handshake refused.
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
