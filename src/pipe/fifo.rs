//! FIFOs: creating one, and opening its ends with a timeout (an open blocks until the other
//! side arrives, which `open(2)` cannot time out on its own).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{End, PipeReader, PipeWriter};
use crate::error::{Error, Result};
use crate::wait::{backoff, Deadline, Interrupt, SLICE};

/// Creates a FIFO at `path` with exactly `mode` (the umask does not apply); EEXIST if something
/// is there already.
pub fn mkfifo(path: &Path, mode: u32) -> Result<()> {
    let what = path.display().to_string();
    make_fifo(path, mode).map_err(|e| Error::os(e, "mkfifo", &what))?;
    let mode = Mode::from_bits_truncate(mode as _);
    // mkfifo applied the umask: set the mode asked for, on the FIFO just made.
    if let Err(e) = rustix::fs::chmodat(rustix::fs::CWD, path, mode, rustix::fs::AtFlags::empty()) {
        let _ = rustix::fs::unlink(path);
        return Err(Error::os(e, "chmod", &what));
    }
    Ok(())
}

#[cfg(not(target_vendor = "apple"))]
fn make_fifo(path: &Path, mode: u32) -> std::result::Result<(), Errno> {
    rustix::fs::mkfifoat(rustix::fs::CWD, path, Mode::from_bits_truncate(mode as _))
}

#[cfg(target_vendor = "apple")]
fn make_fifo(path: &Path, mode: u32) -> std::result::Result<(), Errno> {
    let cpath =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Errno::INVAL)?;
    crate::sys::fifo::mkfifo(&cpath, mode)
}

fn check_fifo(path: &Path, what: &str) -> Result<()> {
    let st = rustix::fs::stat(path).map_err(|e| Error::os(e, "stat", what))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Fifo {
        return Err(Error::OsMsg {
            errno: Errno::INVAL,
            msg: "not a FIFO".into(),
            what: what.to_string(),
        });
    }
    Ok(())
}

/// Opens the FIFO at `path` for reading, waiting until a writer opens it too.
///
/// The blocking `open` runs in a helper thread while this one waits in slices (checking the
/// deadline and `interrupt`). To give up, fastipc opens the FIFO for writing itself, which ends
/// the helper's `open`, and closes both: another reader waiting on the same FIFO at that moment
/// sees a writer come and go (an end of file).
pub fn open_fifo_reader(
    path: &Path,
    timeout: Option<Duration>,
    interrupt: &mut dyn Interrupt,
) -> Result<PipeReader> {
    let what = path.display().to_string();
    check_fifo(path, &what)?;
    let deadline = Deadline::after(timeout);
    let (tx, rx) = std::sync::mpsc::channel();
    let owned: PathBuf = path.to_path_buf();
    std::thread::Builder::new()
        .name("fastipc-fifo-open".into())
        .spawn(move || {
            let result = rustix::fs::open(&owned, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty());
            let _ = tx.send(result);
        })
        .map_err(|e| {
            Error::os(
                Errno::from_io_error(&e).unwrap_or(Errno::AGAIN),
                "thread",
                &what,
            )
        })?;
    let outcome: Result<OwnedFd> = loop {
        let step = deadline.remaining().map_or(SLICE, |left| left.min(SLICE));
        match rx.recv_timeout(step) {
            Ok(result) => break result.map_err(|e| Error::os(e, "open", &what)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                break Err(Error::os(Errno::IO, "open", &what));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let stop = if deadline.remaining() == Some(Duration::ZERO) {
                    Some(Error::Timeout { what: what.clone() })
                } else {
                    interrupt.check().err()
                };
                if let Some(err) = stop {
                    cancel_reader_open(path, &rx);
                    return Err(err);
                }
            }
        }
    };
    let fd = outcome?;
    let reader = PipeReader::adopt(fd, what.clone())?;
    let st = rustix::fs::fstat(reader.as_fd()).map_err(|e| Error::os(e, "fstat", &what))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Fifo {
        return Err(Error::OsMsg {
            errno: Errno::INVAL,
            msg: "not a FIFO".into(),
            what,
        });
    }
    Ok(reader)
}

fn cancel_reader_open(path: &Path, rx: &std::sync::mpsc::Receiver<rustix::io::Result<OwnedFd>>) {
    for _ in 0..2000 {
        // A writer's open (even closed at once) wakes the reader blocked in open.
        if let Ok(fd) = rustix::fs::open(
            path,
            OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            drop(fd);
        }
        if let Ok(result) = rx.recv_timeout(Duration::from_millis(1)) {
            drop(result);
            return;
        }
    }
    // The helper is stuck on something that is no longer our FIFO; it ends with its open and
    // drops the descriptor then (nobody receives it).
}

/// Opens the FIFO at `path` for writing, waiting until a reader opens it.
///
/// A non-blocking open for writing fails with ENXIO while no reader is there; fastipc retries it
/// with backoff from 0.1 ms up to 5 ms (the latency after a reader arrives), checking the
/// deadline and `interrupt` in between. Nothing is opened that another party could notice.
pub fn open_fifo_writer(
    path: &Path,
    timeout: Option<Duration>,
    interrupt: &mut dyn Interrupt,
) -> Result<PipeWriter> {
    let what = path.display().to_string();
    check_fifo(path, &what)?;
    let fd = backoff(
        Deadline::after(timeout),
        interrupt,
        Duration::from_micros(100),
        Duration::from_millis(5),
        &what,
        || match rustix::fs::open(
            path,
            OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NXIO | Errno::INTR) => Ok(None),
            Err(e) => Err(Error::os(e, "open", &what)),
        },
    )?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::os(e, "fstat", &what))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Fifo {
        return Err(Error::OsMsg {
            errno: Errno::INVAL,
            msg: "not a FIFO".into(),
            what,
        });
    }
    Ok(PipeWriter(End::new(fd, what, true)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::Uninterrupted;
    use std::time::Duration;

    #[test]
    fn fifo_open_times_out() {
        let dir = std::env::temp_dir().join(format!("fastipc-test-fifo-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        mkfifo(&dir, 0o600).unwrap();
        let r = open_fifo_reader(&dir, Some(Duration::from_millis(60)), &mut Uninterrupted);
        assert!(matches!(r, Err(Error::Timeout { .. })));
        let w = open_fifo_writer(&dir, Some(Duration::from_millis(30)), &mut Uninterrupted);
        assert!(matches!(w, Err(Error::Timeout { .. })));
        std::fs::remove_file(&dir).unwrap();
    }
}
