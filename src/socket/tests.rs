//! Streams end to end over socketpairs: descriptors tied to their messages, no descriptor leaked,
//! a receive resumed after a timeout, empty seqpacket messages.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use super::*;
use crate::error::Error;
use crate::frame;
use crate::wait::Uninterrupted;
use std::os::fd::AsRawFd;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

fn recv_with_fds(s: &Stream) -> (Vec<u8>, Vec<OwnedFd>) {
    let mut stop = Uninterrupted;
    let mut wait = s.wait(&mut stop);
    let mut reader = s.reader().expect("reader");
    let out = match reader.next_message(None, &mut wait).expect("message") {
        Incoming::Small(v) => v,
        Incoming::Large(len) => {
            let mut v = vec![0u8; len];
            reader.read_payload(&mut v, &mut wait).expect("payload");
            v
        }
    };
    (out, reader.take_fds())
}

#[test]
fn descriptors_stay_with_their_message() {
    let (a, b) = Stream::pair(Kind::Stream, DEFAULT_MAX_MESSAGE).expect("pair");
    let (r, w) = rustix::pipe::pipe().expect("pipe");
    let mut stop = Uninterrupted;
    // Several frames queued before the reader looks: its read-ahead covers all of them.
    a.send_message(b"one", &[], &mut stop).expect("send");
    a.send_message(b"two", &[r.as_fd()], &mut stop)
        .expect("send");
    a.send_message(b"three", &[], &mut stop).expect("send");
    a.send_message(&vec![7u8; 200_000], &[w.as_fd(), r.as_fd()], &mut stop)
        .expect("send");
    a.send_message(b"five", &[w.as_fd()], &mut stop)
        .expect("send");
    let counts: Vec<(usize, usize)> = (0..5)
        .map(|_| {
            let (message, fds) = recv_with_fds(&b);
            (message.len(), fds.len())
        })
        .collect();
    assert_eq!(counts, [(3, 0), (3, 1), (5, 0), (200_000, 2), (4, 1)]);
}

#[test]
fn unclaimed_descriptors_are_closed() {
    let (a, b) = Stream::pair(Kind::Stream, DEFAULT_MAX_MESSAGE).expect("pair");
    let (r, w) = rustix::pipe::pipe().expect("pipe");
    let before = open_fds();
    let mut stop = Uninterrupted;
    for _ in 0..10 {
        a.send_message(b"x", &[r.as_fd(), w.as_fd()], &mut stop)
            .expect("send");
        // recv_message does not ask for descriptors: they are closed, not leaked.
        assert_eq!(b.recv_message(None, &mut stop).expect("recv"), b"x");
    }
    assert_eq!(open_fds(), before);
    assert!(w.as_raw_fd() >= 0);
}

#[test]
fn too_many_descriptors_are_refused_before_sending() {
    let (a, _b) = Stream::pair(Kind::SeqPacket, DEFAULT_MAX_MESSAGE).expect("pair");
    let (r, _w) = rustix::pipe::pipe().expect("pipe");
    let many = vec![r.as_fd(); SCM_MAX_FD + 1];
    let err = a.send_message(b"x", &many, &mut Uninterrupted).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
}

#[test]
fn a_timeout_inside_a_message_loses_nothing() {
    let (a, b) = Stream::pair(Kind::Stream, DEFAULT_MAX_MESSAGE).expect("pair");
    b.set_timeout(Some(Duration::from_millis(20)));
    let mut stop = Uninterrupted;
    // 150 kB takes the large-message path yet fits the kernel's buffer while nobody reads.
    for size in [100usize, 150_000] {
        let message: Vec<u8> = (0..size)
            .map(|i| u8::try_from(i % 251).expect("below 251"))
            .collect();
        let mut header = [0u8; frame::LONG];
        let hlen = frame::encode_header(size as u64, &mut header);
        // Half a message, then the receiver times out, then the rest arrives.
        let mut first = header[..hlen].to_vec();
        first.extend_from_slice(&message[..size / 2]);
        a.send_all(&first, &mut stop).expect("send");
        let err = b.recv_message(None, &mut stop).unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        a.send_all(&message[size / 2..], &mut stop).expect("send");
        b.set_timeout(None);
        assert_eq!(b.recv_message(None, &mut stop).expect("recv"), message);
        b.set_timeout(Some(Duration::from_millis(20)));
    }
}

#[test]
fn empty_seqpacket_messages_are_not_end_of_file() {
    let (a, b) = Stream::pair(Kind::SeqPacket, DEFAULT_MAX_MESSAGE).expect("pair");
    let mut stop = Uninterrupted;
    a.send_message(b"", &[], &mut stop).expect("send");
    a.send_message(b"x", &[], &mut stop).expect("send");
    a.send_message(b"", &[], &mut stop).expect("send");
    drop(a);
    assert_eq!(b.recv_message(None, &mut stop).expect("empty"), b"");
    assert_eq!(b.recv_message(None, &mut stop).expect("x"), b"x");
    assert_eq!(
        b.recv_message(None, &mut stop).expect("empty before close"),
        b""
    );
    assert!(matches!(
        b.recv_message(None, &mut stop),
        Err(Error::Eof { .. })
    ));
}

