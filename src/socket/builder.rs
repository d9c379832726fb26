//! The short Rust API: one-argument constructors, a small builder with fastipc's defaults
//! ([`SocketOptions`]), and blocking sends and receives of plain bytes.

use std::path::PathBuf;
use std::time::Duration;

use crate::addr::Address;
use crate::auth::{self, AuthKey, HANDSHAKE_TIMEOUT};
use crate::error::Result;
use crate::wait::Uninterrupted;

use super::listener::Listener;
use super::stream::Stream;
use super::{Kind, DEFAULT_MAX_MESSAGE};

/// The listen backlog of the short API, as in Python's `fastipc.listen`.
pub const DEFAULT_BACKLOG: i32 = 128;

/// Options of a connection or a listener, starting from fastipc's defaults.
///
/// The full functions ([`connect`](super::connect), [`Listener::bind`], [`Listener::accept`],
/// [`Stream::send_message`], [`Stream::recv_message`]) take every option and an
/// [`Interrupt`](crate::wait::Interrupt) check, as the Python bindings need. A Rust program
/// usually wants the defaults that `fastipc.connect` and `fastipc.listen` have in Python:
///
/// | option                 | default                                                   |
/// |------------------------|-----------------------------------------------------------|
/// | kind                   | [`Kind::Stream`]                                          |
/// | socket directory       | chosen as [`crate::sockdir::choose`] says                 |
/// | largest message        | [`DEFAULT_MAX_MESSAGE`] (64 MiB)                          |
/// | timeout of a `connect` | none: wait as long as it takes                            |
/// | listen backlog         | [`DEFAULT_BACKLOG`] (128)                                 |
/// | interrupt check        | none ([`Uninterrupted`])                                  |
/// | authkey                | none: no handshake                                        |
/// | handshake timeout      | [`HANDSHAKE_TIMEOUT`] (1 s per peer, for a listener)      |
///
/// ```
/// use fastipc::SocketOptions;
///
/// # fn main() -> fastipc::Result<()> {
/// // A socket directory of this example's own; most programs keep the default one.
/// let dir = std::env::temp_dir().join(format!("fastipc-doc-{}", std::process::id()));
/// let options = SocketOptions::new().socket_dir(&dir);
/// let listener = options.listen("127.0.0.1:0")?; // port 0: a free one
/// let address = listener.address().to_string(); // "127.0.0.1:<the port>"
/// let client = std::thread::spawn(move || -> fastipc::Result<Vec<u8>> {
///     let conn = options.connect(&address)?;
///     conn.send_bytes(b"ping")?;
///     conn.recv_bytes()
/// });
/// let conn = listener.incoming().next().expect("incoming never ends")?;
/// let message = conn.recv_bytes()?;
/// conn.send_bytes(&message.iter().rev().copied().collect::<Vec<u8>>())?;
/// assert_eq!(client.join().expect("the client thread")?, b"gnip");
/// drop(listener); // unlinks its socket file and its lock file
/// std::fs::remove_dir(&dir).ok();
/// # Ok(())
/// # }
/// ```
///
/// With other options:
///
/// ```no_run
/// use std::time::Duration;
/// use fastipc::{Kind, SocketOptions};
///
/// # fn main() -> fastipc::Result<()> {
/// let conn = SocketOptions::new()
///     .timeout(Duration::from_secs(5))
///     .socket_dir("/run/myapp")
///     .connect("127.0.0.1:5000")?;
/// let listener = SocketOptions::new()
///     .kind(Kind::SeqPacket)
///     .max_message(1 << 20)
///     .listen("unix:/run/myapp/jobs.sock")?;
/// // The handshake of multiprocessing.connection: Python's
/// // fastipc.connect("127.0.0.1:6000", authkey=b"secret") passes it.
/// let key = fastipc::AuthKey::new(*b"secret")?;
/// let authenticated = SocketOptions::new().authkey(key).listen("127.0.0.1:6000")?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct SocketOptions {
    kind: Kind,
    socket_dir: Option<PathBuf>,
    max_message: u64,
    timeout: Option<Duration>,
    backlog: i32,
    authkey: Option<AuthKey>,
    handshake_timeout: Duration,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            kind: Kind::Stream,
            socket_dir: None,
            max_message: DEFAULT_MAX_MESSAGE,
            timeout: None,
            backlog: DEFAULT_BACKLOG,
            authkey: None,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }
}

