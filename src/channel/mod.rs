//! Queues and channels in shared memory: messages pass through a ring of bytes with atomics, and
//! a process sleeps in the kernel (a futex) only when there is nothing to do.
//!
//! The layout is documented in [`layout`] and the repository's `docs/channel.md`, so that a C
//! program can be a peer. A Rust program uses [`Queue`] and [`End`] (one end of a channel, made
//! by [`pair`] or named with [`End::create`] / [`End::open`]).

pub mod big;
pub mod end;
mod handoff;
pub mod layout;
pub mod local;
pub mod lock;
pub mod queue;
mod raw;
pub mod ring;
pub mod segment;
pub mod wait;
mod watch;

pub use end::{pair, End};
pub use queue::Queue;
pub use raw::Region;
pub use ring::{Msg, Ring, Slot};
pub use segment::Segment;
pub use wait::Waiting;

#[cfg(test)]
mod tests;
