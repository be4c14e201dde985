//! The ring's insides under bad input: forged headers and positions,
//! impossible sizes, a second producer, dead and reused peers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ipc_core::conformance::a_dead_process;
use ipc_core::liveness::ProcessId;
use ipc_core::{Error, Sender, LIMIT_OPTION};

use super::*;
use crate::region::Native;

fn ring(capacity: usize, max: usize) -> Arc<Ring> {
    Ring::create::<Native>(
        "shm",
        capacity,
        max,
        LIMIT_OPTION,
        Duration::from_secs(5),
        Arc::new(Futex),
    )
    .expect("ring")
}

/// Writes a header at the consumer's position, as a hostile peer could.
fn forge(rx: &ShmReceiver<Native>, len: u64) {
    rx.ring
        .header(rx.tail)
        .store(stamp(rx.tail) | len, Ordering::Release);
}

fn corrupt(rx: &mut ShmReceiver<Native>) -> String {
    match rx.take() {
        Err(Error::Corrupt(why)) => why,
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("expected Corrupt, got a message or nothing"),
    }
}

/// Both ends as if the ring had already carried `pos` bytes.
fn at(ring: Arc<Ring>, pos: u64) -> (ShmSender<Native>, ShmReceiver<Native>) {
    let (mut tx, mut rx) = ends::<Native>(ring);
    (tx.head, tx.cached_tail, tx.cleared, rx.tail) = (pos, pos, pos, pos);
    rx.ring.ctl().tail.0.store(pos, Ordering::Release);
    (tx, rx)
}

/// Makes the `side` end look as if its process had been killed: the end is
/// gone (dropped here) but not closed, and its owner is a dead process.
fn killed(ring: &Ring, side: Side, end: impl Sized) {
    drop(end);
    let end = ring.end(side);
    end.closed.store(0, Ordering::Release);
    end.owner.set(Some(a_dead_process().id()));
}

#[test]
fn a_header_that_cannot_be_is_corrupt_and_copies_nothing() {
    let (_tx, mut rx) = ends::<Native>(ring(4096, 256));

    // Longer than the largest message.
    forge(&rx, 1000);
    assert!(corrupt(&mut rx).contains("1000 bytes"));

    // Within the maximum but running past the end of the ring.
    rx.tail = 4096 - 16;
    forge(&rx, 200);
    assert!(corrupt(&mut rx).contains("200 bytes at ring offset 4080"));
    assert!(rx.buf.is_empty(), "nothing was copied");
}

#[test]
fn an_old_payload_where_the_next_header_goes_is_not_a_frame() {
    // At position P = 0x0101_0100 a header's stamp is 0x0101_0101, the
    // high half of a word of bytes 0x01. Put such a payload where P's
    // header will go (offset 256 of a 4096-byte ring), one lap earlier,
    // then send real frames up to P: the consumer must see nothing there.
    const P: u64 = 0x0101_0100;
    let (mut tx, mut rx) = at(ring(4096, 256), P - 4096 - 8);
    tx.put(&[1; 16], true).expect("send");
    assert_eq!(rx.take().ok().map(|_| rx.buf.clone()), Some(vec![1; 16]));
    // Offsets 272..4096 and 0..256 in frames of 256 and 240 bytes.
    for len in [248; 14].into_iter().chain([232, 248]) {
        tx.put(&vec![2; len], true).expect("send");
        assert!(matches!(rx.take(), Ok(true)));
        assert_eq!(rx.buf, vec![2; len]);
    }
    assert_eq!(tx.head, P);
    assert!(
        matches!(rx.take(), Ok(false)),
        "an old lap's bytes read as a frame"
    );
    tx.put(b"next", true).expect("send");
    assert!(matches!(rx.take(), Ok(true)));
    assert_eq!(rx.buf, b"next");
}

#[test]
fn a_consumer_position_that_cannot_be_is_corrupt_for_the_producer() {
    let (mut tx, _rx) = ends::<Native>(ring(4096, 256));
    // Ahead of the producer: a subtraction would wrap into "all free".
    tx.ring.ctl().tail.0.store(1 << 40, Ordering::Release);
    let err = (0..100)
        .find_map(|_| tx.put(&[0; 248], false).err())
        .expect("the forged position is noticed once the ring looks full");
    assert!(
        matches!(&err, Error::Corrupt(why) if why.contains("not within one ring")),
        "{err}"
    );
}

#[test]
fn the_creator_holds_both_ends_under_its_pid_and_start_time() {
    let ring = ring(4096, 256);
    for side in [Side::Producer, Side::Consumer] {
        assert_eq!(ring.end(side).owner.holder(), Some(ProcessId::current()));
        assert!(ring.alive(side));
    }
}

