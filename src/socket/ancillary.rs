//! Ancillary data: descriptors (`SCM_RIGHTS`) and credentials (`SCM_CREDENTIALS`) sent and
//! received with the bytes of a `sendmsg`/`recvmsg`.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrAny,
};

use crate::error::{Error, Result};

use super::SCM_MAX_FD;

/// Control-message space for [`SCM_MAX_FD`] descriptors and one set of credentials.
pub(super) const CMSG_SPACE: usize = rustix::cmsg_space!(ScmRights(SCM_MAX_FD), ScmCredentials(1));

/// What a `recvmsg` brought besides the bytes.
#[derive(Debug, Default)]
pub(super) struct Ancillary {
    pub(super) fds: Vec<OwnedFd>,
    pub(super) creds: Option<crate::creds::Credentials>,
    pub(super) truncated: bool,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) const CMSG_CLOEXEC: RecvFlags = RecvFlags::CMSG_CLOEXEC;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) const CMSG_CLOEXEC: RecvFlags = RecvFlags::empty();

/// `recvmsg` into `dst`, collecting descriptors (close-on-exec from the start where the platform
/// can, at once otherwise) and credentials. A truncated control message closes every descriptor
/// that did arrive and reports `truncated`.
pub(super) fn recv_ancillary(
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
pub(super) fn send_ancillary(
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

pub(super) fn check_fd_count(count: usize, what: &str) -> Result<()> {
    if count > SCM_MAX_FD {
        return Err(Error::Invalid(format!(
            "{count} descriptors in one message: at most {SCM_MAX_FD} can travel together ({what})"
        )));
    }
    Ok(())
}
