//! The ring's own checks: wrap-around at every offset class, random sizes,
//! corrupt frames, a dead peer.

use std::time::Duration;

use ipc_core::{Error, Mode, Options, Receiver, Sender, Transport};

use crate::{ring_capacity, ShmRing};

/// No wait in these tests should come near this; a hang fails instead.
const LIMIT: Duration = Duration::from_secs(20);

fn small_ring(max: usize) -> Options {
    Options::default().max_message(max).capacity(0)
}

#[test]
fn the_ring_size_holds_two_of_the_largest_frames() {
    let size = |opts: &Options| ring_capacity(opts).expect("a ring size");
    assert_eq!(size(&small_ring(100)), 256);
    assert_eq!(size(&Options::default()), 4 << 20);
    assert_eq!(
        size(&Options::default().max_message(64 << 10).capacity(256 << 10)),
        256 << 10
    );
    assert!(size(&Options::default().capacity(5000).max_message(8)).is_power_of_two());
}

#[test]
fn sizes_beyond_the_ring_are_lowered_or_refused_before_anything_is_made() {
    // A maximum no ring holds is lowered to what the largest ring holds.
    assert_eq!(
        ring_capacity(&Options::default().max_message(usize::MAX)).expect("lowered"),
        crate::ring::MAX_CAPACITY
    );
    // A capacity beyond the largest ring is refused, naming the limit.
    let err = ring_capacity(&Options::default().capacity(usize::MAX)).expect_err("refused");
    assert!(err.to_string().contains("2 GiB"), "{err}");
    let err =
        ShmRing::channel(Mode::Thread, &Options::default().capacity(1 << 40)).expect_err("refused");
    assert!(err.to_string().contains("capacity"), "{err}");
}

