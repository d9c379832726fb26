//! What one handle of a queue or channel end knows about itself, in this process only: whether it
//! was closed (waits in other threads end with EBADF at their next slice) and how many message
//! views and reservations of it are held (a handle cannot close under them).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rustix::io::Errno;

use crate::error::{Error, Result};

/// The process-local state of one handle.
#[derive(Debug, Default)]
pub struct Local {
    closed: AtomicBool,
    holds: AtomicUsize,
}

impl Local {
    /// Makes waits in other threads end (with EBADF) at their next slice.
    pub fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// `Error::Os(EBADF)` naming `what` once closed.
    pub fn check_open(&self, op: &'static str, what: &str) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::os(Errno::BADF, op, what));
        }
        Ok(())
    }

    /// A view or reservation was made.
    pub fn hold(&self) {
        self.holds.fetch_add(1, Ordering::AcqRel);
    }

    /// A view or reservation was released (once per [`Local::hold`]).
    pub fn unhold(&self) {
        let _ = self
            .holds
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Views and reservations held now.
    pub fn holds(&self) -> usize {
        self.holds.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::Local;

    #[test]
    fn closing_and_holding() {
        let local = Local::default();
        assert!(local.check_open("get", "queue").is_ok());
        local.hold();
        local.hold();
        local.unhold();
        assert_eq!(local.holds(), 1);
        local.unhold();
        local.unhold(); // never below zero
        assert_eq!(local.holds(), 0);
        local.mark_closed();
        let err = local.check_open("get", "queue").unwrap_err();
        assert_eq!(err.errno(), Some(rustix::io::Errno::BADF));
    }
}
