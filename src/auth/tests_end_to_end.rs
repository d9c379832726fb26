//! The handshake end to end: both sides in Rust, a peer speaking the legacy form of Python
//! 3.11 by hand, and listeners that wrong, silent and hostile peers cannot stop.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use super::digest::{self, Digest};
use super::*;
use crate::socket::{Kind, Stream, DEFAULT_MAX_MESSAGE};
use crate::wait::Uninterrupted;
use crate::SocketOptions;

fn key(bytes: &[u8]) -> AuthKey {
    AuthKey::new(bytes).expect("a key")
}

fn pair() -> (Stream, Stream) {
    Stream::pair(Kind::Stream, DEFAULT_MAX_MESSAGE).expect("socketpair")
}

fn send(s: &Stream, message: &[u8]) {
    s.send_bytes(message).expect("send");
}

fn recv(s: &Stream) -> Vec<u8> {
    s.recv_bytes().expect("recv")
}

const FIVE: Option<Duration> = Some(Duration::from_secs(5));

#[test]
fn same_key_both_ways_then_messages_flow() {
    for kind in [Kind::Stream, Kind::SeqPacket] {
        let (a, b) = Stream::pair(kind, DEFAULT_MAX_MESSAGE).expect("pair");
        let server =
            thread::spawn(move || server(&a, &key(b"k"), FIVE, &mut Uninterrupted).map(|()| a));
        client(&b, &key(b"k"), FIVE, &mut Uninterrupted).expect("client");
        let a = server.join().expect("thread").expect("server");
        send(&b, b"after");
        assert_eq!(recv(&a), b"after");
    }
}

#[test]
fn the_wrong_key_fails_on_both_sides() {
    let (a, b) = pair();
    let server = thread::spawn(move || server(&a, &key(b"right"), FIVE, &mut Uninterrupted));
    let refused = client(&b, &key(b"wrong"), FIVE, &mut Uninterrupted);
    assert!(
        matches!(&refused, Err(Error::Authentication(m))
            if m == "the peer rejected our answer: is the authkey the same?"),
        "{refused:?}"
    );
    let failed = server.join().expect("thread");
    assert!(
        matches!(&failed, Err(Error::Authentication(m))
            if m == "the peer's answer to the challenge was wrong"),
        "{failed:?}"
    );
}

/// The side of Python 3.11's `Listener`: a 20-byte challenge without prefix, answered with a
/// bare HMAC-MD5; then it answers fastipc's `{sha256}` challenge with a bare HMAC-MD5 too.
#[test]
fn a_legacy_peer_is_answered_and_accepted() {
    let (a, b) = pair();
    let client = thread::spawn(move || client(&b, &key(b"k"), FIVE, &mut Uninterrupted));
    let legacy: Vec<u8> = (0..20).collect();
    send(&a, &[CHALLENGE, &legacy].concat());
    assert_eq!(recv(&a), Digest::Md5.mac(b"k", &legacy));
    send(&a, WELCOME);
    let challenge = recv(&a);
    let challenge = challenge.strip_prefix(CHALLENGE).expect("a challenge");
    assert_eq!(challenge.len(), "{sha256}".len() + MESSAGE_LENGTH);
    assert!(challenge.starts_with(b"{sha256}"));
    send(&a, &Digest::Md5.mac(b"k", challenge));
    assert_eq!(recv(&a), WELCOME);
    client.join().expect("thread").expect("client");
}

#[test]
fn the_answer_is_pythons_for_every_digest() {
    for digest in Digest::ALL {
        let (a, b) = pair();
        let client = thread::spawn(move || client(&b, &key(b"k"), FIVE, &mut Uninterrupted));
        let challenge = digest::challenge(digest, &[9; 40]);
        send(&a, &[CHALLENGE, &challenge].concat());
        let mut expected = digest::challenge(digest, &[]);
        expected.extend(digest.mac(b"k", &challenge));
        assert_eq!(recv(&a), expected, "{digest:?}");
        send(&a, FAILURE);
        drop(a);
        assert!(matches!(
            client.join().expect("thread"),
            Err(Error::Authentication(_))
        ));
    }
}

