//! System V message queues, with typed retrieval.
//!
//! `msgrcv` and `msgsnd` have no descriptor to poll and no timeout, so a wait is a loop of
//! `IPC_NOWAIT` attempts with exponential backoff from 20 µs up to 2 ms: a message that arrives
//! while a receiver waits is taken at most about 2 ms later, and an idle waiter wakes about 500
//! times a second. Interrupt checks and the deadline are honoured between attempts.

use std::ffi::CString;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rustix::io::Errno;

use crate::error::{Error, PyRepr, Result};
use crate::pipe::read_proc_number;
use crate::sys::sysvmsg as sys;
use crate::wait::{backoff, Deadline, Interrupt};

pub use sys::Stat;

const FIRST: Duration = Duration::from_micros(20);
const CAP: Duration = Duration::from_millis(2);

/// `ftok(path, project_id)`: the key a C program computes from the same path and id.
pub fn ftok(path: &Path, project_id: i32) -> Result<i32> {
    let what = path.display().to_string();
    if !(1..=255).contains(&project_id) {
        return Err(Error::Invalid(format!(
            "project_id must be from 1 to 255 (ftok uses its low 8 bits, and 0 is reserved), not {project_id}"
        )));
    }
    let cpath = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Invalid(format!("NUL byte in path {}", PyRepr(&what))))?;
    sys::ftok(&cpath, project_id).map_err(|e| Error::os(e, "ftok", &what))
}

/// The most bytes one message may carry here (`/proc/sys/kernel/msgmax`).
pub fn max_message_size() -> usize {
    read_proc_number("/proc/sys/kernel/msgmax")
        .map_or(8192, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// A System V message queue.
#[derive(Debug)]
pub struct SysVQueue {
    id: i32,
    key: i32,
    what: String,
    closed: AtomicBool,
    rx: Mutex<Option<sys::MsgBuf>>,
}

impl std::fmt::Debug for sys::MsgBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MsgBuf({})", self.capacity())
    }
}

impl SysVQueue {
    /// Opens the queue of `key` (`None`: a new private queue, `IPC_PRIVATE`), creating it
    /// exclusively with `mode` when `create` is true.
    pub fn open(key: Option<i32>, create: bool, mode: u32) -> Result<SysVQueue> {
        let what = match key {
            Some(k) => format!("key 0x{k:08x}"),
            None => "IPC_PRIVATE".to_string(),
        };
        let raw_key = key.unwrap_or(libc::IPC_PRIVATE);
        if key.is_none() && !create {
            return Err(Error::Invalid(
                "a private queue (no key, path or project_id) must be created: pass create=True"
                    .into(),
            ));
        }
        if key == Some(libc::IPC_PRIVATE) && !create {
            return Err(Error::Invalid(
                "key 0 is IPC_PRIVATE: it cannot name an existing queue".into(),
            ));
        }
        // Nine permission bits: always an i32.
        let mut flags = i32::try_from(mode & 0o777).unwrap_or(0o600);
        if create {
            flags |= libc::IPC_CREAT | libc::IPC_EXCL;
        }
        let id = sys::get(raw_key, flags).map_err(|e| match e {
            Errno::NOSPC => Error::OsMsg {
                errno: e,
                msg: format!(
                    "too many System V message queues: /proc/sys/kernel/msgmni = {}",
                    read_proc_number("/proc/sys/kernel/msgmni").unwrap_or(0)
                ),
                what: what.clone(),
            },
            Errno::NOSYS => Error::NotSupported(format!(
                "System V message queues are not available ({what})"
            )),
            e => Error::os(e, "msgget", &what),
        })?;
        Ok(SysVQueue {
            id,
            key: raw_key,
            what: format!("{what} (id {id})"),
            closed: AtomicBool::new(false),
            rx: Mutex::new(None),
        })
    }

    /// The key (0 for a private queue).
    pub fn key(&self) -> i32 {
        self.key
    }

