//! The receive buffer on its own: reads are simulated by writing into [`RecvBuf::space`], and the
//! descriptors are one end of a socketpair each, so that whether one was closed shows at the
//! other end (end of file) without racing other tests for descriptor numbers.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};

use super::{Next, RecvBuf, RX_BUFFER};
use crate::frame;

/// What the next frame may be at most to be small (as the reader asks).
const SMALL: usize = RX_BUFFER - frame::LONG;

/// A descriptor to pass, and the other end of its socketpair to tell whether it is still open.
struct Probe {
    peer: OwnedFd,
}

impl Probe {
    fn new() -> (OwnedFd, Probe) {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .expect("socketpair");
        (a, Probe { peer: b })
    }

    /// Whether the passed end was closed: its peer then reads end of file.
    fn closed(&self) -> bool {
        let mut byte = [0u8; 1];
        match rustix::net::recv(&self.peer, &mut byte, RecvFlags::DONTWAIT) {
            Ok((0, _)) => true,
            Err(Errno::AGAIN) => false,
            other => panic!("unexpected probe result {other:?}"),
        }
    }
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut header = [0u8; frame::LONG];
    let n = frame::encode_header(payload.len() as u64, &mut header);
    let mut out = header[..n].to_vec();
    out.extend_from_slice(payload);
    out
}

/// One simulated read of `bytes` (which must fit the free tail), with `fds`.
fn read(buf: &mut RecvBuf, bytes: &[u8], fds: Vec<OwnedFd>) {
    let space = buf.space(bytes.len());
    assert!(space.len() >= bytes.len(), "the test's read does not fit");
    space[..bytes.len()].copy_from_slice(bytes);
    buf.filled(bytes.len(), fds);
}

/// Takes the small frame at the front: its payload and the raw numbers of its descriptors.
fn take(buf: &mut RecvBuf) -> (Vec<u8>, Vec<RawFd>) {
    buf.drop_claimed();
    let Next::Small { header, len } = buf.next(SMALL) else {
        panic!("no whole small frame: {:?}", buf.next(SMALL));
    };
    let payload = buf.take_small(header, len, <[u8]>::to_vec);
    let fds = buf.take_claimed().iter().map(AsRawFd::as_raw_fd).collect();
    (payload, fds)
}

#[test]
fn an_empty_buffer_needs_a_header() {
    let buf = RecvBuf::default();
    assert_eq!(buf.next(SMALL), Next::NeedHeader { have: 0 });
    assert_eq!(buf.abs_start(), 0);
}

#[test]
fn a_frame_arriving_in_pieces_is_whole_only_at_the_end() {
    let mut buf = RecvBuf::default();
    let bytes = framed(b"hello, world");
    read(&mut buf, &bytes[..2], vec![]);
    assert_eq!(buf.next(SMALL), Next::NeedHeader { have: 2 });
    read(&mut buf, &bytes[2..7], vec![]);
    assert_eq!(
        buf.next(SMALL),
        Next::NeedPayload {
            header: 4,
            len: 12,
            have: 3
        }
    );
    // The header stays in the buffer while the payload is incomplete: nothing is lost if the
    // receive stops here (a timeout) and the next one asks again.
    assert_eq!(buf.buffered(), &bytes[..7]);
    read(&mut buf, &bytes[7..], vec![]);
    assert_eq!(take(&mut buf), (b"hello, world".to_vec(), vec![]));
    assert_eq!(buf.next(SMALL), Next::NeedHeader { have: 0 });
    assert_eq!(buf.abs_start(), bytes.len() as u64);
}

#[test]
fn several_frames_in_one_read_come_out_in_order() {
    let mut buf = RecvBuf::default();
    let mut bytes = Vec::new();
    for payload in [&b"one"[..], b"", b"three", b"four"] {
        bytes.extend(framed(payload));
    }
    // The last frame is cut: its header and part of its payload only.
    let cut = bytes.len() - 2;
    read(&mut buf, &bytes[..cut], vec![]);
    assert_eq!(take(&mut buf).0, b"one");
    assert_eq!(take(&mut buf).0, b"");
    assert_eq!(take(&mut buf).0, b"three");
    assert_eq!(
        buf.next(SMALL),
        Next::NeedPayload {
            header: 4,
            len: 4,
            have: 2
        }
    );
    read(&mut buf, &bytes[cut..], vec![]);
    assert_eq!(take(&mut buf).0, b"four");
    assert!(buf.buffered().is_empty());
}

