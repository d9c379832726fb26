//! The two sides of the handshake over a [`Stream`], every step under one deadline.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::socket::{Incoming, Stream};
use crate::wait::{Deadline, Interrupt, Wait};

use super::digest::{self, Digest, LEGACY_LENGTHS};
use super::{AuthKey, CHALLENGE, FAILURE, MAX_LENGTH, MESSAGE_LENGTH, WELCOME};

/// A connection during the handshake: its sends and receives share one deadline.
struct Channel<'a> {
    stream: &'a Stream,
    deadline: Deadline,
    /// Ends the handshake with `EBADF` when set (a listener closed by another thread).
    closed: Option<&'a AtomicBool>,
    interrupt: &'a mut dyn Interrupt,
}

impl<'a> Channel<'a> {
    fn new(
        stream: &'a Stream,
        deadline: Deadline,
        closed: Option<&'a AtomicBool>,
        interrupt: &'a mut dyn Interrupt,
    ) -> Channel<'a> {
        Channel {
            stream,
            deadline,
            closed,
            interrupt,
        }
    }

    fn wait(&mut self) -> Wait<'_> {
        Wait {
            deadline: self.deadline,
            interrupt: &mut *self.interrupt,
            closed: self.closed,
            sliced_fd: true,
        }
    }

    fn send(&mut self, message: &[u8]) -> Result<()> {
        let stream = self.stream;
        stream.send_message_within(message, &[], &mut self.wait())
    }

    /// One message of at most [`MAX_LENGTH`] bytes: a longer length prefix is
    /// [`Error::MessageTooLarge`], and nothing is allocated for it.
    fn recv(&mut self) -> Result<Vec<u8>> {
        let stream = self.stream;
        let mut reader = stream.reader()?;
        let mut wait = self.wait();
        let message = match reader.next_message(Some(MAX_LENGTH), &mut wait)? {
            Incoming::Small(bytes) => bytes,
            Incoming::Large(len) => {
                // Within MAX_LENGTH: next_message refused anything longer.
                let mut out = vec![0u8; len];
                reader.read_payload(&mut out, &mut wait)?;
                out
            }
        };
        // Descriptors sent with a handshake message are closed, never handed on.
        drop(reader.take_fds());
        Ok(message)
    }

    /// Challenges the peer to prove it holds `key`: [`Error::Authentication`] if it does not
    /// (after telling it `#FAILURE#`).
    fn deliver_challenge(&mut self, key: &AuthKey) -> Result<()> {
        let mut random = [0u8; MESSAGE_LENGTH];
        super::random_bytes(&mut random)?;
        let challenge = digest::challenge(Digest::Sha256, &random);
        self.send(&[CHALLENGE, &challenge].concat())?;
        let answer = self.recv()?;
        match digest::verify(key.as_bytes(), &challenge, &answer) {
            Ok(()) => self.send(WELCOME),
            Err(refused) => {
                // The peer is told if it can be; the failure is what matters.
                let _ = self.send(FAILURE);
                Err(Error::Authentication(refused.to_string()))
            }
        }
    }

    /// Answers the peer's challenge: [`Error::Authentication`] if the peer sent none, or
    /// refused the answer.
    fn answer_challenge(&mut self, key: &AuthKey) -> Result<()> {
        let message = self.recv()?;
        let Some(challenge) = message.strip_prefix(CHALLENGE) else {
            return Err(Error::Authentication(
                "protocol error: the peer sent no challenge".into(),
            ));
        };
        if challenge.len() < LEGACY_LENGTHS[0] {
            return Err(Error::Authentication(format!(
                "challenge too short: {} bytes",
                challenge.len()
            )));
        }
        let answer = digest::response(key.as_bytes(), challenge)
            .map_err(|refused| Error::Authentication(refused.to_string()))?;
        self.send(&answer)?;
        if self.recv()? != WELCOME {
            return Err(Error::Authentication(
                "the peer rejected our answer: is the authkey the same?".into(),
            ));
        }
        Ok(())
    }
}

/// The listening side (challenge, then answer) on a connection just accepted, within
/// `timeout`. Any error means the peer failed: the caller closes the connection. The one to
/// pass on rather than count as the peer's is [`Error::Interrupted`].
pub fn server(
    stream: &Stream,
    key: &AuthKey,
    timeout: Option<Duration>,
    interrupt: &mut dyn Interrupt,
) -> Result<()> {
    server_watching(stream, key, Deadline::after(timeout), None, interrupt)
}

/// [`server`] until `deadline`, ending with `EBADF` once `closed` is set.
pub(crate) fn server_watching(
    stream: &Stream,
    key: &AuthKey,
    deadline: Deadline,
    closed: Option<&AtomicBool>,
    interrupt: &mut dyn Interrupt,
) -> Result<()> {
    let mut channel = Channel::new(stream, deadline, closed, interrupt);
    channel.deliver_challenge(key)?;
    channel.answer_challenge(key)
}

/// The connecting side (answer, then challenge), within `timeout`. A wrong key, or a peer that
/// does not speak the handshake (it closes, or sends something else or too much), is
/// [`Error::Authentication`]; a deadline that passes is [`Error::Timeout`]. After an error the
/// caller closes the connection.
pub fn client(
    stream: &Stream,
    key: &AuthKey,
    timeout: Option<Duration>,
    interrupt: &mut dyn Interrupt,
) -> Result<()> {
    let mut channel = Channel::new(stream, Deadline::after(timeout), None, interrupt);
    let result = channel
        .answer_challenge(key)
        .and_then(|()| channel.deliver_challenge(key));
    result.map_err(|e| match e {
        Error::Eof { .. } | Error::Truncated { .. } | Error::MessageTooLarge { .. } => {
            Error::Authentication(format!("authentication failed: {e}"))
        }
        Error::Os { errno, .. } if errno == Errno::BADMSG => {
            Error::Authentication(format!("authentication failed: {e}"))
        }
        e => e,
    })
}
