//! System V message queues (`msgget`, `msgsnd`, `msgrcv`, `msgctl`) and `ftok`.

use std::ffi::CStr;
use std::mem::size_of;

use rustix::io::Errno;

use super::last_errno;

/// `ftok(path, project_id)`.
pub fn ftok(path: &CStr, project_id: i32) -> Result<i32, Errno> {
    // SAFETY: `path` is NUL-terminated and only read.
    let key = unsafe { libc::ftok(path.as_ptr(), project_id) };
    if key == -1 {
        return Err(last_errno());
    }
    Ok(key)
}

/// `msgget(key, flags)`: the queue id.
pub fn get(key: i32, flags: i32) -> Result<i32, Errno> {
    // SAFETY: msgget takes plain integers.
    let id = unsafe { libc::msgget(key, flags) };
    if id < 0 {
        return Err(last_errno());
    }
    Ok(id)
}

/// `msgctl(id, IPC_RMID)`.
pub fn remove(id: i32) -> Result<(), Errno> {
    // SAFETY: IPC_RMID ignores the buffer argument; NULL is allowed.
    if unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) } < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// What `msgctl(IPC_STAT)` reports.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    /// Messages in the queue.
    pub messages: u64,
    /// Bytes in the queue.
    pub bytes: u64,
    /// Largest number of bytes the queue holds.
    pub max_bytes: u64,
    /// Pid of the last msgsnd.
    pub last_send_pid: i32,
    /// Pid of the last msgrcv.
    pub last_receive_pid: i32,
    /// Permission bits.
    pub mode: u32,
    /// Owner's uid.
    pub uid: u32,
}

/// `msgctl(id, IPC_STAT)`.
pub fn stat(id: i32) -> Result<Stat, Errno> {
    // SAFETY: msqid_ds is a plain struct of integers; all-zero bytes are a valid value.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is writable storage for one msqid_ds during the call.
    if unsafe { libc::msgctl(id, libc::IPC_STAT, &raw mut ds) } < 0 {
        return Err(last_errno());
    }
    Ok(Stat {
        messages: ds.msg_qnum as u64,
        bytes: ds.__msg_cbytes as u64,
        max_bytes: ds.msg_qbytes as u64,
        last_send_pid: ds.msg_lspid,
        last_receive_pid: ds.msg_lrpid,
        mode: u32::from(ds.msg_perm.mode) & 0o777,
        uid: ds.msg_perm.uid,
    })
}

const LONG: usize = size_of::<libc::c_long>();

/// A `struct msgbuf { long mtype; char mtext[]; }` of a given text capacity, aligned as a long.
pub struct MsgBuf {
    words: Vec<libc::c_long>,
    capacity: usize,
}

impl MsgBuf {
    /// A buffer able to carry `capacity` bytes of text.
    pub fn new(capacity: usize) -> MsgBuf {
        MsgBuf {
            words: vec![0; 1 + capacity.div_ceil(LONG)],
            capacity,
        }
    }

    /// The text capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The message type.
    // c_long is i32 on 32-bit targets: the conversion is not useless there.
    #[allow(clippy::useless_conversion)]
    pub fn mtype(&self) -> i64 {
        i64::from(self.words[0])
    }

    fn text_mut(&mut self) -> &mut [u8] {
        let capacity = self.capacity;
        let bytes = self.as_bytes_mut();
        &mut bytes[LONG..LONG + capacity]
    }

    fn as_bytes_mut(&mut self) -> &mut [u8] {
        let len = self.words.len() * LONG;
        // SAFETY: the Vec's storage is `len` initialised bytes (c_long has no padding and every
        // byte pattern is valid), borrowed mutably through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), len) }
    }

    /// The first `len` bytes of text.
    pub fn text(&mut self, len: usize) -> &[u8] {
        let len = len.min(self.capacity);
        &self.text_mut()[..len]
    }

    /// Fills type and text for sending (the text must fit).
    pub fn fill(&mut self, mtype: i64, text: &[u8]) {
        self.words[0] = mtype as libc::c_long;
        self.text_mut()[..text.len()].copy_from_slice(text);
    }
}

/// `msgsnd(id, buf, len, flags)` for the first `len` bytes of text.
pub fn send(id: i32, buf: &MsgBuf, len: usize, flags: i32) -> Result<(), Errno> {
    let len = len.min(buf.capacity);
    // SAFETY: `buf.words` holds an mtype followed by at least `len` bytes of text, read only.
    if unsafe { libc::msgsnd(id, buf.words.as_ptr().cast(), len, flags) } < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// `msgrcv(id, buf, capacity, mtype, flags)`: the length of the text received.
pub fn receive(id: i32, buf: &mut MsgBuf, mtype: i64, flags: i32) -> Result<usize, Errno> {
    // SAFETY: `buf.words` is writable storage for an mtype and `buf.capacity` bytes of text.
    let n = unsafe {
        libc::msgrcv(
            id,
            buf.words.as_mut_ptr().cast(),
            buf.capacity,
            mtype as libc::c_long,
            flags,
        )
    };
    usize::try_from(n).map_err(|_| last_errno())
}