#[test]
fn descriptors_go_with_the_frame_whose_first_bytes_they_came_with() {
    let mut buf = RecvBuf::default();
    let (fd_b, probe_b) = Probe::new();
    let (fd_c, probe_c) = Probe::new();
    let raw_b = fd_b.as_raw_fd();
    let raw_c = fd_c.as_raw_fd();
    let (a, b, c, d) = (framed(b"a"), framed(b"bb"), framed(b"ccc"), framed(b"dddd"));
    // The kernel ends a read right after the segment that carries descriptors: a read may bring
    // the end of earlier frames, then the first segment of the frame the descriptors ride on.
    let mut first = a.clone();
    first.extend(&b);
    read(&mut buf, &first, vec![fd_b]);
    let mut second = c.clone();
    second.extend(&d[..3]);
    read(&mut buf, &second, vec![fd_c]);
    assert_eq!(take(&mut buf), (b"a".to_vec(), vec![]));
    assert_eq!(take(&mut buf), (b"bb".to_vec(), vec![raw_b]));
    // The second read covers "ccc" whole and the start of "dddd": its descriptors are those of
    // "dddd", whose header starts in that read and whose bytes reach its end.
    assert_eq!(take(&mut buf), (b"ccc".to_vec(), vec![]));
    assert_eq!(buf.next(SMALL), Next::NeedHeader { have: 3 });
    read(&mut buf, &d[3..], vec![]);
    assert_eq!(take(&mut buf), (b"dddd".to_vec(), vec![raw_c]));
    assert!(
        probe_b.closed() && probe_c.closed(),
        "taken, then dropped by the test"
    );
}

#[test]
fn descriptors_no_frame_starts_with_are_closed_not_misdelivered() {
    let mut buf = RecvBuf::default();
    let (fd, probe) = Probe::new();
    let long = framed(&[5u8; 40]);
    // Descriptors in the middle of a frame (no fastipc sender does this): no header starts in
    // their read, so no frame may have them.
    read(&mut buf, &long[..20], vec![]);
    read(&mut buf, &long[20..], vec![fd]);
    assert_eq!(take(&mut buf), (vec![5u8; 40], vec![]));
    assert!(!probe.closed());
    read(&mut buf, &framed(b"e"), vec![]);
    assert_eq!(take(&mut buf), (b"e".to_vec(), vec![]));
    assert!(probe.closed(), "closed once a later frame is claimed");
}

#[test]
fn descriptors_nobody_takes_are_closed_by_the_next_receive() {
    let mut buf = RecvBuf::default();
    let (fd, probe) = Probe::new();
    read(&mut buf, &framed(b"x"), vec![fd]);
    let Next::Small { header, len } = buf.next(SMALL) else {
        panic!("no frame");
    };
    buf.take_small(header, len, |_| ());
    assert!(
        !probe.closed(),
        "claimed by the message until its receiver decides"
    );
    buf.drop_claimed();
    assert!(probe.closed());
}

#[test]
fn a_large_frame_is_handed_over_with_its_descriptors() {
    let mut buf = RecvBuf::default();
    let (fd, probe) = Probe::new();
    let raw = fd.as_raw_fd();
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let bytes = framed(&payload);
    // The first read fills the buffer: the header and the payload's first bytes.
    read(&mut buf, &bytes[..RX_BUFFER], vec![fd]);
    assert_eq!(
        buf.next(SMALL),
        Next::Large {
            header: 4,
            len: 20_000
        }
    );
    buf.start_large(4, 20_000);
    let mut dst = vec![0u8; 20_000];
    let got = buf.resume_into(&mut dst);
    assert_eq!(got, RX_BUFFER - 4);
    assert!(buf.buffered().is_empty());
    // The rest is read straight into the destination, past the buffer.
    dst[got..].copy_from_slice(&bytes[RX_BUFFER..]);
    buf.read_past(20_000 - got, vec![]);
    assert_eq!(dst, payload);
    let fds: Vec<RawFd> = buf.take_claimed().iter().map(AsRawFd::as_raw_fd).collect();
    assert_eq!(fds, [raw]);
    assert!(probe.closed());
    // The stream offsets still line up: the next frame's descriptors are its own.
    let (fd2, _probe2) = Probe::new();
    let raw2 = fd2.as_raw_fd();
    read(&mut buf, &framed(b"next"), vec![fd2]);
    assert_eq!(buf.abs_start(), bytes.len() as u64);
    assert_eq!(take(&mut buf), (b"next".to_vec(), vec![raw2]));
}

#[test]
fn a_large_frame_resumes_after_a_timeout_with_its_bytes_and_descriptors() {
    let mut buf = RecvBuf::default();
    let (fd, probe) = Probe::new();
    let raw = fd.as_raw_fd();
    let payload = vec![9u8; 30_000];
    let bytes = framed(&payload);
    read(&mut buf, &bytes[..100], vec![fd]);
    let Next::Large { header, len } = buf.next(SMALL) else {
        panic!("not large");
    };
    buf.start_large(header, len);
    let mut dst = vec![0u8; 30_000];
    let mut got = buf.resume_into(&mut dst);
    dst[got..got + 5000].copy_from_slice(&bytes[100..5100]);
    buf.read_past(5000, vec![]);
    got += 5000;
    // The receive stops here (a timeout): the bytes and descriptors so far are kept.
    buf.keep_partial(&dst, got);
    assert!(!probe.closed());
    drop(dst);
    // The next receive continues the same message.
    buf.drop_claimed();
    assert_eq!(buf.resume(), Some(30_000));
    let mut dst = vec![0u8; 30_000];
    let got = buf.resume_into(&mut dst);
    assert_eq!(got, 5096);
    dst[got..].copy_from_slice(&bytes[5100..]);
    buf.read_past(30_000 - got, vec![]);
    assert_eq!(dst, payload);
    let fds: Vec<RawFd> = buf.take_claimed().iter().map(AsRawFd::as_raw_fd).collect();
    assert_eq!(fds, [raw]);
    assert_eq!(buf.resume(), None, "resumed once only");
    assert_eq!(buf.abs_start(), bytes.len() as u64);
}

