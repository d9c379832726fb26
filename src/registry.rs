//! The registry of named resources fastipc created, read by `fastipc ls` and `fastipc clean`.
//!
//! A segment's bytes belong to the user (C programs map them too), so nothing is stored inside
//! it. Instead, creating a segment, semaphore or lock writes one small file
//! `<registry>/<kind>.<name without the slash>` holding `key=value` lines: the kind, the name,
//! the size, the creator's pid and the creator's start time (field 22 of `/proc/<pid>/stat` on
//! Linux, the guard against pid reuse; 0 where unknown). Unlinking through fastipc removes it.
//!
//! The entry is written before the object is created, as a pending entry that one rename turns into
//! the entry once the object exists: a creator killed in between leaves an entry that
//! `fastipc clean` can act on, never an object nobody knows of.
//!
//! `<registry>` is `FASTIPC_REGISTRY_DIR`, else `$XDG_RUNTIME_DIR/fastipc/registry`, else
//! `/tmp/fastipc-<uid>/registry`; created 0700 and used only if it is a directory of the effective
//! user that nobody else can write. Recording is best effort: a registry that cannot be written
//! never makes a creation fail.

use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::names::Kind;

/// The registry directory (not created by this call).
pub fn dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FASTIPC_REGISTRY_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Path::new(&run).join("fastipc").join("registry");
    }
    let uid = rustix::process::geteuid().as_raw();
    PathBuf::from(format!("/tmp/fastipc-{uid}/registry"))
}

fn private_dir(path: &Path) -> Result<(), Errno> {
    match rustix::fs::mkdir(path, Mode::RWXU) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e),
    }
    let st = rustix::fs::lstat(path)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory
        || st.st_uid != rustix::process::geteuid().as_raw()
        || st.st_mode & 0o022 != 0
    {
        return Err(Errno::PERM);
    }
    Ok(())
}

fn prepare() -> Result<PathBuf, Errno> {
    let dir = dir();
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() && rustix::fs::lstat(parent).is_err() {
            private_dir(parent)?;
        }
    }
    private_dir(&dir)?;
    Ok(dir)
}

fn entry_path(dir: &Path, kind: Kind, name: &str) -> PathBuf {
    dir.join(format!("{}.{}", kind.tag(), name.trim_start_matches('/')))
}

/// This process's start time in clock ticks since boot (Linux), 0 where unknown.
pub fn start_time(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    stat.rfind(')')
        .and_then(|cut| stat[cut + 1..].split_whitespace().nth(19))
        .and_then(|field| field.parse().ok())
        .unwrap_or(0)
}

/// The text of an entry.
pub fn entry_text(kind: Kind, name: &str, size: u64, pid: u32, start: u64) -> String {
    format!(
        "fastipc-registry 1\nkind={}\nname={name}\nsize={size}\npid={pid}\nstart={start}\n",
        kind.tag()
    )
}

/// Set in a creator's environment, it stops (SIGSTOP) the creator between creating an object and
/// committing its entry: the test suite kills it there, the worst moment.
pub const STOP_BEFORE_COMMIT: &str = "FASTIPC_TEST_STOP_BEFORE_COMMIT";

/// The entry of an object about to be created, written before it exists (`pending.<pid>.<random>`):
/// `fastipc ls` lists it and `fastipc clean` acts on it if the creator dies before
/// [`Pending::commit`]. Dropped without a commit (the creation failed), it is removed.
#[derive(Debug)]
#[must_use = "a pending entry is removed when dropped: commit it once the object exists"]
pub struct Pending {
    path: Option<PathBuf>,
    kind: Kind,
    name: String,
}

/// Records, before it is created, that this process is creating `name` (best effort).
pub fn begin(kind: Kind, name: &str, size: u64) -> Pending {
    let path = prepare().ok().and_then(|dir| {
        let pending = dir.join(format!(
            "pending.{}.{:x}",
            std::process::id(),
            crate::names::random_u64()
        ));
        write_entry(&dir, &pending, kind, name, size)
            .ok()
            .map(|()| pending)
    });
    Pending {
        path,
        kind,
        name: name.to_owned(),
    }
}

impl Pending {
    /// The object exists: its pending entry becomes its entry (one rename).
    pub fn commit(mut self) {
        let Some(pending) = self.path.take() else {
            return;
        };
        if std::env::var_os(STOP_BEFORE_COMMIT).is_some_and(|v| !v.is_empty()) {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::STOP,
            );
        }
        let dir = pending.parent().map(Path::to_path_buf).unwrap_or_default();
        if rustix::fs::rename(&pending, entry_path(&dir, self.kind, &self.name)).is_err() {
            let _ = rustix::fs::unlink(&pending);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(pending) = self.path.take() {
            let _ = rustix::fs::unlink(pending);
        }
    }
}

/// Writes an entry at `path` whole or not at all (a temporary file renamed over it).
fn write_entry(dir: &Path, path: &Path, kind: Kind, name: &str, size: u64) -> Result<(), Errno> {
    let pid = std::process::id();
    let text = entry_text(kind, name, size, pid, start_time(pid));
    let tmp = dir.join(format!(
        ".{}.{pid}.{:x}",
        kind.tag(),
        crate::names::random_u64()
    ));
    let fd = rustix::fs::open(
        &tmp,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::RUSR | Mode::WUSR,
    )?;
    let written = rustix::io::write(&fd, text.as_bytes());
    drop(fd);
    match written {
        Ok(n) if n == text.len() => rustix::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = rustix::fs::unlink(&tmp);
        }),
        Ok(_) => {
            let _ = rustix::fs::unlink(&tmp);
            Err(Errno::IO)
        }
        Err(e) => {
            let _ = rustix::fs::unlink(&tmp);
            Err(e)
        }
    }
}

/// Forgets `name` after it was unlinked (best effort).
pub fn forget(kind: Kind, name: &str) {
    let _ = rustix::fs::unlink(entry_path(&dir(), kind, name));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_known_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(start_time(std::process::id()) > 0);
        }
        assert_eq!(start_time(u32::MAX), 0);
    }

    #[test]
    fn entry_format() {
        let text = entry_text(Kind::Sem, "/x", 0, 12, 34);
        assert_eq!(
            text,
            "fastipc-registry 1\nkind=sem\nname=/x\nsize=0\npid=12\nstart=34\n"
        );
    }
}
