//! The frame header parser (`src/frame.rs`) on any bytes: what it says about them is true.
#![no_main]

use fastipc::frame::{decode_header, encode_header, Header, LONG, SHORT, SHORT_MAX};
use libfuzzer_sys::fuzz_target;

fn check_encoding(len: u64) {
    let mut out = [0u8; LONG];
    let n = encode_header(len, &mut out);
    assert_eq!(n, if len <= SHORT_MAX { SHORT } else { LONG });
    assert_eq!(
        decode_header(&out[..n]),
        Header::Complete { header: n, len }
    );
    for cut in 0..n {
        assert!(matches!(decode_header(&out[..cut]), Header::NeedMore(k) if k > cut && k <= n));
    }
}

fuzz_target!(|data: &[u8]| {
    let got = decode_header(data);
    match got {
        Header::NeedMore(k) => {
            assert!(
                k > data.len() && (k == SHORT || k == LONG),
                "{got:?} for {data:?}"
            );
            if data.len() >= SHORT {
                // Only the long form's marker asks for more once 4 bytes are there.
                assert_eq!(data[..SHORT], [0xff; SHORT]);
                assert_eq!(k, LONG);
            }
        }
        Header::Complete { header, len } => {
            assert!(header == SHORT || header == LONG);
            assert!(header <= data.len());
            // Only the header's bytes count, and every shorter prefix asks for more.
            assert_eq!(decode_header(&data[..header]), got);
            for cut in 0..header {
                assert!(matches!(decode_header(&data[..cut]), Header::NeedMore(k) if k > cut));
            }
            let mut out = [0u8; LONG];
            let n = encode_header(len, &mut out);
            if header == SHORT {
                // A short header is the canonical encoding of its length: re-encoding gives it back.
                assert!(len <= SHORT_MAX);
                assert_eq!(out[..n], data[..SHORT]);
            } else {
                assert_eq!(data[..SHORT], [0xff; SHORT]);
                assert_eq!(len.to_be_bytes(), data[SHORT..LONG]);
                if len > SHORT_MAX {
                    assert_eq!(out[..n], data[..LONG]);
                }
            }
        }
        Header::Malformed(n) => {
            assert!(n < -1, "{n} is not malformed");
            assert_eq!(n.to_be_bytes(), data[..SHORT]);
        }
    }
    // The encoder, for lengths the input chooses.
    if let Some(bytes) = data.get(..8) {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(bytes);
        let len = u64::from_be_bytes(raw);
        check_encoding(len);
        check_encoding(len >> 32);
        check_encoding(len & 0xffff_ffff);
    }
});