    /// The kernel's queue id.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// A description for messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Marks the object closed: waits in other threads end with EBADF.
    pub fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    fn check_open(&self, op: &'static str) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::os(Errno::BADF, op, &self.what));
        }
        Ok(())
    }

    /// The queue's state (`msgctl(IPC_STAT)`).
    pub fn stat(&self) -> Result<Stat> {
        sys::stat(self.id).map_err(|e| Error::os(e, "msgctl", &self.what))
    }

    /// Removes the queue from the system (`IPC_RMID`): waiting senders and receivers, here and in
    /// other processes, fail with EIDRM.
    pub fn remove(&self) -> Result<()> {
        sys::remove(self.id).map_err(|e| Error::os(e, "msgctl(IPC_RMID)", &self.what))
    }

    /// Sends `data` as a message of type `mtype` (> 0), waiting while the queue is full.
    pub fn send(
        &self,
        data: &[u8],
        mtype: i64,
        timeout: Option<Duration>,
        interrupt: &mut dyn Interrupt,
    ) -> Result<()> {
        if mtype <= 0 {
            return Err(Error::Invalid(format!(
                "the message type must be positive, not {mtype} ({})",
                self.what
            )));
        }
        let limit = max_message_size();
        if data.len() > limit {
            return Err(Error::MessageTooLarge {
                size: data.len() as u64,
                limit: limit as u64,
                what: format!("{} (/proc/sys/kernel/msgmax)", self.what),
            });
        }
        let mut buf = sys::MsgBuf::new(data.len());
        buf.fill(mtype, data);
        backoff(
            Deadline::after(timeout),
            interrupt,
            FIRST,
            CAP,
            &self.what,
            || {
                self.check_open("msgsnd")?;
                match sys::send(self.id, &buf, data.len(), libc::IPC_NOWAIT) {
                    Ok(()) => Ok(Some(())),
                    Err(Errno::AGAIN | Errno::INTR) => Ok(None),
                    Err(Errno::INVAL)
                        if data.len()
                            > self.stat().map_or(usize::MAX, |s| {
                                usize::try_from(s.max_bytes).unwrap_or(usize::MAX)
                            }) =>
                    {
                        Err(Error::MessageTooLarge {
                            size: data.len() as u64,
                            limit: self.stat().map_or(0, |s| s.max_bytes),
                            what: format!("{} (the queue's msg_qbytes)", self.what),
                        })
                    }
                    Err(e) => Err(Error::os(e, "msgsnd", &self.what)),
                }
            },
        )
    }

    /// Receives a message: `mtype` 0 takes the first message, a positive type the first of that
    /// type, a negative type the first of the lowest type up to its absolute value. Returns
    /// `(bytes, type)`, waiting while there is none.
    pub fn receive(
        &self,
        mtype: i64,
        timeout: Option<Duration>,
        interrupt: &mut dyn Interrupt,
    ) -> Result<(Vec<u8>, i64)> {
        let mut slot = self.rx.lock().unwrap_or_else(PoisonError::into_inner);
        let buf = slot.get_or_insert_with(|| sys::MsgBuf::new(max_message_size()));
        backoff(
            Deadline::after(timeout),
            interrupt,
            FIRST,
            CAP,
            &self.what,
            || {
                self.check_open("msgrcv")?;
                match sys::receive(self.id, buf, mtype, libc::IPC_NOWAIT) {
                    Ok(n) => Ok(Some((buf.text(n).to_vec(), buf.mtype()))),
                    Err(Errno::NOMSG | Errno::AGAIN | Errno::INTR) => Ok(None),
                    Err(Errno::TOOBIG) => {
                        // A message larger than msgmax (the limit was lowered, or root's queue).
                        *buf = sys::MsgBuf::new(buf.capacity().saturating_mul(2).max(8192));
                        Ok(None)
                    }
                    Err(e) => Err(Error::os(e, "msgrcv", &self.what)),
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::Uninterrupted;

    #[test]
    fn typed_retrieval() {
        let q = SysVQueue::open(None, true, 0o600).unwrap();
        for (t, m) in [(3, "c"), (1, "a"), (2, "b"), (1, "a2")] {
            q.send(m.as_bytes(), t, None, &mut Uninterrupted).unwrap();
        }
        let t0 = Some(Duration::ZERO);
        assert_eq!(
            q.receive(2, t0, &mut Uninterrupted).unwrap(),
            (b"b".to_vec(), 2)
        );
        assert_eq!(
            q.receive(-3, t0, &mut Uninterrupted).unwrap(),
            (b"a".to_vec(), 1)
        );
        assert_eq!(
            q.receive(0, t0, &mut Uninterrupted).unwrap(),
            (b"c".to_vec(), 3)
        );
        assert_eq!(
            q.receive(0, t0, &mut Uninterrupted).unwrap(),
            (b"a2".to_vec(), 1)
        );
        let r = q.receive(0, Some(Duration::from_millis(10)), &mut Uninterrupted);
        assert!(matches!(r, Err(Error::Timeout { .. })));
        q.remove().unwrap();
    }

    #[test]
    fn ftok_checks() {
        assert!(ftok(Path::new("/"), 0).is_err());
        assert!(ftok(Path::new("/"), 65).is_ok());
    }
}
