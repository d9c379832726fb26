//! The `fastipc._fastipc` extension module: thin bindings over the core.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::addr::Address;

use crate::socket::{self, Datagram, Kind, Stream, DEFAULT_MAX_MESSAGE};

mod aio;
mod auth;
mod blocking;
mod buffer;
mod build_info;
mod channel;
mod connection;
mod datagram;
mod errors;
mod fds;
mod filelock;
mod listener;
mod lock;
#[cfg(target_os = "linux")]
mod mqueue;
mod notify;
mod pipe;
mod queue;
mod ringhandle;
mod ringops;
mod ringpickle;
mod sem;
mod shm;
mod signals;
mod slot;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod sysvmq;
mod views;

use blocking::detached;
use connection::Connection;
use datagram::DatagramSocket;
use errors::IntoPy;
use listener::Listener;

/// `DEFAULT_MAX_MESSAGE` as the default of the `max_message` arguments, which are Python ints
/// (a negative one is a `ValueError`, not an `OverflowError`).
const MAX_MESSAGE_DEFAULT: i64 = {
    assert!(DEFAULT_MAX_MESSAGE <= i64::MAX.unsigned_abs());
    #[allow(clippy::cast_possible_wrap)] // in range: asserted at compile time just above
    let value = DEFAULT_MAX_MESSAGE as i64;
    value
};

/// A timeout argument in seconds.
pub(crate) fn timeout_arg(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    crate::wait::timeout_from_secs(timeout).py_err()
}

/// An address argument: `"host:port"`, `"unix:/path"`, `"tcp:host:port"` or `(host, port)`.
pub(crate) fn address_arg(obj: &Bound<'_, PyAny>) -> PyResult<Address> {
    if let Ok(text) = obj.cast::<PyString>() {
        return Address::parse(text.to_str()?).py_err();
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        // The messages are the fallback's, word for word (tests/test_error_messages.py).
        let bad = |why: &str| {
            format!(
                "invalid address {}: {why}",
                obj.repr()
                    .map_or_else(|_| "(...)".to_string(), |r| r.to_string())
            )
        };
        if tuple.len() != 2 {
            return Err(PyValueError::new_err(bad(
                "a tuple address is (host, port)",
            )));
        }
        let host_obj = tuple.get_item(0)?;
        let Ok(host) = host_obj.cast::<PyString>() else {
            return Err(PyTypeError::new_err(bad("the host must be a str")));
        };
        let port_obj = tuple.get_item(1)?;
        let port_int = match port_obj.cast::<pyo3::types::PyInt>() {
            Ok(int) if !port_obj.is_instance_of::<pyo3::types::PyBool>() => int,
            _ => return Err(PyTypeError::new_err(bad("the port must be an int"))),
        };
        // Any int out of range (however large) is a ValueError, as in the fallback.
        let port = port_int
            .extract::<u16>()
            .map_err(|_| PyValueError::new_err(bad("the port must be a number from 0 to 65535")))?;
        return Address::from_host_port(host.to_str()?, port).py_err();
    }
    Err(PyTypeError::new_err(format!(
        "an address is a str such as '127.0.0.1:5000' or a (host, port) tuple, not {}",
        obj.get_type().name()?
    )))
}

