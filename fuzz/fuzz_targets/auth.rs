//! The `authkey` handshake (`src/auth/`) on any bytes: the message parser says true things, an
//! answer it makes is one it accepts and no other, and either side of the handshake, fed a
//! hostile peer's bytes, fails with one of the protocol's errors (it cannot pass: the peer would
//! have to answer a random challenge).
#![no_main]

use std::time::Duration;

use fastipc::auth::digest::{parse, response, verify, Digest, Refused, LEGACY_LENGTHS};
use fastipc::auth::{client, server, AuthKey};
use fastipc::wait::Uninterrupted;
use fastipc::{Error, Kind, Stream};
use libfuzzer_sys::fuzz_target;

fn check_messages(key: &[u8], message: &[u8]) {
    match parse(message) {
        Ok((None, rest)) => {
            assert!(LEGACY_LENGTHS.contains(&message.len()));
            assert_eq!(rest, message);
        }
        Ok((Some(digest), rest)) => {
            let prefix = format!("{{{}}}", digest.name());
            assert!(message.starts_with(prefix.as_bytes()));
            assert_eq!(rest, &message[prefix.len()..]);
            assert!(Digest::ALL.contains(&digest));
        }
        Err(refused) => assert_eq!(refused, Refused::NoDigest(message.len())),
    }
    match response(key, message) {
        Ok(answer) => {
            assert!(parse(message).is_ok());
            assert_eq!(verify(key, message, &answer), Ok(()));
            let mut flipped = answer.clone();
            if let Some(last) = flipped.last_mut() {
                *last ^= 1;
            }
            assert!(verify(key, message, &flipped).is_err());
        }
        Err(refused) => assert_eq!(Err(refused), parse(message).map(|_| ())),
    }
    // Any answer at all: no panic, and only the two refusals.
    let _ = verify(key, message, message);
}

/// Whether `e` is one of the ways a handshake with a hostile peer may end.
fn protocol_error(e: &Error) -> bool {
    match e {
        Error::Authentication(_)
        | Error::Eof { .. }
        | Error::Truncated { .. }
        | Error::MessageTooLarge { .. } => true,
        Error::Os { errno, .. } => *errno == rustix::io::Errno::BADMSG,
        _ => false,
    }
}

fn check_side(as_server: bool, key: &AuthKey, peer_bytes: &[u8]) {
    let (ours, theirs) = Stream::pair(Kind::Stream, 1 << 20).expect("socketpair");
    theirs
        .send_all(peer_bytes, &mut Uninterrupted)
        .expect("send");
    theirs
        .shutdown(rustix::net::Shutdown::Write)
        .expect("shutdown");
    let timeout = Some(Duration::from_secs(5));
    let result = if as_server {
        server(&ours, key, timeout, &mut Uninterrupted)
    } else {
        client(&ours, key, timeout, &mut Uninterrupted)
    };
    match result {
        Ok(()) => panic!("a peer that cannot know the challenge passed"),
        Err(e) => assert!(protocol_error(&e), "{e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = (usize::from(split) % 64 + 1).min(rest.len());
    let (key, message) = rest.split_at(cut);
    let Ok(key_ok) = AuthKey::new(key) else {
        return;
    };
    check_messages(key, message);
    // The peer's bytes go into a socket buffer before the side runs: keep them well under it.
    if message.len() <= 4096 {
        check_side(split & 1 == 0, &key_ok, message);
    }
});
