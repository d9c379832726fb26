//! The operating-system calls that `rustix` does not cover, through `libc`. The only place of the
//! core with `unsafe`: every block says why it holds in a `// SAFETY:` comment. (The Python
//! buffer protocol's `unsafe` lives in `py/buffer.rs`, with the bindings it serves.)

pub mod creds;
