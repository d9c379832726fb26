//! Descriptors over real sockets (`src/socket/ancillary.rs`, with the reader and the receive
//! buffer that tie them to messages): a socket pair of each kind (stream, seqpacket) carries
//! messages with descriptors, or (hostile mode) raw bytes with descriptors on any of them.
//! rustix parses the control messages; this checks what fastipc makes of them: every message
//! comes with exactly its own descriptors (the same open files, by inode), and whatever a
//! receiver does not take is closed: the process holds as many descriptors after each input as
//! before it.
#![no_main]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use fastipc::socket::{Incoming, Stream};
use fastipc::wait::Uninterrupted;
use fastipc::{Error, Kind};
use libfuzzer_sys::fuzz_target;
use rustix::net::Shutdown;

/// Distinct open files: the descriptors that travel are these, by index.
fn pool() -> &'static Vec<OwnedFd> {
    static POOL: OnceLock<Vec<OwnedFd>> = OnceLock::new();
    POOL.get_or_init(|| {
        (0..4)
            .flat_map(|_| {
                let (r, w) =
                    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
                [r, w]
            })
            .collect()
    })
}

fn identity(fd: BorrowedFd<'_>) -> (u64, u64) {
    let st = rustix::fs::fstat(fd).expect("fstat");
    (st.st_dev, st.st_ino)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
}

/// Receives one message with its descriptors.
fn recv(stream: &Stream, limit: Option<u64>) -> fastipc::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut interrupt = Uninterrupted;
    let mut wait = stream.wait(&mut interrupt);
    let mut reader = stream.reader()?;
    let bytes = match reader.next_message(limit, &mut wait)? {
        Incoming::Small(bytes) => bytes,
        Incoming::Large(len) => {
            let mut out = vec![0u8; len];
            reader.read_payload(&mut out, &mut wait)?;
            out
        }
    };
    Ok((bytes, reader.take_fds()))
}

fn framed(kind: Kind, input: &mut Input<'_>) {
    let (tx, rx) = Stream::pair(kind, 1 << 20).expect("pair");
    let mut sent = Vec::new();
    let count = 1 + input.byte() % 6;
    for m in 0..count {
        let spec = input.byte();
        let len = match spec % 4 {
            0 => usize::from(input.byte()),
            1 => 8 * 1024 - 14 + usize::from(input.byte() % 4),
            2 => 9000 + usize::from(input.byte()) * 16,
            _ => 0,
        };
        let which: Vec<usize> = (0..(spec >> 5) % 5)
            .map(|_| usize::from(input.byte()) % pool().len())
            .collect();
        let fds: Vec<BorrowedFd<'_>> = which.iter().map(|&i| pool()[i].as_fd()).collect();
        let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ m).collect();
        tx.send_message(&payload, &fds, &mut Uninterrupted)
            .expect("send");
        sent.push((payload, which));
    }
    tx.shutdown(Shutdown::Write).expect("shutdown");
    for (payload, which) in &sent {
        // Sometimes a receiver leaves a message's descriptors: they must be closed, not leaked.
        let (bytes, fds) = recv(&rx, None).expect("recv");
        assert_eq!(&bytes, payload);
        let got: Vec<_> = fds.iter().map(|fd| identity(fd.as_fd())).collect();
        let want: Vec<_> = which.iter().map(|&i| identity(pool()[i].as_fd())).collect();
        assert_eq!(got, want, "descriptors of the wrong message");
    }
    assert!(matches!(recv(&rx, None), Err(Error::Eof { .. })));
}

fn hostile(kind: Kind, input: &mut Input<'_>) {
    let limit = match input.byte() % 3 {
        0 => None,
        1 => Some(u64::from(input.byte())),
        _ => Some(1 << 16),
    };
    let (tx, rx) = Stream::pair(kind, 1 << 20).expect("pair");
    let writes = input.byte() % 8;
    for _ in 0..writes {
        let n = 1 + usize::from(input.byte() % 40);
        let bytes: Vec<u8> = (0..n).map(|_| input.byte()).collect();
        let nfds = input.byte() % 4;
        let fds: Vec<BorrowedFd<'_>> = (0..nfds).map(|i| pool()[usize::from(i)].as_fd()).collect();
        tx.send_with_fds(&bytes, &fds, &mut Uninterrupted)
            .expect("send");
    }
    tx.shutdown(Shutdown::Write).expect("shutdown");
    drop(tx);
    // Receive until the stream says it is done; every error is one of the protocol's.
    for _ in 0..16 {
        match recv(&rx, limit) {
            Ok((_, fds)) => {
                let pool_ids: Vec<_> = pool().iter().map(|fd| identity(fd.as_fd())).collect();
                assert!(fds
                    .iter()
                    .all(|fd| pool_ids.contains(&identity(fd.as_fd()))));
            }
            Err(Error::Eof { .. } | Error::Truncated { .. } | Error::Invalid(_)) => break,
            // A malformed length prefix: the protocol error that closes the connection.
            Err(e) if e.errno() == Some(rustix::io::Errno::BADMSG) => break,
            Err(Error::MessageTooLarge { .. }) if kind == Kind::Stream => break,
            Err(Error::MessageTooLarge { .. }) => continue,
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    pool();
    let before = open_fds();
    let mut input = Input(data);
    let mode = input.byte();
    let kind = if mode & 2 == 0 {
        Kind::Stream
    } else {
        Kind::SeqPacket
    };
    if mode & 1 == 0 {
        framed(kind, &mut input);
    } else {
        hostile(kind, &mut input);
    }
    assert_eq!(open_fds(), before, "descriptors leaked");
});
