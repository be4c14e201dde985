//! The one conformance suite every transport runs, one macro line each:
//!
//! ```ignore
//! ipc_core::conformance_tests!(pipe_conformance, ipc_pipes::Pipe, Threads);
//! ```
//!
//! Each check is a generic function over `T: Transport` and a [`Flavor`] that
//! says where the consumer lives (another thread, or a coroutine on this one).
//! Every check runs under a watchdog, so a transport that hangs fails the test
//! instead of stalling the suite.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::transport::{Mode, Options, Receiver, Sender, Transport};

/// The options the suite makes channels with: a maximum of 256 KiB keeps the
/// checks of every size quick.
pub fn options() -> Options {
    Options::default().max_message(256 * 1024)
}

/// Where the suite runs the consumer of a channel.
pub trait Flavor<T: Transport> {
    /// The mode the channels are made for.
    const MODE: Mode;
    /// Delivers `msgs` from `tx` to `rx` with a live consumer, then drops the
    /// sender; returns what arrived before the consumer saw `Disconnected`.
    fn deliver(tx: T::Sender, rx: T::Receiver, msgs: &[Vec<u8>]) -> Vec<Vec<u8>>;
}

/// The consumer runs on another thread and blocks in `recv`.
#[derive(Debug)]
pub struct Threads;

impl<T: Transport> Flavor<T> for Threads
where
    T::Sender: Send,
    T::Receiver: Send,
{
    const MODE: Mode = Mode::Thread;

    fn deliver(mut tx: T::Sender, mut rx: T::Receiver, msgs: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let consumer = std::thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                match rx.recv() {
                    Ok(m) => got.push(m.to_vec()),
                    Err(Error::Disconnected) => return got,
                    Err(e) => panic!("recv failed after {} messages: {e}", got.len()),
                }
            }
        });
        for (i, m) in msgs.iter().enumerate() {
            if let Err(e) = tx.send(m) {
                panic!("send of message {i} ({} bytes) failed: {e}", m.len());
            }
        }
        drop(tx);
        consumer.join().expect("the consumer thread panicked")
    }
}

/// The consumer is a coroutine resumed by each `send`, on this thread.
#[derive(Debug)]
pub struct Coroutines;

impl<T: Transport> Flavor<T> for Coroutines {
    const MODE: Mode = Mode::Coroutine;

    fn deliver(mut tx: T::Sender, rx: T::Receiver, msgs: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let got = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&got);
        T::spawn_consumer(
            &mut tx,
            rx,
            Box::new(move |m| {
                sink.borrow_mut().push(m.to_vec());
                Ok(())
            }),
        )
        .expect("spawn the consumer coroutine");
        for (i, m) in msgs.iter().enumerate() {
            if let Err(e) = tx.send(m) {
                panic!("send of message {i} ({} bytes) failed: {e}", m.len());
            }
        }
        drop(tx);
        let out = got.borrow().clone();
        out
    }
}

/// Aborts the test process if the guarded check runs longer than `limit`:
/// a hanging transport must fail, not stall the suite.
#[derive(Debug)]
pub struct Watchdog {
    done: Option<mpsc::Sender<()>>,
}

impl Watchdog {
    /// Starts watching check `name`.
    pub fn start(name: &'static str, limit: Duration) -> Self {
        let (done, wait) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                eprintln!("watchdog: {name} still running after {limit:?}: aborting the hung test");
                std::process::abort();
            }
        });
        Watchdog { done: Some(done) }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

fn channel<T: Transport>(mode: Mode) -> (T::Sender, T::Receiver) {
    match T::channel(mode, &options()) {
        Ok(ends) => ends,
        Err(e) => panic!("{}/{}: channel: {e}", T::NAME, T::VARIANT),
    }
}

/// A message whose bytes all depend on its index and its length.
pub fn message(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (i.wrapping_mul(31) ^ j.wrapping_mul(7)) as u8)
        .collect()
}

fn assert_same(sent: &[Vec<u8>], got: &[Vec<u8>]) {
    assert_eq!(got.len(), sent.len(), "messages lost or duplicated");
    for (i, (s, g)) in sent.iter().zip(got).enumerate() {
        assert!(
            s == g,
            "message {i} differs: sent {} bytes, got {} bytes",
            s.len(),
            g.len()
        );
    }
}

/// One message goes through unchanged.
pub fn round_trip<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("round_trip", Duration::from_secs(60));
    let (tx, rx) = channel::<T>(F::MODE);
    let sent = vec![b"hello, consumer".to_vec()];
    assert_same(&sent, &F::deliver(tx, rx, &sent));
}

/// Messages arrive in the order they were sent.
pub fn keeps_order<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("keeps_order", Duration::from_secs(60));
    let (tx, rx) = channel::<T>(F::MODE);
    let sent: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_le_bytes().to_vec()).collect();
    assert_same(&sent, &F::deliver(tx, rx, &sent));
}

/// Every size class from 0 bytes to the maximum goes through.
pub fn every_size_to_the_maximum<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("every_size_to_the_maximum", Duration::from_secs(60));
    let (tx, rx) = channel::<T>(F::MODE);
    let max = tx.max_message();
    let mut sizes = vec![
        0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 4095, 4096, 4097, 65535, 65536, 65537,
    ];
    sizes.retain(|&s| s < max);
    sizes.extend([max.saturating_sub(1), max]);
    let sent: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| message(i, s))
        .collect();
    assert_same(&sent, &F::deliver(tx, rx, &sent));
}

