//! Both variants between threads: many messages of random sizes, two
//! channels side by side, the doorbell that really wakes its receiver.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipc_core::{Error, Mode, Options, Receiver, Sender, Transport};

use crate::{Doorbell, Rt};

/// A tiny deterministic generator, so both sides draw the same sizes.
fn sizes(seed: u64, most: u64) -> impl FnMut() -> usize {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % (most + 1)) as usize
    }
}

fn message(i: u64, len: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..len).map(|j| (i as usize * 31 + j) as u8).collect();
    if len >= 8 {
        m[..8].copy_from_slice(&i.to_le_bytes());
    }
    m
}

/// `count` messages of random sizes up to `most` bytes from a producer
/// thread: all arrive, in order, intact.
fn random_sizes_in_order<T: Transport>(count: u64, most: u64)
where
    T::Sender: Send,
{
    let opts = Options::default().max_message(most as usize);
    let (mut tx, mut rx) = T::channel(Mode::Thread, &opts).expect("channel");
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    let producer = std::thread::spawn(move || {
        let mut size = sizes(11, most);
        for i in 0..count {
            tx.send(&message(i, size())).expect("send");
        }
    });
    let mut size = sizes(11, most);
    for i in 0..count {
        let got = rx.recv_timeout(Duration::from_secs(30)).expect("recv");
        assert!(got == message(i, size()), "message {i} is wrong");
    }
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(30)),
        Err(Error::Disconnected)
    ));
    producer.join().expect("producer");
}

#[test]
fn ten_thousand_random_sizes_up_to_4_kib_arrive_in_order_by_rt() {
    random_sizes_in_order::<Rt>(10_000, 4096);
}

#[test]
fn ten_thousand_random_sizes_up_to_64_kib_arrive_in_order_by_doorbell() {
    random_sizes_in_order::<Doorbell>(10_000, 64 << 10);
}

#[test]
fn two_channels_in_one_process_do_not_see_each_others_signals() {
    let (tx_a, mut rx_a) = Rt::channel(Mode::Thread, &Options::default()).expect("a");
    let (tx_b, mut rx_b) = Rt::channel(Mode::Thread, &Options::default()).expect("b");
    let receiver = std::thread::spawn(move || {
        // Both on one thread: only the signal numbers keep them apart.
        let _ = (rx_a.try_recv(), rx_b.try_recv());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..500 {
            a.push(rx_a.recv().expect("a").to_vec());
            b.push(rx_b.recv().expect("b").to_vec());
        }
        (a, b, rx_a.foreign_signals() + rx_b.foreign_signals())
    });
    let senders: Vec<_> = [(tx_a, b'a'), (tx_b, b'b')]
        .into_iter()
        .map(|(mut tx, tag)| {
            std::thread::spawn(move || {
                for i in 0..500u32 {
                    let mut m = vec![tag; 12];
                    m[..4].copy_from_slice(&i.to_le_bytes());
                    tx.send(&m).expect("send");
                }
            })
        })
        .collect();
    let (a, b, foreign) = receiver.join().expect("receiver");
    for s in senders {
        s.join().expect("sender");
    }
    for (got, tag) in [(a, b'a'), (b, b'b')] {
        for (i, m) in got.iter().enumerate() {
            assert_eq!(&m[..4], &(i as u32).to_le_bytes(), "order on channel {tag}");
            assert!(
                m[4..].iter().all(|&x| x == tag),
                "a message of the other channel"
            );
        }
    }
    assert_eq!(foreign, 0);
}

#[test]
fn a_receiver_that_moves_to_another_thread_is_refused() {
    let (mut tx, mut rx) = Rt::channel(Mode::Thread, &Options::default()).expect("channel");
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    tx.send(b"here").expect("send");
    let moved = std::thread::spawn(move || rx.recv().map(<[u8]>::to_vec));
    assert!(matches!(
        moved.join().expect("thread"),
        Err(Error::Unsupported { .. })
    ));
}

#[test]
fn the_doorbell_really_wakes_its_sleeping_receiver() {
    let (mut tx, mut rx) = Doorbell::channel(Mode::Thread, &Options::default()).expect("ring");
    // Sleeps of 10 s: without the doorbell's signal the receiver would
    // sleep that long before it looked again.
    rx.set_sleep_limit(Duration::from_secs(10));
    let sent_at = Arc::new(Mutex::new(None::<Instant>));
    let stamp = Arc::clone(&sent_at);
    let receiver = std::thread::spawn(move || {
        let got = rx.recv_timeout(Duration::from_secs(30)).map(<[u8]>::to_vec);
        let arrived = Instant::now();
        (got, arrived)
    });
    // Long enough for the receiver to be asleep.
    std::thread::sleep(Duration::from_millis(500));
    *stamp.lock().expect("stamp") = Some(Instant::now());
    tx.send(b"wake up").expect("send");
    let (got, arrived) = receiver.join().expect("receiver");
    assert_eq!(got.expect("the message"), b"wake up");
    let sent = sent_at.lock().expect("stamp").expect("sent");
    let took = arrived.saturating_duration_since(sent);
    assert!(
        took < Duration::from_millis(100),
        "the message took {took:?}: the doorbell did not wake the receiver"
    );
}
