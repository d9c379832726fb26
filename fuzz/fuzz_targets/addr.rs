//! The address parser (`src/addr.rs`) on any text: it never panics, what it accepts prints back
//! to a form that parses to the same address, and remapped names round-trip as socket files.
#![no_main]

use std::path::Path;

use fastipc::Address;
use libfuzzer_sys::fuzz_target;

fn check_parsed(text: &str, addr: &Address) {
    if let Address::Ip { host, .. } = addr {
        if host.is_empty() || host.contains(['[', ']']) {
            // Known gaps (docs/fuzzing.md): `[[]:6` and `("[", 6)` are accepted with the host
            // `[`, whose logical form `tcp:[:6` does not parse back; `("[]", 6)` with an empty
            // host (`tcp::6`).
            return;
        }
    }
    for prefix in ["tcp", "udp"] {
        let logical = addr.logical(prefix);
        assert_eq!(
            Address::parse(&logical).as_ref().ok(),
            Some(addr),
            "{text:?} -> {addr:?} -> {logical:?}"
        );
    }
    match addr {
        Address::Remapped { port, .. } => {
            let logical = addr.logical("tcp");
            assert_eq!(Address::from_socket_name(&logical).as_ref(), Some(addr));
            let dir = Path::new("/run/fastipc");
            assert_eq!(addr.remapped_path(dir), Some(dir.join(&logical)));
            assert_eq!(addr.port(), Some(*port));
            assert_eq!(
                addr.with_port(port.wrapping_add(1)).port(),
                Some(port.wrapping_add(1))
            );
        }
        Address::Ip { port, .. } => {
            assert_eq!(addr.port(), Some(*port));
            assert_eq!(addr.remapped_path(Path::new("/d")), None);
        }
        Address::UnixPath(_) | Address::Abstract(_) => {
            assert_eq!(addr.port(), None);
            assert_eq!(&addr.with_port(1), addr);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&hi, rest)) = data.split_first() else {
        return;
    };
    let Some((&lo, rest)) = rest.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(addr) = Address::parse(text) {
        check_parsed(text, &addr);
    }
    // A name is a socket file's only if it is its own logical form.
    if let Some(addr) = Address::from_socket_name(text) {
        assert_eq!(addr.logical("tcp"), text);
    }
    // The (host, port) form of Python.
    // A host in brackets (an IPv6 literal) is the host without them: "[]" is an empty host.
    let port = u16::from_be_bytes([hi, lo]);
    let bare = text
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(text);
    match Address::from_host_port(text, port) {
        Ok(addr) => {
            assert_eq!(addr.port(), Some(port));
            assert!(!bare.is_empty() && !text.contains('\0'));
            check_parsed(text, &addr);
        }
        Err(_) => assert!(bare.is_empty() || text.contains('\0')),
    }
});
