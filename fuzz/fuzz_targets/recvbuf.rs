//! The receive buffer (`src/socket/recvbuf.rs`) driven as the reader drives it, with reads cut
//! where the input says (and where the kernel cuts them: right after a segment that carries
//! descriptors).
//!
//! - Framed mode: a stream of well-formed frames, some with descriptors. Every message comes out
//!   whole and in order, with exactly the descriptors sent with it; a large message whose receive
//!   stops part way resumes where it stopped.
//! - Hostile mode: any bytes, descriptors on any reads, any size limit. Nothing panics, every
//!   small payload is the bytes at its place in the stream, and no descriptor comes out twice or
//!   was never sent.
#![no_main]

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use fastipc::frame::{decode_header, encode_header, Header, LONG};
use fastipc::socket::fuzzing::{FuzzRecvBuf, Step, RX_BUFFER};
use libfuzzer_sys::fuzz_target;

/// The reader's limit between small and large messages.
const SMALL: usize = RX_BUFFER - LONG;

fn dev_null() -> &'static OwnedFd {
    static NULL: OnceLock<OwnedFd> = OnceLock::new();
    NULL.get_or_init(|| {
        rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .expect("open /dev/null")
    })
}

fn new_fds(n: usize) -> Vec<OwnedFd> {
    (0..n)
        .map(|_| rustix::io::fcntl_dupfd_cloexec(dev_null(), 3).expect("dup"))
        .collect()
}

fn raw(fds: &[OwnedFd]) -> Vec<RawFd> {
    fds.iter().map(AsRawFd::as_raw_fd).collect()
}