#[test]
fn partial_writes_continue_and_descriptors_go_once_with_the_first_byte() {
    let (a, b) = Stream::pair(Kind::Stream, DEFAULT_MAX_MESSAGE).expect("pair");
    let (r, w) = rustix::pipe::pipe().expect("pipe");
    // Larger than any send buffer: the kernel takes it in several writes.
    let big: Vec<u8> = (0..12_000_000u32).map(|i| (i % 253) as u8).collect();
    let raw: Vec<u8> = (0..9_000_000u32).map(|i| (i % 241) as u8).collect();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut stop = Uninterrupted;
            a.send_message(&big, &[r.as_fd()], &mut stop).expect("send");
            a.send_with_fds(&raw, &[w.as_fd(), r.as_fd()], &mut stop)
                .expect("send raw");
            a.send_message(b"after", &[], &mut stop).expect("send");
        });
        let (message, fds) = recv_with_fds(&b);
        assert!(message == big, "the large message arrived changed");
        assert_eq!(fds.len(), 1);
        let mut stop = Uninterrupted;
        let mut wait = b.wait(&mut stop);
        let mut got = vec![0u8; raw.len()];
        let mut reader = b.reader().expect("reader");
        reader.read_exact(&mut got, &mut wait).expect("raw");
        assert!(got == raw, "the raw bytes arrived changed");
        assert_eq!(reader.take_fds().len(), 2);
        drop(reader);
        let (after, fds) = recv_with_fds(&b);
        assert_eq!((after.as_slice(), fds.len()), (&b"after"[..], 0));
    });
}

#[test]
fn a_small_message_is_sent_at_once_or_left_to_the_blocking_send() {
    let (a, b) = Stream::pair(Kind::Stream, DEFAULT_MAX_MESSAGE).expect("pair");
    let mut stop = Uninterrupted;
    let linux = cfg!(any(target_os = "linux", target_os = "android"));
    assert_eq!(a.try_send_message(b"now").expect("try"), linux);
    // Too large for the immediate path, or the send side taken by another sender: not sent.
    assert!(!a.try_send_message(&[1u8; 2000]).expect("large"));
    let held = a.tx.lock().expect("lock");
    assert!(!a.try_send_message(b"busy").expect("busy"));
    drop(held);
    if !linux {
        a.send_message(b"now", &[], &mut stop).expect("send");
    }
    assert_eq!(b.recv_message(None, &mut stop).expect("recv"), b"now");
    // A full socket buffer: refused without blocking; the stream stays whole.
    let mut sent = 0usize;
    while a.try_send_message(&[7u8; 1000]).expect("fill") {
        sent += 1;
    }
    if linux {
        assert!(sent > 0);
    }
    b.set_timeout(Some(Duration::from_secs(5)));
    for _ in 0..sent {
        assert_eq!(b.recv_message(None, &mut stop).expect("recv"), [7u8; 1000]);
    }
    let (sp, sb) = Stream::pair(Kind::SeqPacket, DEFAULT_MAX_MESSAGE).expect("pair");
    assert!(!sp.try_send_message(b"packet").expect("seqpacket"));
    drop(sb);
}

#[test]
fn nonblocking_send_and_receive_keep_their_place() {
    let (a, b) = Stream::pair(Kind::Stream, DEFAULT_MAX_MESSAGE).expect("pair");
    let message: Vec<u8> = (0..20_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut header = [0u8; frame::LONG];
    let hlen = frame::encode_header(message.len() as u64, &mut header);
    // Nothing to read yet: a try that does not wait.
    let mut stop = Uninterrupted;
    let mut wait = b.wait_nowait(&mut stop);
    let nothing = b
        .try_reader()
        .expect("reader")
        .next_message(None, &mut wait);
    assert!(matches!(nothing, Err(Error::Timeout { .. })));
    // The sender writes what the socket takes, the receiver reads what is there, turn by turn,
    // each keeping its place, until the frame is through.
    let mut sent = a.send_nowait(&header[..hlen], &message, &[]).expect("send");
    // More than the socket's buffer takes at once: the frame goes in several attempts.
    assert!(sent > 0 && sent < hlen + message.len());
    let mut out = vec![0u8; message.len()];
    let mut got = 0;
    let mut reader = b.try_reader().expect("reader");
    let mut stop = Uninterrupted;
    let mut wait = b.wait_nowait(&mut stop);
    let len = match reader.next_message(None, &mut wait).expect("header") {
        Incoming::Large(len) => len,
        Incoming::Small(_) => panic!("a 20 MB message is large"),
    };
    assert_eq!(len, message.len());
    while got < len {
        reader
            .read_payload_nowait(&mut out, &mut got)
            .expect("payload");
        if sent < hlen + message.len() {
            let (head, body) = if sent < hlen {
                (&header[sent..hlen], &message[..])
            } else {
                (&[][..], &message[sent - hlen..])
            };
            sent += a.send_nowait(head, body, &[]).expect("send more");
        }
    }
    assert_eq!(out, message);
    // Another receive of the same side while this one holds it: EBUSY, not a wait.
    assert!(matches!(
        b.try_reader(),
        Err(Error::Os {
            errno: rustix::io::Errno::BUSY,
            ..
        })
    ));
}
