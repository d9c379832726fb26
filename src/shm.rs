//! Shared memory segments: named (`shm_open`, the same objects C programs and `posix_ipc` open) and
//! anonymous (`memfd_create` on Linux, sealed against shrinking), mapped read-write.
//!
//! A segment lives until it is unlinked, as POSIX says: closing maps it out of this process only.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::Mode;
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::names::{self, Kind};
use crate::registry;
use crate::sys::shm::{reserve, Mapping};

/// A mapped shared memory segment that owns its descriptor.
#[derive(Debug)]
pub struct SharedMemory {
    map: Mapping,
    fd: OwnedFd,
    name: Option<String>,
}

fn mode_of(mode: u32) -> Result<Mode> {
    if mode & !0o777 != 0 {
        return Err(Error::Invalid(format!(
            "mode must be permission bits (0 to 0o777), not {mode:#o}"
        )));
    }
    Ok(Mode::from_bits_truncate(mode as _))
}

fn size_of_fd(fd: BorrowedFd<'_>, what: &str) -> Result<u64> {
    let st = rustix::fs::fstat(fd).map_err(|e| Error::os(e, "fstat", what))?;
    Ok(u64::try_from(st.st_size).unwrap_or(0))
}

fn map_whole(fd: &OwnedFd, size: u64, what: &str) -> Result<Mapping> {
    if size == 0 {
        return Err(Error::Invalid(format!(
            "the shared memory segment {what} is empty (size 0): nothing to map"
        )));
    }
    let len = usize::try_from(size).map_err(|_| Error::os(Errno::FBIG, "mmap", what))?;
    Mapping::shared(fd.as_fd(), len).map_err(|e| Error::os(e, "mmap", what))
}

/// Creates a named segment exclusively; removes it again if any later step fails.
fn create_named(name: &str, size: u64, mode: Mode) -> Result<(OwnedFd, Mapping)> {
    let fd = rustix::shm::open(
        name,
        rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR,
        mode,
    )
    .map_err(|e| Error::os(e, "shm_open", name))?;
    let rest = (|| {
        // The umask must not narrow the mode the caller asked for.
        rustix::fs::fchmod(&fd, mode).map_err(|e| Error::os(e, "fchmod", name))?;
        rustix::fs::ftruncate(&fd, size).map_err(|e| Error::os(e, "ftruncate", name))?;
        reserve(fd.as_fd(), size).map_err(|e| Error::os(e, "posix_fallocate", name))?;
        map_whole(&fd, size, name)
    })();
    match rest {
        Ok(map) => Ok((fd, map)),
        Err(err) => {
            let _ = rustix::shm::unlink(name);
            Err(err)
        }
    }
}

impl SharedMemory {
    /// Creates a segment of `size` bytes (`O_EXCL`, `mode`), named `name` or a generated
    /// `/fastipc-…` name. `FileExistsError` if the name exists.
    pub fn create(name: Option<&str>, size: u64, mode: u32) -> Result<SharedMemory> {
        let mode = mode_of(mode)?;
        if size == 0 {
            return Err(Error::Invalid(
                "size must be a positive number of bytes when creating a segment".into(),
            ));
        }
        // Recorded first, committed once it exists (a failed creation drops the pending entry).
        let (name, fd, map) = match name {
            Some(name) => {
                let name = names::posix_name(name, Kind::Shm)?;
                let pending = registry::begin(Kind::Shm, &name, size);
                let (fd, map) = create_named(&name, size, mode)?;
                pending.commit();
                (name, fd, map)
            }
            None => loop {
                let name = names::generated(names::random_u64());
                let pending = registry::begin(Kind::Shm, &name, size);
                match create_named(&name, size, mode) {
                    Ok((fd, map)) => {
                        pending.commit();
                        break (name, fd, map);
                    }
                    Err(e) if e.errno() == Some(Errno::EXIST) => continue,
                    Err(e) => return Err(e),
                }
            },
        };
        Ok(SharedMemory {
            map,
            fd,
            name: Some(name),
        })
    }

    /// Opens the existing segment `name` read-write and maps all of it.
    pub fn open(name: &str) -> Result<SharedMemory> {
        let name = names::posix_name(name, Kind::Shm)?;
        let fd = rustix::shm::open(name.as_str(), rustix::shm::OFlags::RDWR, Mode::empty())
            .map_err(|e| Error::os(e, "shm_open", &name))?;
        let size = size_of_fd(fd.as_fd(), &name)?;
        let map = map_whole(&fd, size, &name)?;
        Ok(SharedMemory {
            map,
            fd,
            name: Some(name),
        })
    }

    /// Creates an anonymous segment of `size` bytes, to hand to another process by descriptor
    /// passing. On Linux a memfd sealed against shrinking and growing, so that no holder of the
    /// descriptor can make the other side's mapping fault.
    pub fn anonymous(size: u64) -> Result<SharedMemory> {
        if size == 0 {
            return Err(Error::Invalid(
                "size must be a positive number of bytes".into(),
            ));
        }
        let fd = anonymous_fd(size)?;
        let map = map_whole(&fd, size, "anonymous segment")?;
        Ok(SharedMemory {
            map,
            fd,
            name: None,
        })
    }