#[test]
fn an_oversize_message_names_the_limit_that_refused_it() {
    let (mut tx, _rx) = ShmRing::channel(Mode::Thread, &small_ring(100)).expect("ring");
    match tx.send(&[0; 101]) {
        Err(Error::TooLarge {
            len: 101,
            max: 100,
            limit,
        }) => {
            assert_eq!(limit, ipc_core::LIMIT_OPTION)
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn wrap_around_at_every_offset_class_loses_nothing() {
    // A 256-byte ring and messages whose frames take 8..=112 bytes: over
    // many laps the wrap point falls at every 8-byte offset, with and
    // without a wrap marker.
    let (mut tx, mut rx) = ShmRing::channel(Mode::Thread, &small_ring(100)).expect("ring");
    let mut offsets = std::collections::BTreeSet::new();
    let mut wraps = 0;
    let mut rng = fastrand_like(3);
    for i in 0..20_000usize {
        let len = (rng() % 101) as usize;
        let msg: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
        let before = tx.head;
        tx.send(&msg).expect("send");
        assert_eq!(
            rx.recv_timeout(LIMIT).expect("recv"),
            &msg[..],
            "message {i}"
        );
        assert_eq!(rx.tail, tx.head, "the consumer is where the producer is");
        // Where the ring put the frame: right after the last, or, past a
        // wrap marker, at offset 0.
        let frame = 8 + len.next_multiple_of(8) as u64;
        let start = tx.head - frame;
        assert!(start == before || start % 256 == 0, "message {i}");
        if start != before {
            wraps += 1;
        }
        offsets.insert(start % 256);
    }
    assert_eq!(
        offsets.len(),
        32,
        "every 8-byte offset class of the ring was a frame start"
    );
    assert!(wraps > 1000, "the wrap marker was used {wraps} times");
}

#[test]
fn a_hundred_thousand_random_sizes_across_threads() {
    let max = 4096;
    let (mut tx, mut rx) = ShmRing::channel(
        Mode::Thread,
        &Options::default().max_message(max).capacity(16 << 10),
    )
    .expect("ring");
    let producer = std::thread::spawn(move || {
        let mut rng = fastrand_like(7);
        for i in 0..100_000u64 {
            let len = (rng() % (max as u64 + 1)) as usize;
            let mut msg = vec![(i % 251) as u8; len];
            if len >= 8 {
                msg[..8].copy_from_slice(&i.to_le_bytes());
            }
            tx.send(&msg).expect("send");
        }
    });
    let mut rng = fastrand_like(7);
    for i in 0..100_000u64 {
        let len = (rng() % (max as u64 + 1)) as usize;
        let got = rx.recv_timeout(LIMIT).expect("recv");
        assert_eq!(got.len(), len, "message {i}");
        if len >= 8 {
            assert_eq!(&got[..8], &i.to_le_bytes(), "message {i} out of order");
        }
        assert!(
            got[8.min(len)..].iter().all(|&b| b == (i % 251) as u8),
            "message {i} corrupt"
        );
    }
    assert!(matches!(rx.recv_timeout(LIMIT), Err(Error::Disconnected)));
    producer.join().expect("producer");
}

/// A tiny deterministic generator, so both sides draw the same sizes.
fn fastrand_like(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[test]
fn a_full_ring_is_full_for_try_send() {
    let (mut tx, mut rx) = ShmRing::channel(Mode::Thread, &small_ring(100)).expect("ring");
    let mut sent = 0;
    while tx.try_send(&[1; 100]).is_ok() {
        sent += 1;
    }
    assert!(matches!(tx.try_send(&[1; 100]), Err(Error::Full)));
    assert!(sent >= 1);
    for _ in 0..sent {
        assert_eq!(rx.try_recv().expect("a sent message"), &[1; 100]);
    }
    tx.try_send(&[2; 100]).expect("room again");
}

#[test]
fn a_blocked_receiver_wakes_for_a_message_from_another_thread() {
    let (mut tx, mut rx) = ShmRing::channel(Mode::Thread, &Options::default()).expect("ring");
    // Sleeps that outlast the test's limit: a missed wake-up fails it.
    tx.set_sleep_limit(3 * LIMIT);
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        tx.send(b"late").expect("send");
        tx
    });
    let started = std::time::Instant::now();
    assert_eq!(rx.recv_timeout(LIMIT).expect("recv"), b"late");
    // A missed wake-up would end the sleep only at the deadline.
    assert!(
        started.elapsed() < LIMIT / 2,
        "the receiver slept through the sender's wake-up"
    );
    drop(sender.join());
    assert!(matches!(rx.recv_timeout(LIMIT), Err(Error::Disconnected)));
}

#[test]
fn a_blocked_sender_wakes_when_the_receiver_makes_room() {
    let (mut tx, mut rx) = ShmRing::channel(Mode::Thread, &small_ring(100)).expect("ring");
    // Sleeps that outlast the test's limit: a missed wake-up fails it.
    tx.set_sleep_limit(3 * LIMIT);
    let mut sent = 0;
    while tx.try_send(&[3; 100]).is_ok() {
        sent += 1;
    }
    let receiver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        // Take exactly what filled the ring: the message sent below is for later.
        for _ in 0..sent {
            assert_eq!(rx.recv_timeout(LIMIT).expect("a queued message"), &[3; 100]);
        }
        rx
    });
    let started = std::time::Instant::now();
    tx.send(&[4; 100]).expect("send waits for room");
    assert!(
        started.elapsed() < LIMIT / 2,
        "the sender slept through the receiver's wake-up"
    );
    let mut rx = receiver.join().expect("receiver");
    assert_eq!(
        rx.recv_timeout(LIMIT).expect("the message that waited"),
        &[4; 100]
    );
}

#[test]
fn an_end_handed_over_but_never_opened_counts_as_gone_after_the_connect_timeout() {
    let opts = Options::default().connect_timeout(Duration::from_millis(200));
    let (tx, mut rx) = ShmRing::channel(Mode::Process, &opts).expect("ring");
    // The endpoint would go to a child that dies before it opens it.
    let endpoint = ShmRing::export_sender(tx, &mut ipc_core::Handover::new()).expect("export");
    drop(endpoint);
    assert!(matches!(rx.recv_timeout(LIMIT), Err(Error::Disconnected)));
}

#[test]
fn an_end_that_already_moved_a_message_cannot_be_handed_over() {
    let (mut tx, mut rx) = ShmRing::channel(Mode::Process, &Options::default()).expect("ring");
    tx.send(b"first").expect("send");
    assert_eq!(rx.recv_timeout(LIMIT).expect("recv"), b"first");
    let mut handover = ipc_core::Handover::new();
    match ShmRing::export_receiver(rx, &mut handover) {
        Err(Error::BadEndpoint(why)) => assert!(why.contains("before its first receive"), "{why}"),
        other => panic!("expected BadEndpoint, got {:?}", other.map(|_| ())),
    }
    match ShmRing::export_sender(tx, &mut handover) {
        Err(Error::BadEndpoint(why)) => assert!(why.contains("before its first send"), "{why}"),
        other => panic!("expected BadEndpoint, got {:?}", other.map(|_| ())),
    }
}