#[test]
fn a_pid_that_now_belongs_to_another_process_is_a_gone_peer() {
    let ring = ring(4096, 256);
    let owner = &ring.end(Side::Consumer).owner;
    let mut other = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let pid = other.id();
    let now = ProcessId::of(pid).expect("the start time of a running child");
    owner.set(Some(now));
    assert!(ring.alive(Side::Consumer));
    // The same pid, packed with an earlier start: the process that held
    // the end is not the one running now.
    let earlier = ProcessId::unpack(now.pack() - 1).expect("a process id");
    owner.set(Some(earlier));
    assert!(!ring.alive(Side::Consumer));
    let _ = other.kill();
    let _ = other.wait();
    owner.set(Some(now));
    assert!(!ring.alive(Side::Consumer));
    // A word no process id packs to.
    owner.set(None);
    ring.end(Side::Consumer)
        .handed_at_ns
        .store(0, Ordering::Release);
    assert!(
        !ring.alive(Side::Consumer),
        "an end handed over long ago and never opened"
    );
}

#[test]
fn an_end_opened_twice_is_refused_in_this_process_and_any_other() {
    let (tx, rx) = ends::<Native>(ring(4096, 256));
    let name = tx.ring.name().to_owned();
    // The creator holds the consumer end: nobody may open it.
    match Ring::open::<Native>(&name, Side::Consumer, Arc::new(Futex)) {
        Err(Error::InUse(why)) => assert!(why.contains("already open by this process"), "{why}"),
        other => panic!("expected InUse, got {:?}", other.map(drop)),
    }
    let _ring = tx.hand_over().expect("hand over the producer end");
    let first =
        Ring::open::<Native>(&name, Side::Producer, Arc::new(Futex)).expect("the first open");
    let first = ShmSender::<Native>::attach(first);
    assert!(
        matches!(
            Ring::open::<Native>(&name, Side::Producer, Arc::new(Futex)),
            Err(Error::InUse(_))
        ),
        "a second producer would race the first in the ring"
    );
    drop((first, rx));
}

#[test]
fn the_last_end_held_here_cannot_be_handed_over() {
    // The region's name lives while its creator holds an end: handing over
    // both would leave the children nothing to open.
    let (tx, rx) = ends::<Native>(ring(4096, 256));
    // As the export does: the ring it returns names the region, then goes.
    drop(rx.hand_over().expect("hand over the consumer end"));
    assert!(matches!(tx.hand_over(), Err(Error::BadEndpoint(_))));
}

#[test]
fn try_send_against_a_dead_consumer_is_disconnected_not_full_for_ever() {
    let (mut tx, rx) = ends::<Native>(ring(4096, 256));
    // The consumer's process died without a word (SIGKILL).
    killed(&tx.ring.clone(), Side::Consumer, rx);
    let mut full = 0u64;
    loop {
        match tx.try_send(&[5; 200]) {
            Ok(()) | Err(Error::Full) => full += 1,
            Err(Error::Disconnected) => break,
            Err(e) => panic!("expected Full then Disconnected, got {e}"),
        }
        assert!(full < 10_000_000, "try_send said Full for ever");
    }
    assert!(
        matches!(tx.try_send(&[5; 200]), Err(Error::Disconnected)),
        "once gone, always gone"
    );
}

#[test]
fn a_receiver_waiting_on_a_dead_producer_is_disconnected() {
    let (tx, mut rx) = ends::<Native>(ring(4096, 256));
    // The producer's process died without closing its end.
    killed(&rx.ring.clone(), Side::Producer, tx);
    let started = std::time::Instant::now();
    match ipc_core::Receiver::recv_timeout(&mut rx, Duration::from_secs(30)) {
        Err(Error::Disconnected) => {}
        other => panic!("expected Disconnected, got {:?}", other.map(<[u8]>::to_vec)),
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "noticed only after {:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            ipc_core::Receiver::try_recv(&mut rx),
            Err(Error::Disconnected)
        ),
        "once gone, always gone"
    );
}

#[test]
fn a_blocked_sender_with_a_dead_consumer_is_disconnected() {
    let (mut tx, rx) = ends::<Native>(ring(4096, 256));
    killed(&tx.ring.clone(), Side::Consumer, rx);
    let result = (0..100).try_for_each(|_| tx.send(&[6; 200]));
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
}

#[test]
fn an_unopened_end_whose_process_died_is_gone_at_once() {
    let (tx, rx) = ends::<Native>(ring(4096, 256));
    let ring = rx.hand_over().expect("hand over the consumer end");
    assert!(ring.alive(Side::Consumer), "within the connect timeout");
    tx.ring().expect_peer(&a_dead_process());
    assert!(
        !ring.alive(Side::Consumer),
        "the child that was to open it is dead"
    );
}