/// `allow_uids` / `allow_gids`: any iterable of ints (a list, set, generator, dict keys ...),
/// each from 0 to 2**32 - 1. A bool is refused, as the fallback refuses it. An empty one is a
/// `ValueError`: it would admit no one (None admits everyone).
fn ids_arg(name: &str, ids: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<u32>>> {
    let Some(ids) = ids else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for item in ids.try_iter()? {
        let item = item?;
        if item.is_instance_of::<pyo3::types::PyBool>()
            || !item.is_instance_of::<pyo3::types::PyInt>()
        {
            return Err(PyTypeError::new_err("user and group ids are ints"));
        }
        let id = item
            .extract::<u32>()
            .map_err(|_| PyOverflowError::new_err(format!("id {item} out of range")))?;
        out.push(id);
    }
    if out.is_empty() {
        return Err(PyValueError::new_err(empty_ids(name)));
    }
    Ok(Some(out))
}

fn empty_ids(name: &str) -> String {
    format!("{name} is empty: it would admit no one (None admits every id)")
}

fn kind_arg(kind: &str) -> PyResult<Kind> {
    Kind::parse(kind).py_err()
}

fn max_message_arg(max_message: i64) -> PyResult<u64> {
    u64::try_from(max_message)
        .ok()
        .filter(|&m| m > 0)
        .ok_or_else(|| PyValueError::new_err("max_message must be a positive number of bytes"))
}

fn warn_shared(py: Python<'_>, shared: bool, dir: &str) -> PyResult<()> {
    if !shared {
        return Ok(());
    }
    let category = py.get_type::<errors::SharedSocketDirWarning>();
    let msg = std::ffi::CString::new(format!(
        "socket directory {dir} is shared by every local user: interoperable, not private"
    ))
    .unwrap_or_default();
    PyErr::warn(py, &category, &msg, 2)
}

fn dir_of(path: Option<&std::path::Path>) -> String {
    path.and_then(|p| p.parent())
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Listens at `address`: a Listener for "stream"/"seqpacket", a `DatagramSocket` for "datagram".
#[pyfunction]
#[pyo3(signature = (address, *, kind="stream", backlog=128, socket_dir=None, max_message=MAX_MESSAGE_DEFAULT, allow_uids=None, allow_gids=None, authkey=None, handshake_timeout=1.0, allow_unauthenticated=false))]
#[allow(clippy::too_many_arguments)]
fn listen(
    py: Python<'_>,
    address: &Bound<'_, PyAny>,
    kind: &str,
    backlog: i32,
    socket_dir: Option<PathBuf>,
    max_message: i64,
    allow_uids: Option<&Bound<'_, PyAny>>,
    allow_gids: Option<&Bound<'_, PyAny>>,
    authkey: Option<&Bound<'_, PyAny>>,
    handshake_timeout: f64,
    allow_unauthenticated: bool,
) -> PyResult<Py<PyAny>> {
    let allow_uids = ids_arg("allow_uids", allow_uids)?;
    let allow_gids = ids_arg("allow_gids", allow_gids)?;
    let address = address_arg(address)?;
    let auth = auth::options(py, kind, authkey, handshake_timeout)?;
    let kind = kind_arg(kind)?;
    if let (Address::Ip { host, .. }, None) = (&address, &auth) {
        if kind != Kind::Datagram {
            let logical = address.logical("tcp");
            auth::refuse_exposed(py, host, &logical, allow_unauthenticated)?;
        }
    }
    let max_message = max_message_arg(max_message)?;
    let dir = socket_dir.as_deref();
    if kind == Kind::Datagram {
        let sock = py.detach(|| Datagram::bind(&address, dir)).py_err()?;
        warn_shared(py, sock.shared_dir(), &dir_of(sock.path()))?;
        return Ok(Py::new(py, DatagramSocket::wrap(sock))?.into_any());
    }
    let policy = match (allow_uids, allow_gids) {
        (None, None) => None,
        (uids, gids) => Some(socket::Policy {
            uids: uids.unwrap_or_default(),
            gids: gids.unwrap_or_default(),
        }),
    };
    let mut listener = py
        .detach(|| socket::Listener::bind(&address, kind, backlog, dir, max_message, policy))
        .py_err()?;
    if let Some(auth) = auth {
        listener.require_authkey(auth.key, auth.handshake_timeout);
    }
    warn_shared(py, listener.shared_dir(), &dir_of(listener.path()))?;
    Ok(Py::new(py, Listener::wrap(listener))?.into_any())
}

/// Connects to `address`: a Connection for "stream"/"seqpacket", a `DatagramSocket` for "datagram".
#[pyfunction]
#[pyo3(signature = (address, *, kind="stream", timeout=None, socket_dir=None, max_message=MAX_MESSAGE_DEFAULT, authkey=None))]
#[allow(clippy::too_many_arguments)]
fn connect(
    py: Python<'_>,
    address: &Bound<'_, PyAny>,
    kind: &str,
    timeout: Option<f64>,
    socket_dir: Option<PathBuf>,
    max_message: i64,
    authkey: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let start = std::time::Instant::now();
    let address = address_arg(address)?;
    let auth = auth::options(py, kind, authkey, 1.0)?;
    let kind = kind_arg(kind)?;
    let timeout = timeout_arg(timeout)?;
    let max_message = max_message_arg(max_message)?;
    let dir = socket_dir.as_deref();
    if kind == Kind::Datagram {
        let sock = py
            .detach(|| Datagram::connect_new(&address, dir))
            .py_err()?;
        warn_shared(py, sock.shared_dir(), &dir_of(sock.path()))?;
        return Ok(Py::new(py, DatagramSocket::wrap(sock))?.into_any());
    }
    let stream = detached(py, |check| {
        let stream = socket::connect(&address, kind, dir, max_message, timeout, check)?;
        if let Some(auth) = &auth {
            // What is left of `timeout`; a failure drops (closes) the connection.
            let left = timeout.map(|t| t.saturating_sub(start.elapsed()));
            crate::auth::client(&stream, &auth.key, left, check)?;
        }
        Ok(stream)
    })?;
    if stream.shared_dir() {
        let shown = crate::sockdir::choose(dir).0.display().to_string();
        warn_shared(py, true, &shown)?;
    }
    Ok(Py::new(py, Connection::wrap(stream))?.into_any())
}

/// Two connected sockets of `kind`.
#[pyfunction]
#[pyo3(signature = (kind="stream"))]
fn socketpair(py: Python<'_>, kind: &str) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
    let kind = kind_arg(kind)?;
    if kind == Kind::Datagram {
        let (a, b) = Datagram::pair().py_err()?;
        return Ok((
            Py::new(py, DatagramSocket::wrap(a))?.into_any(),
            Py::new(py, DatagramSocket::wrap(b))?.into_any(),
        ));
    }
    let (a, b) = Stream::pair(kind, DEFAULT_MAX_MESSAGE).py_err()?;
    Ok((
        Py::new(py, Connection::wrap(a))?.into_any(),
        Py::new(py, Connection::wrap(b))?.into_any(),
    ))
}

/// Refuses a socket that is not of the `expected` kind (`ValueError`), before anything about it
/// is changed. A socket of a type fastipc does not wrap is left to `socket::adopt` to refuse.
fn check_kind(fd: BorrowedFd<'_>, expected: Kind, peer: &str) -> PyResult<()> {
    use rustix::net::SocketType;
    let ty = rustix::net::sockopt::socket_type(fd)
        .map_err(|e| crate::error::Error::os(e, "getsockopt", peer))
        .py_err()?;
    let actual = if ty == SocketType::STREAM {
        Kind::Stream
    } else if ty == SocketType::SEQPACKET {
        Kind::SeqPacket
    } else if ty == SocketType::DGRAM {
        Kind::Datagram
    } else {
        return Ok(());
    };
    if actual == expected {
        return Ok(());
    }
    Err(PyValueError::new_err(format!(
        "{peer}: a {} socket, not {}",
        actual.name(),
        expected.name()
    )))
}

/// A Connection (stream or seqpacket) or `DatagramSocket` on a duplicate of `fd`, which stays
/// the caller's. `kind`, if given, is the kind the socket must be (`ValueError` otherwise).
/// `address` names the peer in errors and reprs.
#[pyfunction]
#[pyo3(signature = (fd, *, kind=None, address=None, max_message=MAX_MESSAGE_DEFAULT))]
fn fromfd(
    py: Python<'_>,
    fd: &Bound<'_, PyAny>,
    kind: Option<&str>,
    address: Option<String>,
    max_message: i64,
) -> PyResult<Py<PyAny>> {
    let raw: i32 = match fd.extract::<i32>() {
        Ok(n) => n,
        Err(_) => fd.call_method0("fileno")?.extract()?,
    };
    let kind = kind.map(kind_arg).transpose()?;
    let max_message = max_message_arg(max_message)?;
    let list = fds::FdList::extract(Some(&pyo3::types::PyList::new(py, [raw])?.into_any()))?;
    let borrowed = list.borrow();
    let dup = rustix::io::fcntl_dupfd_cloexec(borrowed[0], 0).map_err(|e| {
        PyOSError::new_err((
            e.raw_os_error(),
            crate::error::errno_text(e),
            format!("descriptor {raw}"),
        ))
    })?;
    let peer = address.unwrap_or_else(|| format!("fd:{raw}"));
    if let Some(expected) = kind {
        check_kind(dup.as_fd(), expected, &peer)?;
    }
    match socket::adopt(dup, peer, max_message).py_err()? {
        socket::Adopted::Stream(stream) => Ok(Py::new(py, Connection::wrap(stream))?.into_any()),
        socket::Adopted::Datagram(sock) => Ok(Py::new(py, DatagramSocket::wrap(sock))?.into_any()),
    }
}

/// What `address` means here, without touching the file system.
#[pyfunction]
#[pyo3(signature = (address, *, socket_dir=None))]
fn resolve(address: &Bound<'_, PyAny>, socket_dir: Option<PathBuf>) -> PyResult<String> {
    let address = address_arg(address)?;
    Ok(socket::describe(&address, socket_dir.as_deref()))
}

/// The socket directory used when none is given (not created by this call).
#[pyfunction]
fn default_socket_dir() -> String {
    crate::sockdir::choose(None).0.display().to_string()
}

// Free-threaded Python (3.13t and later): the module asks the interpreter to keep the GIL on
// (it re-enables it on import, with a RuntimeWarning). Nearly everything is ready to run without
// it: every class is `#[pyclass(frozen)]` with its state behind a `Mutex` or an atomic, the
// mutexes a blocking call holds are taken detached (`py.detach`), the statics are `PyOnceLock`s.
// One is not: `SharedMemory.buf` holds its `view` mutex while it creates the memoryview, an
// allocation that may start a stop-the-world collection, and a second thread waiting for that
// mutex while attached would never reach the pause (a deadlock only a free-threaded build can
// have). Until such waits detach (`MutexExt::lock_py_attached`) and the suite has run on a
// free-threaded interpreter, which these machines do not have, the GIL stays on. Such
// interpreters cannot load the abi3 wheel in any case: they build from the sdist.
#[pymodule(gil_used = true)]
fn _fastipc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("DEFAULT_MAX_MESSAGE", DEFAULT_MAX_MESSAGE)?;
    m.add("BACKEND", "rust")?;
    m.add_class::<Listener>()?;
    m.add_class::<Connection>()?;
    m.add_class::<DatagramSocket>()?;
    m.add_class::<shm::SharedMemory>()?;
    m.add_class::<sem::Semaphore>()?;
    m.add_class::<lock::Lock>()?;
    m.add_class::<queue::Queue>()?;
    m.add_class::<queue::JoinableQueue>()?;
    m.add_class::<channel::Channel>()?;
    m.add_class::<views::MessageView>()?;
    m.add_class::<views::Reservation>()?;
    m.add_function(wrap_pyfunction!(channel::channel, m)?)?;
    m.add_function(wrap_pyfunction!(listen, m)?)?;
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    m.add_function(wrap_pyfunction!(socketpair, m)?)?;
    m.add_function(wrap_pyfunction!(resolve, m)?)?;
    m.add_function(wrap_pyfunction!(fromfd, m)?)?;
    m.add("SCM_MAX_FD", socket::SCM_MAX_FD)?;
    m.add_function(wrap_pyfunction!(default_socket_dir, m)?)?;
    m.add_function(wrap_pyfunction!(build_info::build_info, m)?)?;
    add_classic(m)
}

/// Pipes, FIFOs, message queues, file locks and signals.
fn add_classic(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<pipe::PipeReader>()?;
    m.add_class::<pipe::PipeWriter>()?;
    m.add_class::<pipe::Fifo>()?;
    m.add_function(wrap_pyfunction!(pipe::pipe, m)?)?;
    m.add_class::<filelock::FileLock>()?;
    m.add_function(wrap_pyfunction!(signals::kill_and_wait, m)?)?;
    #[cfg(target_os = "linux")]
    {
        m.add_class::<mqueue::MessageQueue>()?;
        m.add_function(wrap_pyfunction!(mqueue::unlink_message_queue, m)?)?;
        m.add_class::<signals::SignalReceiver>()?;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        m.add_class::<sysvmq::SysVMessageQueue>()?;
        m.add_function(wrap_pyfunction!(sysvmq::ftok, m)?)?;
    }
    Ok(())
}
