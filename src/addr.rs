//! Address parsing and loopback remapping. Pure: no I/O, no name resolution.
//!
//! | written                                | meaning                                   |
//! |----------------------------------------|-------------------------------------------|
//! | `127.0.0.1:5000`, `localhost:5000`     | remapped: `<socket_dir>/127.0.0.1:5000`  |
//! | `[::1]:5000`, any `127.x.y.z:port`     | remapped under its own canonical name     |
//! | `unix:/path`, `unix:relative`          | that Unix socket path                     |
//! | `unix:@name`                           | Linux abstract socket                     |
//! | `tcp:host:port`, `udp:host:port`       | IP, never remapped                        |
//! | any other `host:port`                  | IP                                        |

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use crate::error::{Error, PyRepr, Result};

/// A parsed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A loopback address, carried by a Unix socket named after it in the socket directory.
    Remapped {
        /// Canonical host: `127.0.0.1`, `127.1.2.3` or `[::1]`.
        host: String,
        /// The port; 0 asks for a free one.
        port: u16,
    },
    /// A Unix socket at this path.
    UnixPath(PathBuf),
    /// A Linux abstract socket with this name (without the leading NUL).
    Abstract(Vec<u8>),
    /// TCP (or UDP for datagram sockets), never remapped.
    Ip {
        /// Host as written, without brackets.
        host: String,
        /// The port; 0 asks for a free one.
        port: u16,
    },
}

/// Ports at which a remapped port-0 listener looks for a free name (the IANA dynamic range).
pub const EPHEMERAL: std::ops::RangeInclusive<u16> = 49152..=65535;

fn invalid(address: &str, why: &str) -> Error {
    invalid_shown(&PyRepr(address).to_string(), why)
}

/// As [`invalid`], for an address already shown as Python shows it (a `(host, port)` tuple).
fn invalid_shown(shown: &str, why: &str) -> Error {
    Error::Invalid(format!("invalid address {shown}: {why}"))
}

fn parse_port(address: &str, text: &str) -> Result<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            address,
            "the port must be a number from 0 to 65535",
        ));
    }
    text.parse::<u16>()
        .map_err(|_| invalid(address, "the port must be a number from 0 to 65535"))
}

/// Splits `host:port`, with IPv6 hosts in brackets.
fn split_host_port<'a>(address: &str, text: &'a str) -> Result<(&'a str, u16)> {
    if let Some(rest) = text.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| invalid(address, "missing ']' after an IPv6 host"))?;
        let host = &rest[..close];
        let port = rest[close + 1..]
            .strip_prefix(':')
            .ok_or_else(|| invalid(address, "expected ':port' after the host"))?;
        if host.is_empty() {
            return Err(invalid(address, "the host is empty"));
        }
        return Ok((host, parse_port(address, port)?));
    }
    let colon = text
        .rfind(':')
        .ok_or_else(|| invalid(address, "expected host:port"))?;
    let host = &text[..colon];
    if host.is_empty() {
        return Err(invalid(address, "the host is empty"));
    }
    if host.contains(':') {
        return Err(invalid(address, "write IPv6 hosts in brackets: [::1]:5000"));
    }
    Ok((host, parse_port(address, &text[colon + 1..])?))
}

/// A TCP/UDP host as shown in logical addresses: `localhost` is written `127.0.0.1`, as in
/// remapped names; other hosts as given.
fn ip_host(host: &str) -> String {
    if host.eq_ignore_ascii_case("localhost") {
        "127.0.0.1".to_string()
    } else {
        host.to_string()
    }
}

/// The canonical loopback name of `host`, or None if it is not a loopback host.
pub fn loopback_name(host: &str) -> Option<String> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some("127.0.0.1".to_string());
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return v4.is_loopback().then(|| v4.to_string());
    }
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return v6.is_loopback().then(|| "[::1]".to_string());
    }
    None
}

impl Address {
    /// Parses the textual form.
    pub fn parse(address: &str) -> Result<Address> {
        if address.contains('\0') {
            return Err(invalid(address, "it contains a NUL byte"));
        }
        if let Some(rest) = address.strip_prefix("unix:") {
            if let Some(name) = rest.strip_prefix('@') {
                if name.is_empty() {
                    return Err(invalid(address, "the abstract name is empty"));
                }
                return Ok(Address::Abstract(name.as_bytes().to_vec()));
            }
            if rest.is_empty() {
                return Err(invalid(address, "the path is empty"));
            }
            return Ok(Address::UnixPath(PathBuf::from(rest)));
        }
        for prefix in ["tcp:", "udp:"] {
            if let Some(rest) = address.strip_prefix(prefix) {
                let (host, port) = split_host_port(address, rest)?;
                return Ok(Address::Ip {
                    host: ip_host(host),
                    port,
                });
            }
        }
        let (host, port) = split_host_port(address, address)?;
        Address::from_host_port(host, port)
    }

    /// The `(host, port)` form.
    pub fn from_host_port(host: &str, port: u16) -> Result<Address> {
        let shown = format!("({}, {port})", PyRepr(host));
        if host.contains('\0') {
            return Err(invalid_shown(&shown, "it contains a NUL byte"));
        }
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if bare.is_empty() {
            return Err(invalid_shown(&shown, "the host is empty"));
        }
        Ok(match loopback_name(bare) {
            Some(host) => Address::Remapped { host, port },
            None => Address::Ip {
                host: bare.to_string(),
                port,
            },
        })
    }

    /// The same address with another port (for remapped and IP addresses).
    #[must_use]
    pub fn with_port(&self, port: u16) -> Address {
        match self {
            Address::Remapped { host, .. } => Address::Remapped {
                host: host.clone(),
                port,
            },
            Address::Ip { host, .. } => Address::Ip {
                host: host.clone(),
                port,
            },
            other => other.clone(),
        }
    }