#[test]
fn a_ring_of_impossible_sizes_is_not_made_or_opened() {
    let make = |capacity, max| {
        Ring::create::<Native>(
            "shm",
            capacity,
            max,
            LIMIT_OPTION,
            Duration::ZERO,
            Arc::new(Futex),
        )
        .map(drop)
    };
    assert!(make(MAX_CAPACITY * 2, 256).is_err());
    assert!(make(4096, 4096).is_err());
    assert!(make(3000, 8).is_err());

    let forged = ring(4096, 256);
    let (tx, _rx) = ends::<Native>(Arc::clone(&forged));
    let _ = tx.hand_over().expect("hand over");
    let meta = &forged.ctl().meta.0;
    let open = || Ring::open::<Native>(forged.name(), Side::Producer, Arc::new(Futex)).map(drop);
    for (capacity, max) in [
        (3, 0),
        (8192, 256),
        (1 << 40, 256),
        (4096, 4096),
        (4096, u64::MAX),
    ] {
        meta.capacity.store(capacity, Ordering::Relaxed);
        meta.max_message.store(max, Ordering::Relaxed);
        assert!(
            matches!(open(), Err(Error::BadEndpoint(_))),
            "capacity {capacity}, max {max}"
        );
    }
    meta.capacity.store(4096, Ordering::Relaxed);
    meta.max_message.store(256, Ordering::Relaxed);
    meta.magic.store(0, Ordering::Release);
    assert!(matches!(open(), Err(Error::BadEndpoint(_))), "no magic");
    meta.magic.store(MAGIC, Ordering::Release);
    open().expect("an honest ring opens");
}

