//! `Connection`'s entry points for `fastipc.aio`: one attempt at a send or a receive, never
//! waiting (a receive on an idle loop aside, see [`super::Idle`]).

use pyo3::prelude::*;

use super::idle::NOT_IDLE;
use super::{try_send_arg, Idle};
use crate::py::connection::{limit_arg, Connection};
use crate::py::fds::{self, FdList};

impl Connection {
    /// One attempt at sending the frame of `buf[offset:offset+size]` with `fds` on it: 0 if
    /// nothing went, 1 if part of it did (the rest goes by `send_more`), 2 if all of it did.
    pub(crate) fn aio_try_send(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        (offset, size): (isize, Option<isize>),
        fds: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u8> {
        let fds = FdList::extract(fds)?;
        let stream = self.any_stream()?;
        try_send_arg(py, &self.aio, &stream, buf, (offset, size), &fds.borrow())
    }

    /// One attempt at receiving a message and its descriptors (`maxfds`: None closes them);
    /// None when it is not all there yet. With `readable` (the connection's
    /// `fastipc.aio._ready.Readiness`), a message not there yet is waited for in an idle
    /// loop's stead ([`Idle`]).
    pub(crate) fn aio_try_recv(
        &self,
        py: Python<'_>,
        maxlength: Option<i64>,
        maxfds: Option<usize>,
        readable: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let limit = limit_arg(maxlength)?;
        let stream = self.any_stream()?;
        let idle = match readable {
            Some(readable) => self.aio.idle(py, readable)?,
            None => NOT_IDLE,
        };
        let result = Idle::with(idle, |idle| self.aio.try_recv(py, &stream, limit, idle));
        let Some((bytes, fds)) = self.close_if_lost(py, result)? else {
            return Ok(None);
        };
        let Some(maxfds) = maxfds else {
            return Ok(Some(bytes.into_any()));
        };
        self.check_maxfds(&fds, maxfds)?;
        let pair = (bytes, fds::into_raw(fds)).into_pyobject(py)?;
        Ok(Some(pair.into_any().unbind()))
    }
}