/// The input, read a byte at a time (zeros once it runs out).
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
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
    /// A read size from 1 to `max`: whole reads once the input is used up (reads of one byte
    /// each, over and over, would only slow the search down).
    fn cut(&mut self, max: usize) -> usize {
        if self.is_empty() {
            max
        } else {
            1 + usize::from(self.u16()) % max
        }
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The bytes a sender wrote, as the kernel holds them: segments, some with descriptors.
struct Wire {
    bytes: Vec<u8>,
    /// `(end offset, descriptors)` of each segment that carries descriptors, in order.
    fd_segments: Vec<(usize, Vec<OwnedFd>)>,
    /// `(start offset, descriptors)` of the same segments.
    starts: Vec<usize>,
    pos: usize,
}

impl Wire {
    /// One read of at most `max` bytes: stops right after a segment with descriptors, which
    /// come with the read that reaches into their segment.
    fn read(&mut self, max: usize) -> (usize, Vec<OwnedFd>) {
        let mut end = (self.pos + max).min(self.bytes.len());
        let mut fds = Vec::new();
        if let Some(i) = self
            .fd_segments
            .iter()
            .position(|(seg_end, _)| *seg_end > self.pos)
        {
            if self.starts[i] < end {
                end = end.min(self.fd_segments[i].0);
                fds = std::mem::take(&mut self.fd_segments[i].1);
            }
        }
        let n = end - self.pos;
        self.pos = end;
        (n, fds)
    }
}

fn framed(input: &mut Input<'_>) {
    // The messages: lengths and descriptor counts from the input.
    let mut messages: Vec<(Vec<u8>, Vec<RawFd>)> = Vec::new();
    let mut wire = Wire {
        bytes: Vec::new(),
        fd_segments: Vec::new(),
        starts: Vec::new(),
        pos: 0,
    };
    let count = 1 + usize::from(input.byte() % 8);
    for m in 0..count {
        let kind = input.byte();
        let len = match kind % 4 {
            0 => usize::from(input.byte()),
            1 => usize::from(input.u16()) % (3 * RX_BUFFER),
            2 => SMALL - 2 + usize::from(input.byte() % 4),
            _ => 0,
        };
        let nfds = usize::from(kind >> 6);
        let start = wire.bytes.len();
        let mut header = [0u8; LONG];
        let hlen = encode_header(len as u64, &mut header);
        // A sender may use the long form for any length: the reader takes both.
        if kind & 0x20 != 0 {
            wire.bytes.extend_from_slice(&(-1i32).to_be_bytes());
            wire.bytes.extend_from_slice(&(len as u64).to_be_bytes());
        } else {
            wire.bytes.extend_from_slice(&header[..hlen]);
        }
        let payload: Vec<u8> = (0..len).map(|i| (i as u8) ^ (m as u8)).collect();
        wire.bytes.extend_from_slice(&payload);
        let fds = new_fds(nfds);
        let sent = raw(&fds);
        if !fds.is_empty() {
            // fastipc attaches descriptors to the frame's first segment: the header and part of
            // the payload (the sender's first `sendmsg` may take only part of it).
            let first = 1 + usize::from(input.u16()) % (wire.bytes.len() - start);
            wire.starts.push(start);
            wire.fd_segments.push((start + first, fds));
        }
        messages.push((payload, sent));
    }
    let mut buf = FuzzRecvBuf::default();
    for (payload, sent) in &messages {
        buf.drop_claimed();
        let got = receive_one(&mut buf, &mut wire, input, payload.len());
        assert_eq!(&got, payload);
        let fds = buf.take_claimed();
        assert_eq!(&raw(&fds), sent, "descriptors of the wrong message");
    }
    assert_eq!(wire.pos, wire.bytes.len());
    assert!(buf.buffered().is_empty());
}

/// Receives the next well-formed message as the reader does.
fn receive_one(
    buf: &mut FuzzRecvBuf,
    wire: &mut Wire,
    input: &mut Input<'_>,
    want: usize,
) -> Vec<u8> {
    loop {
        match buf.next(SMALL) {
            Step::Small { header, len } => {
                assert_eq!(len, want);
                return buf.take_small(header, len);
            }
            Step::Large { header, len } => {
                assert_eq!(len, want as u64);
                buf.start_large(header, len);
                return receive_large(buf, wire, input, want);
            }
            Step::Malformed(n) => panic!("well-formed stream read as malformed ({n})"),
            Step::NeedHeader { have } => {
                assert!(have < LONG);
                fill(buf, wire, input, LONG, 1);
            }
            Step::NeedPayload { header, len, have } => {
                assert_eq!(len, want);
                assert!(have < len);
                fill(buf, wire, input, header + len - have, len - have);
            }
        }
    }
}

/// One read as the reader's `fill` makes it: `want` is what the reader asks room for, `need`
/// the bytes the frame still lacks (the buffer must have room for those).
fn fill(buf: &mut FuzzRecvBuf, wire: &mut Wire, input: &mut Input<'_>, want: usize, need: usize) {
    let cut = input.cut(2 * RX_BUFFER);
    let n = buf.fill_with(want, |space| {
        assert!(
            space.len() >= need,
            "no room for the {need} bytes the frame lacks"
        );
        let (n, fds) = wire.read(cut.min(space.len()));
        space[..n].copy_from_slice(&wire.bytes[wire.pos - n..wire.pos]);
        (n, fds)
    });
    assert!(n > 0, "the stream ended inside a message");
}

fn receive_large(
    buf: &mut FuzzRecvBuf,
    wire: &mut Wire,
    input: &mut Input<'_>,
    len: usize,
) -> Vec<u8> {
    let mut dst = vec![0u8; len];
    let mut got = buf.take_into(&mut dst);
    while got < len {
        if input.byte() == 0xee {
            // A timeout part way: the next receive continues the same message.
            buf.keep_partial(&dst, got);
            buf.drop_claimed();
            assert_eq!(buf.resume(), Some(len));
            let mut again = vec![0u8; len];
            assert_eq!(buf.resume_into(&mut again), got);
            assert_eq!(again[..got], dst[..got]);
            dst = again;
        }
        let (n, fds) = wire.read(input.cut(len - got));
        assert!(n > 0);
        dst[got..got + n].copy_from_slice(&wire.bytes[wire.pos - n..wire.pos]);
        buf.read_past(n, fds);
        got += n;
    }
    dst
}

fn hostile(input: &mut Input<'_>) {
    let max_message: u64 = match input.byte() % 3 {
        0 => u64::MAX,
        1 => 64 << 20,
        _ => u64::from(input.u16()),
    };
    let mut buf = FuzzRecvBuf::default();
    let mut sent: HashSet<RawFd> = HashSet::new();
    let mut seen: HashSet<RawFd> = HashSet::new();
    // Descriptors that came out stay open, so no number is reused while this runs.
    let mut kept: Vec<OwnedFd> = Vec::new();
    let mut stream: Vec<u8> = Vec::new();
    // Absolute offset of the first byte not yet taken out of the buffer or read past it.
    let mut taken: u64 = 0;
    let mut steps = 0;
    while !input.is_empty() && steps < 64 {
        steps += 1;
        let op = input.byte();
        match op % 4 {
            0 | 1 => {
                let n = usize::from(input.byte() % 32);
                let bytes: Vec<u8> = (0..n).map(|_| input.byte()).collect();
                let fds = new_fds(usize::from(op >> 6));
                sent.extend(raw(&fds));
                let took = buf.fill_with(bytes.len(), |space| {
                    let n = bytes.len().min(space.len());
                    space[..n].copy_from_slice(&bytes[..n]);
                    (n, fds)
                });
                stream.extend_from_slice(&bytes[..took]);
            }
            2 => {
                let mut dst = vec![0u8; usize::from(input.byte() % 16)];
                let n = buf.take_raw(&mut dst);
                let at = usize::try_from(taken).expect("small");
                assert_eq!(dst[..n], stream[at..at + n]);
                taken += n as u64;
                check_fds(buf.take_claimed(), &sent, &mut seen, &mut kept);
            }
            _ => {
                buf.drop_claimed();
                assert_eq!(buf.abs_start(), taken);
                match buf.next(SMALL) {
                    Step::Small { header, len } => {
                        let at = usize::try_from(taken).expect("small");
                        let payload = buf.take_small(header, len);
                        assert_eq!(payload, stream[at + header..at + header + len]);
                        taken += (header + len) as u64;
                        check_fds(buf.take_claimed(), &sent, &mut seen, &mut kept);
                    }
                    Step::Large { header, len } => {
                        assert!(len > SMALL as u64);
                        assert!(
                            matches!(decode_header(buf.buffered()), Header::Complete { header: h, len: l } if h == header && l == len)
                        );
                        if len > max_message {
                            return; // MessageTooLarge: the reader stops here
                        }
                        buf.start_large(header, len);
                        taken += header as u64;
                        // Whatever is buffered of it, then the rest read past the buffer.
                        let mut dst = vec![0u8; buf.buffered().len()];
                        let n = buf.take_into(&mut dst);
                        taken += n as u64;
                        let left = usize::try_from(len).unwrap_or(usize::MAX) - n;
                        let rest = usize::from(input.byte()).min(left);
                        let fds = new_fds(usize::from(input.byte() % 3));
                        sent.extend(raw(&fds));
                        buf.read_past(rest, fds);
                        taken += rest as u64;
                        stream.extend(std::iter::repeat_n(0, rest));
                        check_fds(buf.take_claimed(), &sent, &mut seen, &mut kept);
                    }
                    Step::Malformed(n) => {
                        assert!(n < -1);
                        return; // a protocol error: the reader stops here
                    }
                    Step::NeedHeader { have } => {
                        assert_eq!(have as u64 + taken, stream.len() as u64)
                    }
                    Step::NeedPayload { header, len, have } => {
                        assert!(len <= SMALL && have < len);
                        assert_eq!((header + have) as u64 + taken, stream.len() as u64);
                    }
                }
            }
        }
    }
}

fn check_fds(
    fds: Vec<OwnedFd>,
    sent: &HashSet<RawFd>,
    seen: &mut HashSet<RawFd>,
    kept: &mut Vec<OwnedFd>,
) {
    for fd in fds {
        let n = fd.as_raw_fd();
        assert!(sent.contains(&n), "descriptor {n} was never sent");
        assert!(seen.insert(n), "descriptor {n} came out twice");
        kept.push(fd);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    if input.byte() & 1 == 0 {
        framed(&mut input);
    } else {
        hostile(&mut input);
    }
});
