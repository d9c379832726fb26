//! Messages larger than a ring carries inline: the payload travels in a shared memory segment of
//! its own (a generated `/fastipc-…` name, recorded in the registry so that `fastipc ls` and
//! `fastipc clean` know it), and the ring carries a reference: `u64` length, then the name.
//! The receiver maps the segment, removes its name at once (the memory lives while mapped), and
//! reads the payload from there.

use crate::error::{Error, Result};
use crate::names;
use crate::shm::SharedMemory;
use crate::sys::shm::Mapping;

/// The longest reference: length and a name of at most 255 bytes.
pub const MAX_REFERENCE: usize = 8 + 255;

/// A fresh segment of `len` bytes for one big message.
/// Its mapping is watched against a truncation by another process (see [`Mapping::guard`]).
pub fn create(len: usize) -> Result<SharedMemory> {
    let mut shm = SharedMemory::create(None, len.max(1) as u64, 0o600)?;
    shm.guard();
    Ok(shm)
}

/// The reference to `shm` holding `len` bytes, as the ring carries it.
pub fn reference(shm: &SharedMemory, len: usize) -> Vec<u8> {
    let mut out = (len as u64).to_le_bytes().to_vec();
    out.extend_from_slice(shm.name().unwrap_or_default().as_bytes());
    out
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt {
        what: format!("big message reference: {what}"),
    }
}

/// Removes a big message's segment whose reference was never published (or was discarded).
#[allow(clippy::needless_pass_by_value)] // consumed: the segment is gone afterwards
pub fn discard(shm: SharedMemory) {
    if let Some(name) = shm.name().map(str::to_string) {
        let _ = crate::shm::unlink(&name);
    }
}

/// Maps the segment a reference names, removes its name, and returns the mapping and the length.
/// The name must be one fastipc generates and the segment at least as long as announced: a hostile reference cannot make the reader map anything else or allocate
/// more than the segment holds.
pub fn open(reference: &[u8]) -> Result<(Mapping, usize)> {
    if reference.len() < 9 || reference.len() > MAX_REFERENCE {
        return Err(corrupt("bad size"));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&reference[..8]);
    let len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| corrupt("length"))?;
    let name = std::str::from_utf8(&reference[8..]).map_err(|_| corrupt("name"))?;
    let generated = name.strip_prefix(names::PREFIX).is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !generated {
        return Err(corrupt("not a generated segment name"));
    }
    let shm = SharedMemory::open(name)?;
    let _ = crate::shm::unlink(name);
    if len > shm.size() {
        return Err(corrupt("the message is longer than its segment"));
    }
    let (_fd, mut map, _name) = shm.into_parts();
    map.guard(name);
    Ok((map, len))
}

/// A second mapping of a big message's segment (for a view that outlives the first).
pub fn map_again(shm: &SharedMemory) -> Result<Mapping> {
    let mut map = Mapping::shared(std::os::fd::AsFd::as_fd(&shm.as_fd()), shm.size())
        .map_err(|e| Error::os(e, "mmap", "big message"))?;
    map.guard(shm.describe());
    Ok(map)
}

/// A corrupt channel error if the big message's segment was shrunk under `map` (see
/// [`Mapping::guard`]).
pub fn intact(map: &Mapping) -> Result<()> {
    match map.truncated() {
        None => Ok(()),
        Some(name) => Err(super::raw::truncated(name, map.len())),
    }
}

/// A corrupt channel error if the big message's segment `shm` is now shorter than the `len`
/// bytes of its message (one `fstat`: checked once, before the reference is published).
pub fn still_whole(shm: &SharedMemory, len: usize) -> Result<()> {
    let st = rustix::fs::fstat(shm.as_fd()).map_err(|e| Error::os(e, "fstat", shm.describe()))?;
    if u64::try_from(st.st_size).unwrap_or(0) < len as u64 {
        return Err(super::raw::truncated(shm.describe(), shm.size()));
    }
    intact(shm.mapping())
}