impl SocketOptions {
    /// The defaults.
    pub fn new() -> SocketOptions {
        SocketOptions::default()
    }

    /// [`Kind::Stream`] (the default) or [`Kind::SeqPacket`]; datagram sockets are
    /// [`crate::Datagram`]s, and asking for one here makes `connect` and `listen` fail with
    /// [`crate::Error::Invalid`].
    pub fn kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    /// The socket directory that remapped loopback addresses (`127.0.0.1:5000`) live in,
    /// instead of the one [`crate::sockdir::choose`] picks.
    pub fn socket_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.socket_dir = Some(dir.into());
        self
    }

    /// The largest message a connection accepts from its peer (a longer one is
    /// [`crate::Error::MessageTooLarge`]).
    pub fn max_message(mut self, limit: u64) -> Self {
        self.max_message = limit;
        self
    }

    /// How long `connect` waits for the listener to accept ([`crate::Error::Timeout`] then).
    /// Sends and receives have their own timeout: [`Stream::set_timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The listen backlog.
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog;
        self
    }

    /// The key of the `authkey` handshake of Python's `multiprocessing.connection`
    /// ([`crate::auth`]): a client proves it holds the key and checks that the listener does
    /// ([`crate::Error::Authentication`] if not); a listener accepts only peers that pass.
    /// It authenticates; it does not encrypt.
    pub fn authkey(mut self, key: AuthKey) -> Self {
        self.authkey = Some(key);
        self
    }

    /// How long a listener with an [`authkey`](Self::authkey) gives each peer to pass the
    /// handshake ([`HANDSHAKE_TIMEOUT`] by default): a peer that is slower is refused.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Connects to `address` (in the forms of [`crate::addr`]), then passes the handshake if
    /// there is an [`authkey`](Self::authkey), all within the [`timeout`](Self::timeout).
    pub fn connect(&self, address: &str) -> Result<Stream> {
        let deadline = crate::wait::Deadline::after(self.timeout);
        let stream = super::connect(
            &Address::parse(address)?,
            self.kind,
            self.socket_dir.as_deref(),
            self.max_message,
            self.timeout,
            &mut Uninterrupted,
        )?;
        if let Some(key) = &self.authkey {
            auth::client(&stream, key, deadline.remaining(), &mut Uninterrupted)?;
        }
        Ok(stream)
    }

    /// Binds and listens at `address`; anyone who can reach the socket may connect, except on
    /// abstract addresses (`unix:@name`), which admit the caller's own user only (the full
    /// [`Listener::bind`] takes a [`super::Policy`]). With an [`authkey`](Self::authkey),
    /// [`Listener::accept`] returns only peers that pass the handshake.
    pub fn listen(&self, address: &str) -> Result<Listener> {
        let mut listener = Listener::bind(
            &Address::parse(address)?,
            self.kind,
            self.backlog,
            self.socket_dir.as_deref(),
            self.max_message,
            None,
        )?;
        if let Some(key) = &self.authkey {
            listener.require_authkey(key.clone(), Some(self.handshake_timeout));
        }
        Ok(listener)
    }
}