#[test]
fn a_client_meeting_no_handshake_gets_authentication_errors() {
    let cases: [(&[u8], &str); 3] = [
        (b"hello", "protocol error: the peer sent no challenge"),
        (b"#CHALLENGE#short", "challenge too short: 5 bytes"),
        (
            b"#CHALLENGE#{sha1}0123456789012345678",
            "unsupported handshake message (25 bytes): no known digest prefix",
        ),
    ];
    for (message, expected) in cases {
        let (a, b) = pair();
        send(&a, message);
        let got = client(&b, &key(b"k"), FIVE, &mut Uninterrupted);
        assert!(
            matches!(&got, Err(Error::Authentication(m)) if m == expected),
            "{got:?}"
        );
    }
    // A peer that closes, or announces a message over the limit.
    let (a, b) = pair();
    drop(a);
    let got = client(&b, &key(b"k"), FIVE, &mut Uninterrupted);
    assert!(
        matches!(&got, Err(Error::Authentication(m)) if m.starts_with("authentication failed: end of file")),
        "{got:?}"
    );
    let (a, b) = pair();
    a.send_all(&(1i32 << 30).to_be_bytes(), &mut Uninterrupted)
        .expect("send");
    let got = client(&b, &key(b"k"), FIVE, &mut Uninterrupted);
    assert!(
        matches!(&got, Err(Error::Authentication(m)) if m.starts_with("authentication failed: message of 1073741824 bytes is larger than the limit of 256 bytes")),
        "{got:?}"
    );
}

#[test]
fn a_silent_peer_times_out() {
    let (a, _b) = pair();
    let start = Instant::now();
    let got = server(
        &a,
        &key(b"k"),
        Some(Duration::from_millis(100)),
        &mut Uninterrupted,
    );
    assert!(matches!(got, Err(Error::Timeout { .. })), "{got:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

/// A socket directory of the test's own, removed with what is left in it.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let path =
            std::env::temp_dir().join(format!("fastipc-test-auth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_listener_refuses_wrong_silent_and_hostile_peers_and_goes_on() {
    let dir = Dir::new("listener");
    let options = SocketOptions::new().socket_dir(&dir.0).authkey(key(b"k"));
    let listener = options
        .clone()
        .handshake_timeout(Duration::from_millis(200))
        .listen("127.0.0.1:0")
        .expect("listen");
    let address = listener.address().to_string();
    let plain = SocketOptions::new().socket_dir(&dir.0);
    // Silent, a wrong key, a length prefix of 1 GiB: three refusals, then the right key.
    let silent = plain.connect(&address).expect("connect");
    let huge = plain.connect(&address).expect("connect");
    huge.send_all(&(1i32 << 30).to_be_bytes(), &mut Uninterrupted)
        .expect("send");
    let clients = {
        let (options, address) = (options.clone(), address.clone());
        thread::spawn(move || {
            let wrong = options.clone().authkey(key(b"wrong")).connect(&address);
            let right = options.connect(&address)?;
            right.send_bytes(b"through")?;
            Ok::<_, Error>((wrong, right))
        })
    };
    let conn = listener
        .accept(Some(Duration::from_secs(10)), &mut Uninterrupted)
        .expect("accept");
    assert_eq!(recv(&conn), b"through");
    let (wrong, _right) = clients.join().expect("thread").expect("clients");
    assert!(matches!(wrong, Err(Error::Authentication(_))), "{wrong:?}");
    assert_eq!(listener.refused(), 3);
    drop((silent, huge));
}

#[test]
fn a_handshake_never_outlasts_accepts_timeout() {
    let dir = Dir::new("outlast");
    let listener = SocketOptions::new()
        .socket_dir(&dir.0)
        .authkey(key(b"k"))
        .handshake_timeout(Duration::from_secs(30))
        .listen("127.0.0.1:0")
        .expect("listen");
    let _silent = SocketOptions::new()
        .socket_dir(&dir.0)
        .connect(listener.address())
        .expect("connect");
    let start = Instant::now();
    let got = listener.accept(Some(Duration::from_millis(300)), &mut Uninterrupted);
    assert!(matches!(got, Err(Error::Timeout { .. })), "{got:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(listener.refused(), 1);
}

#[test]
fn closing_a_listener_ends_a_handshake_in_progress() {
    let dir = Dir::new("close");
    let listener = std::sync::Arc::new(
        SocketOptions::new()
            .socket_dir(&dir.0)
            .authkey(key(b"k"))
            .handshake_timeout(Duration::from_secs(30))
            .listen("127.0.0.1:0")
            .expect("listen"),
    );
    let silent = SocketOptions::new()
        .socket_dir(&dir.0)
        .connect(listener.address())
        .expect("connect");
    let accepting = {
        let listener = listener.clone();
        thread::spawn(move || listener.accept(None, &mut Uninterrupted))
    };
    // The challenge arrives once the listener is in the handshake.
    let challenge = recv(&silent);
    assert!(challenge.starts_with(CHALLENGE));
    listener.mark_closed();
    let got = accepting.join().expect("thread");
    assert!(
        matches!(&got, Err(Error::Os { errno, .. }) if *errno == rustix::io::Errno::BADF),
        "{got:?}"
    );
    assert_eq!(listener.refused(), 0);
}
