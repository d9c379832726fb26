//! A client in Rust: connects to a fastipc listener at ADDRESS, sends each MESSAGE as one
//! message and prints each reply on a line of its own (the reply's bytes as they came).
//!
//! ```text
//! cargo run --manifest-path examples/rust/Cargo.toml --bin rust_client -- 127.0.0.1:5000 hello
//! olleh
//! ```
//!
//! With `FASTIPC_AUTHKEY` set (the examples' own variable; the library reads none), the client
//! passes the `authkey` handshake of `multiprocessing.connection` with those bytes as the key,
//! as `fastipc.connect(address, authkey=...)` does; a listener with another key (or none)
//! makes it exit with status 1 and the reason on stderr.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::time::Duration;

use fastipc::{AuthKey, SocketOptions};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(address) = args.next().and_then(|a| a.into_string().ok()) else {
        eprintln!("usage: rust_client ADDRESS [MESSAGE...]");
        return ExitCode::from(2);
    };
    match run(&address, args.collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rust_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(address: &str, messages: Vec<OsString>) -> Result<(), Box<dyn std::error::Error>> {
    // The defaults, but give up connecting after 10 s rather than wait for ever.
    let mut options = SocketOptions::new().timeout(Duration::from_secs(10));
    if let Some(key) = std::env::var_os("FASTIPC_AUTHKEY") {
        options = options.authkey(AuthKey::new(key.as_bytes())?);
    }
    let conn = options.connect(address)?;
    let mut out = std::io::stdout().lock();
    for message in messages {
        conn.send_bytes(message.as_bytes())?;
        let reply = conn.recv_bytes()?;
        out.write_all(&reply)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
