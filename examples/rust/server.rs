//! An echo server in Rust that peers in any language can talk to: it listens at ADDRESS
//! (`127.0.0.1:0`, a free port, when none is given), prints where it listens, and answers every
//! message of each connection with the same bytes reversed until the client hangs up. With
//! COUNT it exits after that many connections (its socket file and lock file go with it).
//!
//! ```text
//! cargo run --manifest-path examples/rust/Cargo.toml --bin rust_server -- 127.0.0.1:5000
//! listening 127.0.0.1:5000 /run/user/1000/fastipc/127.0.0.1:5000
//! ```
//!
//! With `FASTIPC_AUTHKEY` set (the examples' own variable; the library reads none), every
//! client must pass the `authkey` handshake of `multiprocessing.connection` with those bytes as
//! the key, as for `fastipc.listen(address, authkey=...)`: one that fails (another key, none,
//! silence for a second) is dropped and not counted among the COUNT connections.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use fastipc::{AuthKey, Error, SocketOptions, Stream};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:0".to_string());
    let count = match args.next().map(|n| n.parse::<usize>()) {
        None => usize::MAX,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: rust_server [ADDRESS [COUNT]]");
            return ExitCode::from(2);
        }
    };
    match serve(&address, count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rust_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(address: &str, count: usize) -> fastipc::Result<()> {
    let mut options = SocketOptions::new();
    if let Some(key) = std::env::var_os("FASTIPC_AUTHKEY") {
        options = options.authkey(AuthKey::new(key.as_bytes())?);
    }
    let listener = options.listen(address)?;
    // The logical address (with the real port) and, for Unix sockets, the socket file: what a
    // client connects to, through fastipc or through any Unix socket API.
    let path = listener
        .path()
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default();
    say(&format!("listening {}{path}", listener.address()));
    for conn in listener.incoming().take(count) {
        let served = echo_reversed(&conn?)?;
        say(&format!("served {served} messages"));
    }
    if listener.refused() > 0 {
        say(&format!("refused {}", listener.refused()));
    }
    Ok(())
}

/// Answers every message with its bytes reversed; the number of messages at the client's end.
fn echo_reversed(conn: &Stream) -> fastipc::Result<usize> {
    let mut served = 0;
    loop {
        let mut message = match conn.recv_bytes() {
            Ok(message) => message,
            Err(Error::Eof { .. }) => return Ok(served),
            Err(e) => return Err(e),
        };
        message.reverse();
        conn.send_bytes(&message)?;
        served += 1;
    }
}

/// One line on stdout, at once (a parent process reads it through a pipe).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
