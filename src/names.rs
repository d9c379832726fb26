//! The policy for names of shared memory segments and semaphores (pure, no I/O).
//!
//! Names are in POSIX form: one leading slash, then 1 to [`MAX_NAME`] bytes without a slash or a
//! NUL. A name given without the slash gets one, so `"data"` and `"/data"` are the same segment.
//! Generated names are `/fastipc-<16 hex digits>`: recognisable, and short enough for macOS.

use crate::error::{Error, PyRepr, Result};

/// The prefix of generated names.
pub const PREFIX: &str = "/fastipc-";

/// Longest name after the slash: 30 bytes on macOS (`PSHMNAMLEN`/`PSEMNAMLEN` are 31 with the
/// slash), 250 elsewhere (`NAME_MAX` minus glibc's `sem.` prefix for semaphores).
#[cfg(target_vendor = "apple")]
pub const MAX_NAME: usize = 30;
/// Longest name after the slash (see the Apple variant).
#[cfg(not(target_vendor = "apple"))]
pub const MAX_NAME: usize = 250;

/// What a name is for, in messages and in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A shared memory segment.
    Shm,
    /// A named semaphore.
    Sem,
    /// A lock's own segment.
    Lock,
}

impl Kind {
    /// "shm", "sem" or "lock".
    pub fn tag(self) -> &'static str {
        match self {
            Kind::Shm => "shm",
            Kind::Sem => "sem",
            Kind::Lock => "lock",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Shm => "shared memory name",
            Kind::Sem => "semaphore name",
            Kind::Lock => "lock name",
        }
    }
}

/// The POSIX form of `name`, or `ValueError`-style `Error::Invalid` naming the problem.
pub fn posix_name(name: &str, kind: Kind) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let bad =
        |why: &str| Error::Invalid(format!("invalid {} {}: {why}", kind.noun(), PyRepr(name)));
    if bare.is_empty() {
        return Err(bad("it is empty"));
    }
    if bare.contains('/') {
        return Err(bad("only the leading character may be a slash"));
    }
    if bare.contains('\0') {
        return Err(bad("it contains a NUL byte"));
    }
    if bare == "." || bare == ".." {
        return Err(bad("it is a directory name"));
    }
    if bare.len() > MAX_NAME {
        return Err(bad(&format!(
            "longer than {MAX_NAME} bytes after the slash"
        )));
    }
    Ok(format!("/{bare}"))
}

/// A fresh generated name from 64 random bits.
pub fn generated(random: u64) -> String {
    format!("{PREFIX}{random:016x}")
}

/// 64 random bits from the kernel (a hash of the time and pid if that fails).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut buf = [0u8; 8];
    if rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::empty())
        .is_ok_and(|n| n == 8)
    {
        return u64::from_ne_bytes(buf);
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn adds_the_slash() {
        assert_eq!(posix_name("data", Kind::Shm).unwrap(), "/data");
        assert_eq!(posix_name("/data", Kind::Shm).unwrap(), "/data");
    }

    #[test]
    fn refuses_bad_names() {
        for bad in ["", "/", "a/b", "//a", "/a\0b", ".", "/.."] {
            assert!(posix_name(bad, Kind::Sem).is_err(), "{bad:?}");
        }
        assert!(posix_name(&"x".repeat(MAX_NAME + 1), Kind::Shm).is_err());
        assert!(posix_name(&"x".repeat(MAX_NAME), Kind::Shm).is_ok());
    }

    #[test]
    fn generated_names_are_recognisable_and_short() {
        let name = generated(random_u64());
        assert!(name.starts_with(PREFIX));
        assert_eq!(name.len(), PREFIX.len() + 16);
        assert!(name.len() <= 31);
        assert_eq!(posix_name(&name, Kind::Shm).unwrap(), name);
    }

    proptest! {
        #[test]
        fn valid_names_round_trip(bare in "[a-zA-Z0-9._-]{1,40}") {
            prop_assume!(bare != "." && bare != "..");
            let once = posix_name(&bare, Kind::Shm).unwrap();
            prop_assert_eq!(posix_name(&once, Kind::Shm).unwrap(), once.clone());
            prop_assert!(once.starts_with('/') && !once[1..].contains('/'));
        }
    }
}
