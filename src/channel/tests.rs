#![allow(clippy::cast_possible_truncation, clippy::many_single_char_names)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::layout::{RINGS_START, RING_HEADER, R_TAIL};
use super::*;
use crate::error::Error;
use crate::wait::{Deadline, Uninterrupted};

fn wait_for(timeout: Option<Duration>) -> (Deadline, Uninterrupted) {
    (Deadline::after(timeout), Uninterrupted)
}

fn put(q: &Queue, data: &[u8], timeout: Option<Duration>) -> crate::Result<()> {
    let (d, mut i) = wait_for(timeout);
    q.put_bytes(data, &mut Waiting::new(d, &mut i, "q"))
}

fn get(q: &Queue, timeout: Option<Duration>) -> crate::Result<Vec<u8>> {
    let (d, mut i) = wait_for(timeout);
    q.get_bytes(&mut Waiting::new(d, &mut i, "q"))
}

#[test]
fn round_trip_across_the_wrap() {
    let q = Queue::create(1024, 0, None, 0o600, false).unwrap();
    for n in 0..2000usize {
        let msg: Vec<u8> = (0..n % 300).map(|i| (i + n) as u8).collect();
        put(&q, &msg, Some(Duration::ZERO)).unwrap();
        assert_eq!(get(&q, Some(Duration::ZERO)).unwrap(), msg);
    }
    assert_eq!(q.ring().count(), 0);
}

#[test]
fn full_and_empty_time_out() {
    let q = Queue::create(1024, 2, None, 0o600, false).unwrap();
    assert!(matches!(
        get(&q, Some(Duration::from_millis(20))),
        Err(Error::Timeout { .. })
    ));
    put(&q, b"a", None).unwrap();
    put(&q, b"b", None).unwrap();
    assert_eq!(q.ring().count(), 2);
    assert!(matches!(
        put(&q, b"c", Some(Duration::ZERO)),
        Err(Error::Timeout { .. })
    ));
    assert!(matches!(
        put(&q, &[0u8; 600], None),
        Err(Error::MessageTooLarge { .. })
    ));
    assert_eq!(get(&q, None).unwrap(), b"a");
}