impl Stream {
    /// Connects to `address` with the defaults ([`SocketOptions::new`]).
    ///
    /// ```no_run
    /// # fn main() -> fastipc::Result<()> {
    /// let conn = fastipc::Stream::connect("127.0.0.1:5000")?;
    /// conn.send_bytes(b"hello")?;
    /// let reply: Vec<u8> = conn.recv_bytes()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect(address: &str) -> Result<Stream> {
        SocketOptions::new().connect(address)
    }

    /// Sends `data` as one framed message (Python's `Connection.send_bytes`), waiting as long as
    /// the stream's timeout allows ([`Stream::set_timeout`]; none by default).
    pub fn send_bytes(&self, data: &[u8]) -> Result<()> {
        self.send_message(data, &[], &mut Uninterrupted)
    }

    /// Receives one whole message (Python's `Connection.recv_bytes`), waiting as long as the
    /// stream's timeout allows. At a clean end of the connection: [`crate::Error::Eof`];
    /// descriptors that came with the message are closed.
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.recv_message(None, &mut Uninterrupted)
    }
}

impl Listener {
    /// Binds and listens at `address` with the defaults ([`SocketOptions::new`]).
    ///
    /// ```no_run
    /// # fn main() -> fastipc::Result<()> {
    /// let listener = fastipc::Listener::listen("127.0.0.1:5000")?;
    /// for conn in listener.incoming() {
    ///     let conn = conn?;
    ///     let request = conn.recv_bytes()?;
    ///     conn.send_bytes(&request)?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn listen(address: &str) -> Result<Listener> {
        SocketOptions::new().listen(address)
    }

    /// The connections as they come: each item waits for one, as long as it takes, and accepts
    /// it. The iterator never ends; an error is an item, and the next one accepts again. For a
    /// wait with a deadline: [`Listener::accept`]`(Some(timeout), &mut Uninterrupted)`.
    pub fn incoming(&self) -> Connections<'_> {
        Connections { listener: self }
    }
}

/// The iterator of [`Listener::incoming`].
#[derive(Debug)]
pub struct Connections<'a> {
    listener: &'a Listener,
}