/// The message a loan test sends as number `i`, of `len` bytes.
fn loaned(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

#[test]
fn a_committed_loan_arrives_whole_by_view_and_by_copy() {
    let (mut tx, mut rx) = ends::<Native>(ring(4096, 256));
    for i in 0..2 {
        let mut loan = tx.loan(100).expect("loan");
        assert_eq!(loan.len(), 100);
        loan.copy_from_slice(&loaned(i, 100));
        loan.commit();
    }
    let view = rx.recv_in_place().expect("the first, in place");
    assert_eq!(&*view, loaned(0, 100).as_slice());
    drop(view);
    assert_eq!(
        ipc_core::Receiver::recv(&mut rx).expect("the second, copied"),
        loaned(1, 100).as_slice()
    );
    assert!(matches!(
        rx.try_recv_in_place().map(|v| v.len()),
        Err(Error::Empty)
    ));
}

#[test]
fn a_dropped_loan_publishes_nothing_even_when_it_wrote_what_looks_like_headers() {
    let (mut tx, mut rx) = ends::<Native>(ring(4096, 1024));
    for _ in 0..20 {
        // Fill the loan with words that read as a header for every position
        // that could follow, then give it up.
        let base = tx.head;
        let mut loan = tx.loan(1000).expect("loan");
        let wraps = base % 4096 + frame_len(1000) > 4096;
        for (k, word) in loan.chunks_exact_mut(8).enumerate() {
            // The word's own stream position, where the loan wrote it.
            let pos = if wraps {
                base.next_multiple_of(4096)
            } else {
                base
            } + 8
                + 8 * k as u64;
            word.copy_from_slice(&(stamp(pos) | 8).to_le_bytes());
        }
        drop(loan);
        assert!(matches!(
            rx.try_recv_in_place().map(|v| v.to_vec()),
            Err(Error::Empty)
        ));
        // Then real messages go where the loan was, and only they arrive.
        for i in 0..3 {
            tx.send(&loaned(i, 8 + i)).expect("send");
        }
        for i in 0..3 {
            let view = rx.try_recv_in_place().expect("a real message");
            assert_eq!(&*view, loaned(i, 8 + i).as_slice());
        }
        assert!(matches!(
            rx.try_recv_in_place().map(|v| v.to_vec()),
            Err(Error::Empty)
        ));
    }
}

#[test]
fn a_loan_above_the_maximum_is_too_large_and_takes_nothing() {
    let (mut tx, mut rx) = ends::<Native>(ring(4096, 256));
    match tx.loan(257).map(|l| l.len()) {
        Err(Error::TooLarge {
            len: 257, max: 256, ..
        }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    tx.send(b"after").expect("send");
    assert_eq!(&*rx.recv_in_place().expect("view"), b"after");
}

#[test]
fn loans_and_views_cross_the_end_of_the_ring_lap_after_lap() {
    let (mut tx, mut rx) = ends::<Native>(ring(4096, 1000));
    let mut sizes = fastrand_like(7);
    let mut received = 0usize;
    let mut sent = Vec::new();
    for i in 0..5000 {
        let len = (sizes() % 1001) as usize;
        loop {
            match tx.try_loan(len) {
                Ok(mut loan) => {
                    loan.copy_from_slice(&loaned(i, len));
                    loan.commit();
                    sent.push(len);
                    break;
                }
                Err(Error::Full) => {
                    let view = rx
                        .try_recv_in_place()
                        .expect("the ring is full, so not empty");
                    assert_eq!(&*view, loaned(received, sent[received]).as_slice());
                    received += 1;
                }
                Err(e) => panic!("loan: {e}"),
            }
        }
    }
    while let Ok(view) = rx.try_recv_in_place() {
        assert_eq!(&*view, loaned(received, sent[received]).as_slice());
        received += 1;
    }
    assert_eq!(received, 5000);
    assert!(tx.head > 20 * 4096, "the ring went round many times");
}

fn fastrand_like(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[test]
fn a_view_held_while_the_producer_fills_the_rest_of_the_ring_stays_as_it_was() {
    let (mut tx, mut rx) = ends::<Native>(ring(4096, 256));
    tx.send(&loaned(0, 200)).expect("send");
    let view = rx.recv_in_place().expect("view");
    // The producer fills every byte the view leaves free, lap over.
    let mut more = 0;
    loop {
        match tx.try_send(&loaned(more + 1, 200)) {
            Ok(()) => more += 1,
            Err(Error::Full) => break,
            Err(e) => panic!("send: {e}"),
        }
    }
    assert!(more >= 15, "the rest of the ring took {more} messages");
    assert_eq!(
        &*view,
        loaned(0, 200).as_slice(),
        "the view was written over"
    );
    drop(view);
    for i in 1..=more {
        assert_eq!(
            &*rx.recv_in_place().expect("view"),
            loaned(i, 200).as_slice()
        );
    }
    tx.send(b"room again").expect("the freed room is used");
}

#[test]
fn a_loan_waits_for_room_and_a_dead_consumer_ends_the_wait() {
    let (mut tx, rx) = ends::<Native>(ring(4096, 256));
    while tx.try_send(&[1; 200]).is_ok() {}
    killed(&tx.ring.clone(), Side::Consumer, rx);
    assert!(matches!(
        tx.loan(200).map(|l| l.len()),
        Err(Error::Disconnected)
    ));
}

/// Whatever a hostile producer writes where the consumer looks next (a
/// header word of any stamp and length, a wrap marker, at any position of
/// the stream), the consumer reads a message that lies inside the ring and
/// within the maximum, or nothing, or `Corrupt`: never a panic, never a read
/// outside the ring.
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_header_word_is_a_message_inside_the_ring_or_nothing_or_corrupt(
            slot in 0u64..(1 << 29),
            own_stamp in any::<bool>(),
            len in prop_oneof![0u64..300, Just(u32::MAX as u64), any::<u32>().prop_map(u64::from)],
            noise in any::<u64>(),
        ) {
            let pos = slot * 8;
            let (_tx, mut rx) = at(ring(4096, 256), pos);
            let word = if own_stamp { stamp(pos) | len } else { noise };
            rx.ring.header(pos).store(word, Ordering::Release);
            match rx.take() {
                Ok(true) => {
                    prop_assert!(rx.buf.len() <= 256);
                    prop_assert!(own_stamp || noise & !0xffff_ffff == stamp(pos));
                }
                Ok(false) | Err(Error::Corrupt(_)) => {}
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}

#[test]
fn wait_words_a_peer_keeps_rewriting_neither_hang_a_wait_nor_lose_a_message() {
    use ipc_core::Receiver;
    let ring = ring(4096, 256);
    let (mut tx, mut rx) = ends::<Native>(Arc::clone(&ring));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let vandal = {
        let (ring, stop) = (Arc::clone(&ring), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(0x3a17);
            while !stop.load(Ordering::Relaxed) {
                for side in [Side::Producer, Side::Consumer] {
                    ring.wait_word(side).forge(rng.u32(..), rng.u32(..));
                }
                std::thread::yield_now();
            }
        })
    };
    for _ in 0..3 {
        let start = std::time::Instant::now();
        let got = rx
            .recv_timeout(Duration::from_millis(300))
            .map(<[u8]>::to_vec);
        assert!(matches!(got, Err(Error::Timeout)), "{got:?}");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "a wait of 300 ms took {took:?}"
        );
        tx.send(b"through the vandal").expect("send");
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5))
                .expect("the message"),
            b"through the vandal"
        );
    }
    stop.store(true, Ordering::Relaxed);
    vandal.join().expect("the vandal thread");
}
