//! Peer credentials where rustix has no wrapper.

use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::io::Errno;

use crate::creds::Credentials;

#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn peer(fd: BorrowedFd<'_>) -> Result<Credentials, Errno> {
    let cred = rustix::net::sockopt::socket_peercred(fd)?;
    Ok(Credentials {
        pid: Some(cred.pid.as_raw_nonzero().get()),
        uid: cred.uid.as_raw(),
        gid: cred.gid.as_raw(),
    })
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn peer(fd: BorrowedFd<'_>) -> Result<Credentials, Errno> {
    use std::os::fd::AsRawFd;
    let mut uid: libc::uid_t = 0;
    let mut gid: libc::gid_t = 0;
    // SAFETY: `fd` is a valid descriptor for the duration of the call and both out-pointers
    // point to live, writable integers.
    if unsafe { libc::getpeereid(fd.as_raw_fd(), &mut uid, &mut gid) } != 0 {
        return Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::INVAL));
    }
    Ok(Credentials {
        pid: peer_pid(fd),
        uid: uid as u32,
        gid: gid as u32,
    })
}

/// macOS tells the peer's pid through `LOCAL_PEERPID`; other BSDs do not for every socket.
#[cfg(target_vendor = "apple")]
fn peer_pid(fd: BorrowedFd<'_>) -> Option<i32> {
    use std::os::fd::AsRawFd;
    const SOL_LOCAL: libc::c_int = 0;
    const LOCAL_PEERPID: libc::c_int = 2;
    let mut pid: libc::pid_t = 0;
    let mut len = std::mem::size_of::<libc::pid_t>() as libc::socklen_t;
    // SAFETY: `pid` and `len` are live and `len` holds the size of `pid`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_LOCAL,
            LOCAL_PEERPID,
            (&mut pid as *mut libc::pid_t).cast(),
            &mut len,
        )
    };
    (rc == 0 && pid > 0).then_some(pid)
}

#[cfg(all(
    not(any(target_os = "linux", target_os = "android")),
    not(target_vendor = "apple")
))]
fn peer_pid(_fd: BorrowedFd<'_>) -> Option<i32> {
    None
}

/// `SO_PEERPIDFD` (Linux 6.5): its value on the architectures that use the generic socket
/// option numbers.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv64",
        target_arch = "loongarch64",
        target_arch = "s390x",
        target_arch = "powerpc64"
    )
))]
pub fn peer_pidfd(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    use std::os::fd::{AsRawFd, FromRawFd};
    const SO_PEERPIDFD: libc::c_int = 77;
    let mut pidfd: libc::c_int = -1;
    let mut len =
        libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).map_err(|_| Errno::INVAL)?;
    // SAFETY: `pidfd` and `len` are live and `len` holds the size of `pidfd`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&raw mut pidfd).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::INVAL));
    }
    if pidfd < 0 {
        return Err(Errno::NOPROTOOPT);
    }
    // SAFETY: the kernel returned a new descriptor (close-on-exec) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(pidfd) })
}

#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv64",
        target_arch = "loongarch64",
        target_arch = "s390x",
        target_arch = "powerpc64"
    )
)))]
pub fn peer_pidfd(_fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    Err(Errno::NOPROTOOPT)
}