/// A message one byte over the maximum is `TooLarge`, and the channel still works.
pub fn one_byte_over_is_too_large<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("one_byte_over_is_too_large", Duration::from_secs(60));
    let (mut tx, rx) = channel::<T>(F::MODE);
    let max = tx.max_message();
    match tx.send(&vec![0; max + 1]) {
        Err(Error::TooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("expected TooLarge for {} bytes, got {other:?}", max + 1),
    }
    assert!(matches!(
        tx.try_send(&vec![0; max + 1]),
        Err(Error::TooLarge { .. })
    ));
    let sent = vec![b"still works".to_vec()];
    assert_same(&sent, &F::deliver(tx, rx, &sent));
}

/// Dropping the sender: what was sent is still received, then `Disconnected`.
pub fn sender_dropped_is_disconnected<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("sender_dropped_is_disconnected", Duration::from_secs(60));
    let (mut tx, mut rx) = channel::<T>(F::MODE);
    tx.send(b"last words").expect("send");
    drop(tx);
    assert_eq!(
        rx.recv().expect("the message sent before the drop"),
        b"last words"
    );
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
    assert!(matches!(rx.try_recv(), Err(Error::Disconnected)));
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(10)),
        Err(Error::Disconnected)
    ));

    let (tx, mut rx) = channel::<T>(F::MODE);
    drop(tx);
    assert!(
        matches!(rx.recv(), Err(Error::Disconnected)),
        "a sender dropped unused"
    );
}

/// Dropping the receiver makes `send` fail with `Disconnected` (at once, or
/// after the messages already in flight have filled the channel).
pub fn receiver_dropped_is_disconnected<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("receiver_dropped_is_disconnected", Duration::from_secs(60));
    let (mut tx, rx) = channel::<T>(F::MODE);
    drop(rx);
    let msg = vec![1u8; tx.max_message().min(1024)];
    for _ in 0..100_000 {
        match tx.try_send(&msg) {
            Err(Error::Disconnected) => {
                assert!(matches!(tx.send(&msg), Err(Error::Disconnected)));
                return;
            }
            Ok(()) => {}
            Err(e) => {
                panic!("try_send after the receiver was dropped: expected Disconnected, got {e}")
            }
        }
    }
    panic!("100000 sends after the receiver was dropped and none saw Disconnected");
}

/// An empty channel: `try_recv` is `Empty`; `recv_timeout` is `Timeout`, no
/// sooner than asked (or `WouldDeadlock` in coroutine mode, where nothing
/// could fill the channel while we wait).
pub fn empty_channel_waits<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("empty_channel_waits", Duration::from_secs(60));
    let (mut tx, mut rx) = channel::<T>(F::MODE);
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    let asked = Duration::from_millis(50);
    let start = Instant::now();
    let result = rx.recv_timeout(asked).map(<[u8]>::to_vec);
    if F::MODE == Mode::Coroutine {
        assert!(
            matches!(result, Err(Error::WouldDeadlock)),
            "got {result:?}"
        );
        assert!(matches!(rx.recv(), Err(Error::WouldDeadlock)));
    } else {
        assert!(matches!(result, Err(Error::Timeout)), "got {result:?}");
        assert!(
            start.elapsed() >= asked,
            "recv_timeout returned after {:?}",
            start.elapsed()
        );
    }
    tx.send(b"now").expect("send");
    assert_eq!(rx.try_recv().expect("a waiting message"), b"now");
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
}

/// Many messages of random sizes from 0 to the maximum: none lost, reordered
/// or altered.
pub fn random_sizes_nothing_lost<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("random_sizes_nothing_lost", Duration::from_secs(120));
    let (tx, rx) = channel::<T>(F::MODE);
    let max = tx.max_message();
    let mut rng = fastrand::Rng::with_seed(0x1dc5);
    let sent: Vec<Vec<u8>> = (0..2000)
        .map(|i| {
            // Mostly small messages, with every fifth drawn from the whole range.
            let len = if i % 5 == 0 {
                rng.usize(0..=max)
            } else {
                rng.usize(0..=max.min(512))
            };
            message(i, len)
        })
        .collect();
    assert_same(&sent, &F::deliver(tx, rx, &sent));
}

/// Runs the whole suite for a transport: `conformance_tests!(module, Type, Flavor)`
/// where the flavor is `Threads` or `Coroutines`.
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident, $transport:ty, $flavor:ident) => {
        #[cfg(test)]
        mod $module {
            use $crate::conformance::{self as c, $flavor};
            type T = $transport;

            #[test]
            fn round_trip() {
                c::round_trip::<T, $flavor>();
            }
            #[test]
            fn keeps_order() {
                c::keeps_order::<T, $flavor>();
            }
            #[test]
            fn every_size_to_the_maximum() {
                c::every_size_to_the_maximum::<T, $flavor>();
            }
            #[test]
            fn one_byte_over_is_too_large() {
                c::one_byte_over_is_too_large::<T, $flavor>();
            }
            #[test]
            fn sender_dropped_is_disconnected() {
                c::sender_dropped_is_disconnected::<T, $flavor>();
            }
            #[test]
            fn receiver_dropped_is_disconnected() {
                c::receiver_dropped_is_disconnected::<T, $flavor>();
            }
            #[test]
            fn empty_channel_waits() {
                c::empty_channel_waits::<T, $flavor>();
            }
            #[test]
            fn random_sizes_nothing_lost() {
                c::random_sizes_nothing_lost::<T, $flavor>();
            }
        }
    };
}
