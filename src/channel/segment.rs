//! Creating, opening and adopting the segment of a queue or channel, and the rings in it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::layout::{
    capacity_arg, check_header, ring_offset, segment_size, Header, Kind, LAYOUT_VERSION, MAGIC,
    OFF_CAPACITY, OFF_KIND, OFF_MAGIC, OFF_MAXSIZE, OFF_RINGS, OFF_UNFINISHED, OFF_VERSION,
};
use super::raw::Region;
use super::ring::Ring;
use crate::error::{Error, Result};
use crate::shm::SharedMemory;
use crate::sys::shm::Mapping;

/// A mapped queue or channel segment and its rings.
#[derive(Debug)]
pub struct Segment {
    region: Region,
    fd: OwnedFd,
    name: Option<String>,
    header: Header,
    rings: Vec<Ring>,
}

fn set_u64(region: &Region, off: usize, value: u64) -> Result<()> {
    region
        .u64_at(off)
        .ok_or_else(|| Error::Invalid("segment too small".into()))?
        .store(value, Ordering::Relaxed);
    Ok(())
}

fn set_u32(region: &Region, off: usize, value: u32) -> Result<()> {
    region
        .u32_at(off)
        .ok_or_else(|| Error::Invalid("segment too small".into()))?
        .store(value, Ordering::Relaxed);
    Ok(())
}

/// A named segment's mapping, watched against a truncation by another process (anonymous ones
/// are memfds sealed against shrinking, except where the platform has no seals).
fn watched(mut map: Mapping, name: Option<&str>) -> Mapping {
    let sealed = cfg!(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd"
    ));
    match name {
        Some(name) => map.guard(name),
        None if !sealed => map.guard("(anonymous segment)"),
        None => {}
    }
    map
}

impl Segment {
    /// Creates a segment of `kind` with rings of `capacity` bytes: named (`O_EXCL`, `mode`) or an
    /// anonymous sealed memfd.
    pub fn create(
        kind: Kind,
        capacity: u64,
        maxsize: u64,
        name: Option<&str>,
        mode: u32,
    ) -> Result<Segment> {
        let capacity = capacity_arg(capacity)?;
        let size = segment_size(kind, capacity);
        let shm = match name {
            Some(name) => SharedMemory::create(Some(name), size, mode)?,
            None => SharedMemory::anonymous(size)?,
        };
        let (fd, map, name) = shm.into_parts();
        let region = Region::new(watched(map, name.as_deref()));
        set_u32(&region, OFF_VERSION, LAYOUT_VERSION)?;
        set_u32(&region, OFF_KIND, kind as u32)?;
        set_u64(&region, OFF_CAPACITY, capacity)?;
        set_u64(&region, OFF_MAXSIZE, maxsize)?;
        #[allow(clippy::cast_possible_truncation)] // 1 or 2
        set_u32(&region, OFF_RINGS, kind.rings() as u32)?;
        let header = Header {
            kind,
            capacity,
            maxsize,
        };
        let rings = Segment::rings(&region, header)?;
        // The magic last: an opener that sees it sees an initialised segment.
        region
            .u64_at(OFF_MAGIC)
            .ok_or_else(|| Error::Invalid("segment too small".into()))?
            .store(MAGIC, Ordering::Release);
        Ok(Segment {
            region,
            fd,
            name,
            header,
            rings,
        })
    }

    fn rings(region: &Region, header: Header) -> Result<Vec<Ring>> {
        let unfinished = (header.kind == Kind::JoinableQueue).then_some(OFF_UNFINISHED);
        (0..header.kind.rings())
            .map(|i| {
                Ring::new(
                    region.clone(),
                    ring_offset(i, header.capacity),
                    header.capacity,
                    header.maxsize,
                    unfinished,
                )
            })
            .collect()
    }

    fn adopt(shm: SharedMemory, wait_ready: bool) -> Result<Segment> {
        let (fd, map, name) = shm.into_parts();
        let region = Region::new(watched(map, name.as_deref()));
        let too_small = || Error::Corrupt {
            what: "not a fastipc queue or channel (too small)".into(),
        };
        let magic = region.u64_at(OFF_MAGIC).ok_or_else(too_small)?;
        // A creator may still be initialising a named segment: give it a moment.
        let start = Instant::now();
        while wait_ready
            && magic.load(Ordering::Acquire) == 0
            && start.elapsed() < Duration::from_millis(200)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        let field = |off: usize| -> Result<u64> {
            Ok(region
                .u64_at(off)
                .ok_or_else(too_small)?
                .load(Ordering::Acquire))
        };
        let field32 = |off: usize| -> Result<u32> {
            Ok(region
                .u32_at(off)
                .ok_or_else(too_small)?
                .load(Ordering::Acquire))
        };
        let header = check_header(
            magic.load(Ordering::Acquire),
            field32(OFF_VERSION)?,
            field32(OFF_KIND)?,
            field(OFF_CAPACITY)?,
            field(OFF_MAXSIZE)?,
            region.len(),
        )?;
        let rings = Segment::rings(&region, header)?;
        Ok(Segment {
            region,
            fd,
            name,
            header,
            rings,
        })
    }

    /// Opens the named segment `name`.
    pub fn open(name: &str) -> Result<Segment> {
        Segment::adopt(SharedMemory::open(name)?, true)
    }

    /// Adopts a segment received as a descriptor (sealed memfds only, where sealing exists).
    pub fn from_fd(fd: OwnedFd) -> Result<Segment> {
        let sealed = cfg!(any(
            target_os = "linux",
            target_os = "android",
            target_os = "freebsd"
        ));
        Segment::adopt(SharedMemory::from_fd(fd, sealed)?, false)
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.header.kind
    }

    /// Ring capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.header.capacity
    }

    /// Maxsize.
    pub fn maxsize(&self) -> u64 {
        self.header.maxsize
    }

    /// Ring `i`.
    pub fn ring(&self, i: usize) -> &Ring {
        &self.rings[i.min(self.rings.len() - 1)]
    }

    /// The memory.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The name (POSIX form), `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The segment's descriptor (to hand to another process).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