#[test]
fn many_producers_many_consumers() {
    let q = Arc::new(Queue::create(4096, 0, None, 0o600, false).unwrap());
    let producers: Vec<_> = (0..3u8)
        .map(|p| {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                for i in 0..3000u32 {
                    let mut msg = vec![p];
                    msg.extend_from_slice(&i.to_le_bytes());
                    put(&q, &msg, None).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(m) = get(&q, Some(Duration::from_millis(300))) {
                    got.push(m);
                }
                got
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let mut all: Vec<Vec<u8>> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(all.len(), 9000);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 9000);
}

#[test]
fn corrupt_indices_are_errors() {
    let q = Queue::create(1024, 0, None, 0o600, false).unwrap();
    put(&q, b"hello", None).unwrap();
    let tail = q.segment().region().u64_at(RINGS_START + R_TAIL).unwrap();
    tail.store(1 << 40, Ordering::Release);
    assert!(matches!(
        get(&q, Some(Duration::ZERO)),
        Err(Error::Corrupt { .. })
    ));
    tail.store(24, Ordering::Release);
    // A length far past the ring.
    let at = RINGS_START + RING_HEADER + 4;
    q.segment().region().write(at, &u32::MAX.to_le_bytes());
    assert!(matches!(
        get(&q, Some(Duration::ZERO)),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn random_bytes_never_crash() {
    let q = Queue::create(1024, 0, None, 0o600, false).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let region = q.segment().region().clone();
    // Everything: the segment's header and the ring's, its lock words included.
    let start = 0;
    let end = RINGS_START + RING_HEADER + 1024;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let off = start + (x as usize) % (end - start);
        region.write(off, &x.to_le_bytes()[..=((x >> 60) as usize % 8)]);
        let _ = put(&q, b"payload", Some(Duration::ZERO));
        let _ = get(&q, Some(Duration::ZERO));
    }
}

#[test]
fn channel_pair_eof_after_drain() {
    let (a, b) = pair(1024).unwrap();
    let (d, mut i) = wait_for(None);
    let mut w = Waiting::new(d, &mut i, "c");
    let slot = a.tx().reserve(3, &mut w).unwrap();
    a.tx().write(&slot, 0, b"abc").unwrap();
    a.tx().publish(slot, 3, 0).unwrap();
    assert!(!b.peer_gone());
    drop(a);
    assert!(b.peer_gone());
    let msg = b.rx().acquire(&mut w).unwrap();
    assert_eq!(msg.len, 3);
    b.rx().release(msg);
    assert!(b.send_check().is_err());
}

#[test]
fn joinable_counts_tasks() {
    let q = Queue::create(1024, 0, None, 0o600, true).unwrap();
    put(&q, b"x", None).unwrap();
    let mut i = Uninterrupted;
    assert!(!q
        .join(Deadline::after(Some(Duration::from_millis(10))), &mut i)
        .unwrap());
    q.task_done().unwrap();
    assert!(q.task_done().is_err());
    assert!(q.join(Deadline::NEVER, &mut i).unwrap());
}

#[test]
fn large_messages_into_an_empty_ring_start_over() {
    let q = Queue::create(512 * 1024, 0, None, 0o600, false).unwrap();
    for round in 0..40usize {
        let small: Vec<u8> = vec![round as u8; 1000 + round * 3000];
        put(&q, &small, None).unwrap();
        assert_eq!(get(&q, Some(Duration::ZERO)).unwrap(), small);
        let big: Vec<u8> = (0..100_000 + round * 1000)
            .map(|i| (i + round) as u8)
            .collect();
        put(&q, &big, None).unwrap();
        assert_eq!(get(&q, Some(Duration::ZERO)).unwrap(), big);
    }
    assert_eq!(q.ring().count(), 0);
}

#[test]
fn a_named_segment_shrunk_under_the_mapping_is_an_error() {
    let name = format!("/fastipc-test-shrunk-{}", std::process::id());
    let q = Queue::create(1 << 16, 0, Some(&name), 0o600, false).unwrap();
    put(&q, b"before", None).unwrap();
    // Another holder of the segment shrinks it to nothing under our mapping.
    let fd = rustix::shm::open(
        name.as_str(),
        rustix::shm::OFlags::RDWR,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    rustix::fs::ftruncate(&fd, 0).unwrap();
    crate::shm::unlink(&name).unwrap();
    // The access faults (SIGBUS); the handler maps zero pages and the ring reports it.
    for _ in 0..2 {
        let got = get(&q, Some(Duration::ZERO));
        let Err(Error::Corrupt { what }) = got else {
            panic!("not a corrupt channel error: {got:?}");
        };
        assert!(what.contains(&name), "{what}");
        assert!(what.contains("truncated"), "{what}");
    }
    assert!(matches!(
        put(&q, b"after", Some(Duration::ZERO)),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn a_big_message_segment_shrunk_under_both_mappings_is_an_error() {
    let len = 3 * 4096;
    let sent = big::create(len).unwrap();
    sent.mapping().write_at(0, &[7u8; 3 * 4096]).unwrap();
    let (received, got_len) = big::open(&big::reference(&sent, len)).unwrap();
    assert_eq!(got_len, len);
    let name = sent.name().unwrap().to_string();
    rustix::fs::ftruncate(sent.as_fd(), 0).unwrap();
    // Both sides fault on their next access; the handler maps zero pages; the checks report it.
    let mut out = vec![1u8; len];
    received.read_at(0, &mut out).unwrap();
    assert!(out.iter().all(|b| *b == 0), "zero pages after the fault");
    let Err(Error::Corrupt { what }) = big::intact(&received) else {
        panic!("the receiver's mapping is not marked");
    };
    assert!(what.contains(&name), "{what}");
    sent.mapping().write_at(0, b"more").unwrap();
    assert!(matches!(
        big::still_whole(&sent, len),
        Err(Error::Corrupt { .. })
    ));
}