    /// The port, for remapped and IP addresses.
    pub fn port(&self) -> Option<u16> {
        match self {
            Address::Remapped { port, .. } | Address::Ip { port, .. } => Some(*port),
            _ => None,
        }
    }

    /// The logical form, as shown by `.address` and accepted back by `parse`.
    /// `ip_prefix` is `"tcp"` or `"udp"`.
    pub fn logical(&self, ip_prefix: &str) -> String {
        match self {
            Address::Remapped { host, port } => format!("{host}:{port}"),
            Address::UnixPath(path) => format!("unix:{}", path.display()),
            Address::Abstract(name) => format!("unix:@{}", String::from_utf8_lossy(name)),
            Address::Ip { host, port } if host.contains(':') => {
                format!("{ip_prefix}:[{host}]:{port}")
            }
            Address::Ip { host, port } => format!("{ip_prefix}:{host}:{port}"),
        }
    }

    /// The socket file of a remapped address in `socket_dir`.
    pub fn remapped_path(&self, socket_dir: &Path) -> Option<PathBuf> {
        match self {
            Address::Remapped { host, port } => Some(socket_dir.join(format!("{host}:{port}"))),
            _ => None,
        }
    }

    /// Reads a remapped name back from a socket file name (`127.0.0.1:5000` → Remapped).
    pub fn from_socket_name(name: &str) -> Option<Address> {
        match Address::parse(name) {
            Ok(addr @ Address::Remapped { .. }) if addr.logical("tcp") == name => Some(addr),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn remapped(host: &str, port: u16) -> Address {
        Address::Remapped {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn the_table() {
        assert_eq!(
            Address::parse("127.0.0.1:5000").unwrap(),
            remapped("127.0.0.1", 5000)
        );
        assert_eq!(
            Address::parse("localhost:5000").unwrap(),
            remapped("127.0.0.1", 5000)
        );
        assert_eq!(
            Address::parse("LocalHost:0").unwrap(),
            remapped("127.0.0.1", 0)
        );
        assert_eq!(
            Address::parse("127.9.8.7:1").unwrap(),
            remapped("127.9.8.7", 1)
        );
        assert_eq!(
            Address::parse("[::1]:5000").unwrap(),
            remapped("[::1]", 5000)
        );
        assert_eq!(
            Address::parse("unix:/run/app.sock").unwrap(),
            Address::UnixPath("/run/app.sock".into())
        );
        assert_eq!(
            Address::parse("unix:@name").unwrap(),
            Address::Abstract(b"name".to_vec())
        );
        let tcp = Address::Ip {
            host: "127.0.0.1".into(),
            port: 5000,
        };
        assert_eq!(Address::parse("tcp:127.0.0.1:5000").unwrap(), tcp);
        assert_eq!(Address::parse("udp:127.0.0.1:5000").unwrap(), tcp);
        assert_eq!(
            Address::parse("10.1.2.3:5000").unwrap(),
            Address::Ip {
                host: "10.1.2.3".into(),
                port: 5000
            }
        );
        assert_eq!(
            Address::parse("tcp:[::1]:80").unwrap().logical("tcp"),
            "tcp:[::1]:80"
        );
        assert_eq!(
            Address::from_host_port("::1", 7).unwrap(),
            remapped("[::1]", 7)
        );
        assert_eq!(
            Address::from_host_port("example.org", 80)
                .unwrap()
                .logical("tcp"),
            "tcp:example.org:80"
        );
    }

    #[test]
    fn localhost_is_written_as_its_address() {
        assert_eq!(
            Address::parse("tcp:LocalHost:53").unwrap().logical("udp"),
            "udp:127.0.0.1:53"
        );
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "5000",
            ":5000",
            "127.0.0.1:",
            "127.0.0.1:65536",
            "127.0.0.1:-1",
            "127.0.0.1:+1",
            "unix:",
            "unix:@",
            "::1:5000",
            "[::1]5000",
            "[]:1",
            "[::1:5",
            "tcp:",
            "a\0b:1",
        ] {
            assert!(
                matches!(Address::parse(bad), Err(Error::Invalid(_))),
                "{bad:?} was accepted"
            );
        }
        assert!(Address::from_host_port("", 1).is_err());
    }

    #[test]
    fn socket_names_round_trip() {
        assert_eq!(
            Address::from_socket_name("127.0.0.1:5000"),
            Some(remapped("127.0.0.1", 5000))
        );
        assert_eq!(Address::from_socket_name("localhost:5000"), None);
        assert_eq!(Address::from_socket_name("127.0.0.1:5000.lock"), None);
        assert_eq!(Address::from_socket_name("10.0.0.1:5"), None);
    }

    proptest! {
        // Parsers get more cases than proptest's default 256.
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn logical_form_parses_back(a in any::<u8>(), b in any::<u8>(), c in any::<u8>(), port in any::<u16>(), host in "[a-z][a-z0-9.-]{0,20}") {
            let lo = Address::parse(&format!("127.{a}.{b}.{c}:{port}")).unwrap();
            prop_assert_eq!(Address::parse(&lo.logical("tcp")).unwrap(), lo.clone());
            let path = lo.remapped_path(Path::new("/d")).unwrap();
            prop_assert_eq!(path.to_str().unwrap(), format!("/d/127.{a}.{b}.{c}:{port}"));
            let ip = Address::parse(&format!("{host}:{port}")).unwrap();
            prop_assert_eq!(Address::parse(&ip.logical("tcp")).unwrap(), ip);
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = Address::parse(&s);
        }
    }
}
