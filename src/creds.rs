//! Credentials of the process at the other end of a Unix socket.

use std::os::fd::{BorrowedFd, OwnedFd};

use crate::error::{Error, Result};

/// Who is at the other end: taken by the kernel when the connection was made (or, for a
/// datagram, when it was sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// The process id, where the platform tells it.
    pub pid: Option<i32>,
    /// The effective user id.
    pub uid: u32,
    /// The effective group id.
    pub gid: u32,
}

/// The peer credentials of a connected Unix socket (`SO_PEERCRED`, `getpeereid`...).
pub fn peer_credentials(fd: BorrowedFd<'_>, what: &str) -> Result<Credentials> {
    crate::sys::creds::peer(fd).map_err(|e| Error::os(e, "peer credentials", what))
}

/// A pidfd of the peer process (`SO_PEERPIDFD`, Linux 6.5 and later): it keeps naming that
/// process even after its pid is reused.
pub fn peer_pidfd(fd: BorrowedFd<'_>, what: &str) -> Result<OwnedFd> {
    crate::sys::creds::peer_pidfd(fd).map_err(|e| match e {
        rustix::io::Errno::NOPROTOOPT | rustix::io::Errno::NOSYS => {
            Error::NotSupported(format!("this kernel has no SO_PEERPIDFD ({what})"))
        }
        e => Error::os(e, "peer pidfd", what),
    })
}

/// Whether `creds` may connect under an allow-list policy (empty lists allow everyone).
pub fn allowed(creds: &Credentials, uids: &[u32], gids: &[u32]) -> bool {
    (uids.is_empty() || uids.contains(&creds.uid)) && (gids.is_empty() || gids.contains(&creds.gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        let c = Credentials {
            pid: Some(1),
            uid: 1000,
            gid: 100,
        };
        assert!(allowed(&c, &[], &[]));
        assert!(allowed(&c, &[0, 1000], &[]));
        assert!(!allowed(&c, &[0], &[]));
        assert!(allowed(&c, &[], &[100]));
        assert!(!allowed(&c, &[1000], &[0]));
    }

    #[test]
    fn socketpair_credentials_are_ours() {
        use std::os::fd::AsFd;
        let (a, _b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .expect("socketpair");
        let c = peer_credentials(a.as_fd(), "pair").expect("credentials");
        assert_eq!(c.uid, rustix::process::geteuid().as_raw());
        assert_eq!(c.gid, rustix::process::getegid().as_raw());
        #[cfg(target_os = "linux")]
        assert_eq!(c.pid, i32::try_from(std::process::id()).ok());
    }
}
