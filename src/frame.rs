//! The wire format of framed messages: that of `multiprocessing.connection`.
//!
//! A 4-byte big-endian signed length, or `-1` followed by an 8-byte big-endian unsigned length for
//! payloads over `0x7fff_ffff` bytes; then the payload. Pure code, no I/O.

/// Largest payload written with the short (4-byte) header.
pub const SHORT_MAX: u64 = 0x7fff_ffff;
/// Size of the short header.
pub const SHORT: usize = 4;
/// Size of the long header (`-1` marker plus 8-byte length).
pub const LONG: usize = 12;

/// Encodes the header for a payload of `len` bytes into `out`; returns the header's length.
pub fn encode_header(len: u64, out: &mut [u8; LONG]) -> usize {
    match u32::try_from(len) {
        // `len` fits in i32 here, and the format's short length is that i32 big-endian.
        Ok(short) if len <= SHORT_MAX => {
            out[..SHORT].copy_from_slice(&short.to_be_bytes());
            SHORT
        }
        _ => {
            out[..SHORT].copy_from_slice(&(-1i32).to_be_bytes());
            out[SHORT..].copy_from_slice(&len.to_be_bytes());
            LONG
        }
    }
}

/// What the start of a buffer says about the next message.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Header {
    /// More bytes are needed to know the length: at least this many in all.
    NeedMore(usize),
    /// The header is complete: its size and the payload length.
    Complete {
        /// Bytes taken by the header (4 or 12).
        header: usize,
        /// Payload length.
        len: u64,
    },
    /// The length is negative but not the `-1` marker: not this format.
    Malformed(i32),
}

/// Decodes a header from the start of `buf`.
pub fn decode_header(buf: &[u8]) -> Header {
    if buf.len() < SHORT {
        return Header::NeedMore(SHORT);
    }
    let short = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if short == -1 {
        if buf.len() < LONG {
            return Header::NeedMore(LONG);
        }
        let mut long = [0u8; 8];
        long.copy_from_slice(&buf[SHORT..LONG]);
        return Header::Complete {
            header: LONG,
            len: u64::from_be_bytes(long),
        };
    }
    match u64::try_from(short) {
        Ok(len) => Header::Complete { header: SHORT, len },
        Err(_) => Header::Malformed(short),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_and_long_boundaries() {
        let mut out = [0u8; LONG];
        assert_eq!(encode_header(0, &mut out), 4);
        assert_eq!(&out[..4], &[0, 0, 0, 0]);
        assert_eq!(encode_header(SHORT_MAX, &mut out), 4);
        assert_eq!(&out[..4], &[0x7f, 0xff, 0xff, 0xff]);
        // multiprocessing switches to the long form above 0x7fffffff.
        assert_eq!(encode_header(SHORT_MAX + 1, &mut out), 12);
        assert_eq!(&out, &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0]);
    }

    #[test]
    fn partial_and_malformed() {
        assert_eq!(decode_header(&[0, 0]), Header::NeedMore(4));
        assert_eq!(
            decode_header(&[0xff, 0xff, 0xff, 0xff, 0]),
            Header::NeedMore(12)
        );
        assert_eq!(
            decode_header(&[0xff, 0xff, 0xff, 0xfe]),
            Header::Malformed(-2)
        );
    }

    /// The format's own reading of the first bytes of a stream, written out longhand.
    fn reference(buf: &[u8]) -> Header {
        let Some(short) = buf.get(..SHORT) else {
            return Header::NeedMore(SHORT);
        };
        let short = i32::from_be_bytes([short[0], short[1], short[2], short[3]]);
        match short {
            -1 => match buf.get(SHORT..LONG) {
                Some(long) => Header::Complete {
                    header: LONG,
                    len: long.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)),
                },
                None => Header::NeedMore(LONG),
            },
            n if n < 0 => Header::Malformed(n),
            n => Header::Complete {
                header: SHORT,
                len: u64::from(n.unsigned_abs()),
            },
        }
    }

    proptest! {
        // Parsers get more cases than proptest's default 256.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn any_bytes_read_as_the_format_says(
            buf in proptest::collection::vec(any::<u8>(), 0..16),
            negative in i32::MIN..-1,
            cut in 0usize..16,
        ) {
            prop_assert_eq!(decode_header(&buf), reference(&buf));
            // Invalid frames: a negative length other than the long form's marker, whatever
            // follows it.
            let mut bad = negative.to_be_bytes().to_vec();
            bad.extend_from_slice(&buf);
            prop_assert_eq!(decode_header(&bad), Header::Malformed(negative));
            // A long header cut anywhere asks for all 12 bytes.
            let mut long = vec![0xff; SHORT];
            long.extend_from_slice(&buf);
            let cut = cut.min(long.len());
            let want = if cut < SHORT { SHORT } else { LONG };
            if cut < LONG {
                prop_assert_eq!(decode_header(&long[..cut]), Header::NeedMore(want));
            }
        }

        #[test]
        fn roundtrip(len in any::<u64>(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut out = [0u8; LONG];
            let n = encode_header(len, &mut out);
            let mut buf = out[..n].to_vec();
            buf.extend_from_slice(&tail);
            prop_assert_eq!(decode_header(&buf), Header::Complete { header: n, len });
            for cut in 0..n {
                prop_assert!(matches!(decode_header(&buf[..cut]), Header::NeedMore(k) if k > cut));
            }
        }
    }
}
