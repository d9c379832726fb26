//! `mkfifo` where rustix has no `mkfifoat` (Apple platforms).

use std::ffi::CStr;

use rustix::io::Errno;

use super::last_errno;

/// `mkfifo(path, mode)`.
pub fn mkfifo(path: &CStr, mode: u32) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated and only read during the call.
    if unsafe { libc::mkfifo(path.as_ptr(), mode as libc::mode_t) } < 0 {
        return Err(last_errno());
    }
    Ok(())
}