    /// Maps the segment behind a received descriptor (which the new value owns). With
    /// `require_sealed`, refuses a descriptor that could shrink under the mapping (Linux: a memfd
    /// without `F_SEAL_SHRINK`).
    pub fn from_fd(fd: OwnedFd, require_sealed: bool) -> Result<SharedMemory> {
        let what = "received segment";
        if require_sealed && !is_sealed(fd.as_fd()) {
            return Err(Error::Invalid(
                "the descriptor is not sealed against shrinking (F_SEAL_SHRINK): a peer could \
                 truncate it under the mapping; pass require_sealed=False to accept it anyway"
                    .into(),
            ));
        }
        let size = size_of_fd(fd.as_fd(), what)?;
        let map = map_whole(&fd, size, what)?;
        Ok(SharedMemory {
            map,
            fd,
            name: None,
        })
    }

    /// The name in POSIX form, `None` for an anonymous segment.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.map.len()
    }

    /// The mapping.
    pub fn mapping(&self) -> &Mapping {
        &self.map
    }

    /// Watches the mapping of a named segment against a truncation by another process (see
    /// [`Mapping::guard`]); an anonymous segment is sealed against it where the platform can.
    pub fn guard(&mut self) {
        if let Some(name) = &self.name {
            self.map.guard(name);
        }
    }

    /// The descriptor.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The parts: the descriptor, the mapping and the name, to be dropped separately.
    pub fn into_parts(self) -> (OwnedFd, Mapping, Option<String>) {
        (self.fd, self.map, self.name)
    }

    /// What to call it in messages.
    pub fn describe(&self) -> &str {
        self.name.as_deref().unwrap_or("anonymous segment")
    }
}

/// Removes the name `name`; the memory lives on while anyone maps it.
pub fn unlink(name: &str) -> Result<()> {
    let name = names::posix_name(name, Kind::Shm)?;
    rustix::shm::unlink(name.as_str()).map_err(|e| Error::os(e, "shm_unlink", &name))?;
    registry::forget(Kind::Shm, &name);
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn anonymous_fd(size: u64) -> Result<OwnedFd> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let what = "anonymous segment";
    let fd = rustix::fs::memfd_create(
        "fastipc-anonymous",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(|e| Error::os(e, "memfd_create", what))?;
    rustix::fs::ftruncate(&fd, size).map_err(|e| Error::os(e, "ftruncate", what))?;
    reserve(fd.as_fd(), size).map_err(|e| Error::os(e, "posix_fallocate", what))?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
        .map_err(|e| Error::os(e, "fcntl(F_ADD_SEALS)", what))?;
    Ok(fd)
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn anonymous_fd(size: u64) -> Result<OwnedFd> {
    // No memfd: a named segment whose name is removed at once. It cannot be sealed.
    let what = "anonymous segment";
    loop {
        let name = names::generated(names::random_u64());
        match rustix::shm::open(
            name.as_str(),
            rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR,
            Mode::RUSR | Mode::WUSR,
        ) {
            Ok(fd) => {
                let _ = rustix::shm::unlink(name.as_str());
                rustix::fs::ftruncate(&fd, size).map_err(|e| Error::os(e, "ftruncate", what))?;
                return Ok(fd);
            }
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(Error::os(e, "shm_open", what)),
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn is_sealed(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fcntl_get_seals(fd).is_ok_and(|s| s.contains(rustix::fs::SealFlags::SHRINK))
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn is_sealed(_fd: BorrowedFd<'_>) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_name(tag: &str) -> String {
        format!(
            "/fastipc-test-{tag}-{}-{:x}",
            std::process::id(),
            names::random_u64()
        )
    }

    #[test]
    fn create_open_share_unlink() {
        std::env::set_var(
            "FASTIPC_REGISTRY_DIR",
            std::env::temp_dir().join("fastipc-rust-tests"),
        );
        let name = test_name("shm");
        let a = SharedMemory::create(Some(&name), 5000, 0o600).unwrap();
        assert_eq!(a.size(), 5000);
        a.mapping().write_at(4990, b"0123456789").unwrap();
        assert!(a.mapping().write_at(4991, b"0123456789").is_err());
        let b = SharedMemory::open(name.trim_start_matches('/')).unwrap();
        let mut got = [0u8; 10];
        b.mapping().read_at(4990, &mut got).unwrap();
        assert_eq!(&got, b"0123456789");
        let again = SharedMemory::create(Some(&name), 10, 0o600).unwrap_err();
        assert_eq!(again.errno(), Some(Errno::EXIST));
        unlink(&name).unwrap();
        assert_eq!(
            SharedMemory::open(&name).unwrap_err().errno(),
            Some(Errno::NOENT)
        );
    }

    #[test]
    fn generated_name_and_zero_size() {
        std::env::set_var(
            "FASTIPC_REGISTRY_DIR",
            std::env::temp_dir().join("fastipc-rust-tests"),
        );
        assert!(SharedMemory::create(None, 0, 0o600).is_err());
        let s = SharedMemory::create(None, 1, 0o600).unwrap();
        let name = s.name().unwrap().to_string();
        assert!(name.starts_with(names::PREFIX));
        unlink(&name).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn anonymous_is_sealed() {
        let s = SharedMemory::anonymous(4096).unwrap();
        assert!(s.name().is_none());
        assert!(is_sealed(s.as_fd()));
        assert!(rustix::fs::ftruncate(s.as_fd(), 0).is_err());
        let dup = rustix::io::fcntl_dupfd_cloexec(s.as_fd(), 0).unwrap();
        let t = SharedMemory::from_fd(dup, true).unwrap();
        t.mapping().write_at(0, b"hi").unwrap();
        let mut got = [0u8; 2];
        s.mapping().read_at(0, &mut got).unwrap();
        assert_eq!(&got, b"hi");
    }
}