impl Iterator for Connections<'_> {
    type Item = Result<Stream>;

    fn next(&mut self) -> Option<Result<Stream>> {
        Some(self.listener.accept(None, &mut Uninterrupted))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::thread;

    use super::*;
    use crate::error::Error;

    /// A socket directory of its own for each test (created 0700 by the first listener),
    /// removed with whatever is left in it.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let path = std::env::temp_dir().join(format!(
                "fastipc-test-builder-{name}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&path);
            Dir(path)
        }

        fn options(&self) -> SocketOptions {
            SocketOptions::new().socket_dir(&self.0)
        }

        fn entries(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.0)
                .map(|it| {
                    it.filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn reversed(data: &[u8]) -> Vec<u8> {
        data.iter().rev().copied().collect()
    }

    #[test]
    fn defaults_are_those_of_python() {
        let options = SocketOptions::new();
        assert_eq!(options, SocketOptions::default());
        assert_eq!(options.kind, Kind::Stream);
        assert_eq!(options.socket_dir, None);
        assert_eq!(options.max_message, 64 * 1024 * 1024);
        assert_eq!(options.timeout, None);
        assert_eq!(options.backlog, 128);
        assert_eq!(options.authkey, None);
        assert_eq!(options.handshake_timeout, Duration::from_secs(1));
        let set = options
            .kind(Kind::SeqPacket)
            .socket_dir("/d")
            .max_message(7)
            .timeout(Duration::from_millis(5))
            .backlog(3);
        assert_eq!(set.kind, Kind::SeqPacket);
        assert_eq!(set.socket_dir.as_deref(), Some(Path::new("/d")));
        assert_eq!(set.max_message, 7);
        assert_eq!(set.timeout, Some(Duration::from_millis(5)));
        assert_eq!(set.backlog, 3);
    }

    #[test]
    fn round_trip_through_a_remapped_address() {
        let dir = Dir::new("round-trip");
        let listener = dir.options().listen("127.0.0.1:0").expect("listen");
        let address = listener.address().to_string();
        let port = address
            .strip_prefix("127.0.0.1:")
            .expect("a remapped address");
        assert_eq!(
            listener.path(),
            Some(dir.0.join(format!("127.0.0.1:{port}")).as_path())
        );
        assert_eq!(
            dir.entries(),
            [address.clone(), format!("{address}.lock")].as_slice()
        );
        let big = vec![0xa5u8; 100_000];
        let client = {
            let options = dir.options();
            let big = big.clone();
            thread::spawn(move || -> Result<Vec<Vec<u8>>> {
                let conn = options.connect(&address)?;
                let mut replies = Vec::new();
                for message in [&b"one"[..], b"", &big] {
                    conn.send_bytes(message)?;
                    replies.push(conn.recv_bytes()?);
                }
                Ok(replies)
            })
        };
        let conn = listener
            .incoming()
            .next()
            .expect("incoming never ends")
            .expect("accept");
        let mut served = 0;
        loop {
            match conn.recv_bytes() {
                Ok(message) => conn.send_bytes(&reversed(&message)).expect("send"),
                Err(Error::Eof { .. }) => break,
                Err(e) => panic!("recv: {e}"),
            }
            served += 1;
        }
        let replies = client.join().expect("client thread").expect("client");
        assert_eq!(served, 3);
        assert_eq!(replies, [b"eno".to_vec(), Vec::new(), reversed(&big)]);
        drop(conn);
        drop(listener);
        assert_eq!(dir.entries(), Vec::<String>::new());
    }

    #[test]
    fn incoming_accepts_one_connection_per_item() {
        let dir = Dir::new("incoming");
        let listener = dir
            .options()
            .kind(Kind::SeqPacket)
            .listen("127.0.0.1:0")
            .expect("listen");
        let options = dir.options().kind(Kind::SeqPacket);
        let address = listener.address().to_string();
        let clients = thread::spawn(move || -> Result<Vec<u8>> {
            let mut got = Vec::new();
            for i in 0..3u8 {
                let conn = options.connect(&address)?;
                conn.send_bytes(&[i])?;
                got.extend(conn.recv_bytes()?);
            }
            Ok(got)
        });
        for conn in listener.incoming().take(3) {
            let conn = conn.expect("accept");
            assert_eq!(conn.kind(), Kind::SeqPacket);
            let message = conn.recv_bytes().expect("recv");
            conn.send_bytes(&[message[0] + 10]).expect("send");
        }
        assert_eq!(
            clients.join().expect("thread").expect("clients"),
            [10, 11, 12]
        );
    }

    #[test]
    fn the_limits_and_the_timeout_are_applied() {
        let dir = Dir::new("limits");
        let listener = dir
            .options()
            .max_message(4)
            .listen("127.0.0.1:0")
            .expect("listen");
        assert_eq!(listener.max_message(), 4);
        let conn = dir
            .options()
            .max_message(5)
            .timeout(Duration::from_secs(5))
            .connect(listener.address())
            .expect("connect");
        assert_eq!(conn.max_message(), 5);
        let served = listener
            .incoming()
            .next()
            .expect("never ends")
            .expect("accept");
        conn.send_bytes(b"12345").expect("send");
        assert!(matches!(
            served.recv_bytes(),
            Err(Error::MessageTooLarge {
                size: 5,
                limit: 4,
                ..
            })
        ));
    }

    #[test]
    fn errors_name_the_address() {
        let dir = Dir::new("errors");
        std::fs::create_dir(&dir.0).expect("mkdir");
        let missing = dir.options().connect("127.0.0.1:5");
        assert!(
            matches!(&missing, Err(Error::Os { errno, op: "connect", what })
                if *errno == rustix::io::Errno::NOENT && what == "127.0.0.1:5"),
            "{missing:?}"
        );
        assert!(matches!(
            Stream::connect("127.0.0.1:"),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            Listener::listen("no port"),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            dir.options().kind(Kind::Datagram).listen("127.0.0.1:0"),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            dir.options().kind(Kind::Datagram).connect("127.0.0.1:5"),
            Err(Error::Invalid(_))
        ));
    }
}