#[test]
fn the_limit_between_small_and_large_is_the_callers() {
    let mut buf = RecvBuf::default();
    read(&mut buf, &framed(&[1u8; 100]), vec![]);
    assert_eq!(
        buf.next(100),
        Next::Small {
            header: 4,
            len: 100
        }
    );
    assert_eq!(
        buf.next(99),
        Next::Large {
            header: 4,
            len: 100
        }
    );
}

#[test]
fn a_long_header_announces_a_large_frame() {
    let mut buf = RecvBuf::default();
    let mut header = [0u8; frame::LONG];
    let n = frame::encode_header(frame::SHORT_MAX + 1, &mut header);
    read(&mut buf, &header[..6], vec![]);
    assert_eq!(buf.next(SMALL), Next::NeedHeader { have: 6 });
    read(&mut buf, &header[6..n], vec![]);
    assert_eq!(
        buf.next(SMALL),
        Next::Large {
            header: frame::LONG,
            len: frame::SHORT_MAX + 1
        }
    );
}

#[test]
fn a_negative_length_is_malformed() {
    let mut buf = RecvBuf::default();
    read(&mut buf, &(-7i32).to_be_bytes(), vec![]);
    assert_eq!(buf.next(SMALL), Next::Malformed(-7));
}

#[test]
fn room_is_made_by_moving_the_unread_bytes_to_the_front() {
    let mut buf = RecvBuf::default();
    let filler = vec![0u8; RX_BUFFER - 10];
    let mut first = framed(&filler[..RX_BUFFER - 20]);
    first.extend(&framed(b"abcdefgh")[..6]);
    read(&mut buf, &first, vec![]);
    let _ = take(&mut buf);
    // Six bytes of the next frame are buffered at the end; asking for more room moves them.
    assert_eq!(buf.buffered().len(), 6);
    assert!(buf.space(64).len() >= 64);
    read(&mut buf, b"cdefgh", vec![]);
    assert_eq!(take(&mut buf).0, b"abcdefgh");
}

#[test]
fn raw_reads_take_the_descriptors_of_the_bytes_they_take() {
    let mut buf = RecvBuf::default();
    let (fd, _probe) = Probe::new();
    let raw = fd.as_raw_fd();
    read(&mut buf, b"0123", vec![]);
    read(&mut buf, b"4567", vec![fd]);
    let mut dst = [0u8; 3];
    assert_eq!(buf.take_raw(&mut dst), 3);
    assert!(buf.take_claimed().is_empty());
    let mut dst = [0u8; 3];
    assert_eq!(buf.take_raw(&mut dst), 3);
    assert_eq!(&dst, b"345");
    let fds: Vec<RawFd> = buf.take_claimed().iter().map(AsRawFd::as_raw_fd).collect();
    assert_eq!(fds, [raw]);
    // Past the buffer: the offsets keep counting.
    buf.read_past(10, vec![]);
    let mut dst = [0u8; 8];
    assert_eq!(buf.take_raw(&mut dst), 2);
    assert_eq!(buf.abs_start(), 18);
}

#[test]
fn a_packet_uses_the_whole_buffer() {
    let mut buf = RecvBuf::default();
    assert_eq!(buf.packet_space().len(), RX_BUFFER);
}

#[test]
fn a_frame_announcing_the_largest_length_claims_its_descriptors() {
    // Found by fuzz/fuzz_targets/recvbuf.rs: the frame's end (offset + header + length)
    // overflowed u64, a panic in debug builds and a wrapped end in release ones.
    let mut buf = RecvBuf::default();
    let (fd, probe) = Probe::new();
    let raw = fd.as_raw_fd();
    let mut bytes = vec![0xff; 4];
    bytes.extend_from_slice(&(u64::MAX - 1).to_be_bytes());
    bytes.extend_from_slice(b"payload");
    read(&mut buf, b"\0\0\0\x01x", vec![]);
    assert_eq!(take(&mut buf), (b"x".to_vec(), vec![]));
    read(&mut buf, &bytes, vec![fd]);
    buf.drop_claimed();
    let Next::Large { header, len } = buf.next(SMALL) else {
        panic!("not a large frame: {:?}", buf.next(SMALL));
    };
    assert_eq!((header, len), (frame::LONG, u64::MAX - 1));
    buf.start_large(header, len);
    let fds = buf.take_claimed();
    assert_eq!(
        fds.iter().map(AsRawFd::as_raw_fd).collect::<Vec<_>>(),
        vec![raw]
    );
    drop(fds);
    assert!(probe.closed());
}
