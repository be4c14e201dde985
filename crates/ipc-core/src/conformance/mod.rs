//! The one conformance suite every transport runs, one macro line per
//! flavour:
//!
//! ```ignore
//! ipc_core::conformance_tests!(pipe_conformance, ipc_pipes::Pipe, Threads);
//! ipc_core::conformance_tests!(pipe_process_conformance, ipc_pipes::Pipe, Processes);
//! ```
//!
//! Each check is a generic function over `T: Transport` and a [`Flavor`]
//! that says where the other end lives: another thread ([`Threads`]), a
//! coroutine on this thread ([`Coroutines`]), or a child process spawned
//! through [`crate::Handover`] the way a library user would ([`Processes`]:
//! the test binary starts itself again, running only the same test, which
//! then plays the other end). Every check runs under a watchdog, so a
//! transport that hangs fails the test instead of stalling the suite.
//! Messages are compared by length and digest ([`Digest`]), which also
//! crosses a process boundary cheaply.

mod endurance;
mod flavors;
mod process;

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::transport::{Mode, Options, Receiver, Sender, Transport};

pub use endurance::{
    create_drop_cycles, soak, soak_a_million, soak_messages, CYCLES, SOAK_LONG, SOAK_SHORT,
};
pub use flavors::{Coroutines, Flavor, Producer, Threads};
pub use process::{run, Processes};

/// The options the suite makes channels with: a maximum of 256 KiB keeps the
/// checks of every size quick.
pub fn options() -> Options {
    Options::default().max_message(256 * 1024)
}

/// A message as the suite compares it: its length and a 64-bit hash of its
/// bytes, the same in every process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Digest {
    /// Its length in bytes.
    pub len: u64,
    /// A hash of its bytes.
    pub hash: u64,
}

/// The [`Digest`] of `bytes`.
pub fn digest(bytes: &[u8]) -> Digest {
    let mut hash = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = (hash ^ u64::from_le_bytes(word))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(29);
    }
    Digest {
        len: bytes.len() as u64,
        hash,
    }
}

/// Aborts the test process if the guarded check runs longer than `limit`:
/// a hanging transport must fail, not stall the suite.
#[derive(Debug)]
pub struct Watchdog {
    done: Option<std::sync::mpsc::Sender<()>>,
}

impl Watchdog {
    /// Starts watching check `name`.
    pub fn start(name: &'static str, limit: Duration) -> Self {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
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

/// How long a check may take before the watchdog ends it.
const LIMIT: Duration = Duration::from_secs(120);

fn channel<T: Transport>(mode: Mode) -> (T::Sender, T::Receiver) {
    match T::channel(mode, &options()) {
        Ok(ends) => ends,
        Err(e) => panic!("{}/{}: channel: {e}", T::NAME, T::VARIANT),
    }
}

/// The identity of a process that has exited and been reaped: a peer that
/// died, for tests of what notices it.
pub fn a_dead_process() -> crate::liveness::PeerProcess {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    // Read even if it is a zombie already.
    let peer = crate::liveness::PeerProcess::of_child(&child).expect("its identity");
    child.wait().expect("reap");
    peer
}

/// A message whose bytes all depend on its index and its length.
pub fn message(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (i.wrapping_mul(31) ^ j.wrapping_mul(7)) as u8)
        .collect()
}

fn digests(msgs: &[Vec<u8>]) -> Vec<Digest> {
    msgs.iter().map(|m| digest(m)).collect()
}

fn assert_same(sent: &[Digest], got: &[Digest]) {
    for (i, (s, g)) in sent.iter().zip(got).enumerate() {
        assert!(
            s == g,
            "message {i} differs: sent {} bytes, got {} bytes (or the same length, other bytes)",
            s.len,
            g.len
        );
    }
    assert_eq!(got.len(), sent.len(), "messages lost or duplicated");
}

/// Sends `msgs` to a consumer where `F` puts it, and checks what arrived.
fn deliver<T: Transport, F: Flavor<T>>(tx: T::Sender, rx: T::Receiver, msgs: &[Vec<u8>]) {
    let got = F::consume(tx, rx, false, &mut |tx| {
        for (i, m) in msgs.iter().enumerate() {
            if let Err(e) = tx.send(m) {
                panic!("send of message {i} ({} bytes) failed: {e}", m.len());
            }
        }
    });
    assert_same(&digests(msgs), &got);
}

/// One message goes through unchanged.
pub fn round_trip<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("round_trip", LIMIT);
    let (tx, rx) = channel::<T>(F::MODE);
    deliver::<T, F>(tx, rx, &[b"hello, consumer".to_vec()]);
}

/// Messages arrive in the order they were sent.
pub fn keeps_order<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("keeps_order", LIMIT);
    let (tx, rx) = channel::<T>(F::MODE);
    let sent: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_le_bytes().to_vec()).collect();
    deliver::<T, F>(tx, rx, &sent);
}

/// Every size class from 0 bytes to the maximum goes through.
pub fn every_size_to_the_maximum<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("every_size_to_the_maximum", LIMIT);
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
    deliver::<T, F>(tx, rx, &sent);
}

/// A message one byte over the maximum is `TooLarge`, naming its limit, and
/// the channel still works.
pub fn one_byte_over_is_too_large<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("one_byte_over_is_too_large", LIMIT);
    let (mut tx, rx) = channel::<T>(F::MODE);
    let max = tx.max_message();
    assert!(
        max <= options().max_message,
        "the maximum can only be lowered"
    );
    match tx.send(&vec![0; max + 1]) {
        Err(Error::TooLarge { len, max: m, limit }) => {
            assert_eq!((len, m), (max + 1, max));
            assert!(!limit.is_empty(), "the limit has a name");
        }
        other => panic!("expected TooLarge for {} bytes, got {other:?}", max + 1),
    }
    assert!(matches!(
        tx.try_send(&vec![0; max + 1]),
        Err(Error::TooLarge { .. })
    ));
    deliver::<T, F>(tx, rx, &[b"still works".to_vec()]);
}

/// Dropping the sender: what was sent is still received, then `Disconnected`.
pub fn sender_dropped_is_disconnected<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("sender_dropped_is_disconnected", LIMIT);
    let (tx, mut rx) = channel::<T>(F::MODE);
    let mut producer = F::produce(tx, &mut rx, vec![b"last words".to_vec()]);
    // A first poll, as a consumer would: a transport that learns its
    // receiving thread from its first call (signals) knows it from here on.
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    producer.go();
    producer.finish();
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
    let mut producer = F::produce(tx, &mut rx, Vec::new());
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    producer.go();
    producer.finish();
    assert!(
        matches!(rx.recv(), Err(Error::Disconnected)),
        "a sender dropped unused"
    );
}

/// Sends with `try_send` until `Disconnected`, which must come within a
/// bounded time; then `send` says the same.
fn until_disconnected<S: Sender>(tx: &mut S, what: &str) {
    let msg = vec![1u8; tx.max_message().min(1024)];
    let started = Instant::now();
    loop {
        match tx.try_send(&msg) {
            Err(Error::Disconnected) => break,
            Ok(()) | Err(Error::Full) => {}
            Err(e) => panic!("try_send after {what}: expected Disconnected, got {e}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "30 s of try_send after {what} and none saw Disconnected"
        );
        std::thread::yield_now();
    }
    assert!(matches!(tx.send(&msg), Err(Error::Disconnected)));
    assert!(matches!(tx.try_send(&msg), Err(Error::Disconnected)));
}

/// Dropping the receiver makes `try_send` and `send` fail with
/// `Disconnected` (at once, or after the messages already in flight have
/// filled the channel).
pub fn receiver_dropped_is_disconnected<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("receiver_dropped_is_disconnected", LIMIT);
    let (mut tx, rx) = channel::<T>(F::MODE);
    F::end_receiver(&mut tx, rx, false);
    until_disconnected(&mut tx, "the receiver was dropped");
}

/// A receiver whose process is killed (SIGKILL, no goodbye) is seen as gone
/// by a sender that only polls with `try_send`. (Threads and coroutines
/// cannot be killed alone: there it is a drop.)
pub fn receiver_killed_is_disconnected<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("receiver_killed_is_disconnected", LIMIT);
    let (mut tx, rx) = channel::<T>(F::MODE);
    F::end_receiver(&mut tx, rx, true);
    until_disconnected(&mut tx, "the receiver's process was killed");
}

/// An empty channel: `try_recv` is `Empty`; `recv_timeout` is `Timeout`, no
/// sooner than asked (or `WouldDeadlock` in coroutine mode, where nothing
/// could fill the channel while we wait).
pub fn empty_channel_waits<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("empty_channel_waits", LIMIT);
    let (tx, mut rx) = channel::<T>(F::MODE);
    let mut producer = F::produce(tx, &mut rx, vec![b"now".to_vec()]);
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
    producer.go();
    let got = if F::MODE == Mode::Coroutine {
        rx.try_recv().map(<[u8]>::to_vec)
    } else {
        rx.recv_timeout(LIMIT / 4).map(<[u8]>::to_vec)
    };
    assert_eq!(got.expect("the message sent after the wait"), b"now");
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    producer.finish();
}

/// `ready` hides nothing `try_recv` has to say: while the channel is
/// empty, a `false` goes with `Empty`; a loop that asks `try_recv` only
/// when `ready` says `true` gets every message, then `Disconnected` once
/// the sender is gone (a `ready` that never said `true` again would hang
/// here, and the watchdog fails the check).
pub fn ready_hides_nothing<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("ready_hides_nothing", LIMIT);
    let (tx, mut rx) = channel::<T>(F::MODE);
    // One message: a coroutine channel holds no more before it is read.
    let sent = vec![b"seen through ready".to_vec()];
    let mut producer = F::produce(tx, &mut rx, sent.clone());
    // A first poll, as a consumer would (see sender_dropped_is_disconnected).
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    for _ in 0..1000 {
        if !rx.ready() {
            assert!(matches!(rx.try_recv(), Err(Error::Empty)));
        }
    }
    producer.go();
    producer.finish();
    let mut next = || loop {
        if rx.ready() {
            match rx.try_recv() {
                Err(Error::Empty) => {}
                got => return got.map(<[u8]>::to_vec),
            }
        }
        std::hint::spin_loop();
    };
    for m in &sent {
        assert_eq!(&next().expect("a message sent before the drop"), m);
    }
    let end = next();
    assert!(matches!(end, Err(Error::Disconnected)), "got {end:?}");
}

/// Many messages of random sizes from 0 to the maximum: none lost, reordered
/// or altered.
pub fn random_sizes_nothing_lost<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("random_sizes_nothing_lost", LIMIT);
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
    deliver::<T, F>(tx, rx, &sent);
}

/// `try_send` into a channel whose consumer does not read yet, until `Full`:
/// it never waits (the watchdog would fire), and every message it accepted
/// arrives whole once the consumer reads, small (16 bytes) and large (a
/// quarter of the maximum, more than a pipe's buffer) alike.
pub fn try_send_fills_until_full<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("try_send_fills_until_full", LIMIT);
    for size in [16, options().max_message / 4] {
        let (tx, rx) = channel::<T>(F::MODE);
        let size = size.min(tx.max_message());
        let mut accepted = Vec::new();
        let got = F::consume(tx, rx, true, &mut |tx| loop {
            let msg = message(accepted.len(), size);
            match tx.try_send(&msg) {
                Ok(()) => accepted.push(msg),
                Err(Error::Full) => break,
                Err(e) => panic!("try_send of {size} bytes: {e}"),
            }
            assert!(
                accepted.len() <= 10_000_000,
                "10 million messages of {size} bytes and never Full"
            );
        });
        assert!(!accepted.is_empty(), "an empty channel took nothing");
        assert_same(&digests(&accepted), &got);
    }
}

/// Several producers: a transport that declares them takes a second sender
/// ([`Transport::clone_sender`]) and keeps each producer's order; one that
/// does not refuses it with `InUse`.
pub fn several_producers_keep_their_order<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("several_producers_keep_their_order", LIMIT);
    let (tx, rx) = channel::<T>(F::MODE);
    if !T::MULTI_PRODUCER {
        assert!(matches!(T::clone_sender(&tx), Err(Error::InUse(_))));
        return;
    }
    // Four senders take turns from this thread, so the order they all went
    // in is known and must come out.
    let mut sent = Vec::new();
    let got = F::consume(tx, rx, false, &mut |tx| {
        let mut others: Vec<T::Sender> = (0..3)
            .map(|_| T::clone_sender(tx).expect("a second sender"))
            .collect();
        for i in 0..400usize {
            let msg = message(i, i % 300);
            match i % 4 {
                0 => tx.send(&msg),
                p => others[p - 1].send(&msg),
            }
            .expect("send");
            sent.push(msg);
        }
    });
    assert_same(&digests(&sent), &got);
}

/// Every check of the suite, by name (the list [`conformance_tests!`] runs).
pub fn checks<T: Transport, F: Flavor<T>>() -> Vec<(&'static str, fn())> {
    vec![
        ("round_trip", round_trip::<T, F>),
        ("keeps_order", keeps_order::<T, F>),
        (
            "every_size_to_the_maximum",
            every_size_to_the_maximum::<T, F>,
        ),
        (
            "one_byte_over_is_too_large",
            one_byte_over_is_too_large::<T, F>,
        ),
        (
            "sender_dropped_is_disconnected",
            sender_dropped_is_disconnected::<T, F>,
        ),
        (
            "receiver_dropped_is_disconnected",
            receiver_dropped_is_disconnected::<T, F>,
        ),
        (
            "receiver_killed_is_disconnected",
            receiver_killed_is_disconnected::<T, F>,
        ),
        ("empty_channel_waits", empty_channel_waits::<T, F>),
        ("ready_hides_nothing", ready_hides_nothing::<T, F>),
        (
            "random_sizes_nothing_lost",
            random_sizes_nothing_lost::<T, F>,
        ),
        (
            "try_send_fills_until_full",
            try_send_fills_until_full::<T, F>,
        ),
        (
            "several_producers_keep_their_order",
            several_producers_keep_their_order::<T, F>,
        ),
        ("soak", soak::<T, F>),
        ("create_drop_cycles", create_drop_cycles::<T, F>),
    ]
}

/// The first argument of a `harness = false` test binary, if it names a
/// test to run alone (as the process flavour's child is started).
pub fn only_test() -> Option<String> {
    std::env::args().nth(1).filter(|a| !a.starts_with('-'))
}

/// Runs the suite in a `harness = false` test binary (for a transport whose
/// process mode needs the whole process prepared first, such as signals):
/// every check, named `<prefix>::<check>`, or only the one named by the
/// first argument (as the process flavour starts its child, which then
/// plays the other end). Prints a line per check as the test runner does;
/// returns how many failed.
///
/// # Safety
///
/// As for [`run`]: only the process flavour may set the variables its
/// child reads.
pub unsafe fn run_suite<T: Transport, F: Flavor<T>>(prefix: &str) -> usize {
    let only = only_test();
    let mut failed = 0;
    let flag = |f: &str| std::env::args().any(|a| a == f);
    // As libtest: the filter matches part of a name unless `--exact`; the
    // long checks run, as `#[ignore]`d tests do, with `--ignored` (alone)
    // or `--include-ignored`, and in a child started for one check.
    let exact = flag("--exact");
    let mut all = checks::<T, F>();
    if flag("--ignored") || flag("--include-ignored") || (exact && only.is_some()) {
        all.push(("soak_a_million", soak_a_million::<T, F>));
    }
    if flag("--ignored") {
        all.retain(|(name, _)| *name == "soak_a_million");
    }
    for (name, check) in all {
        let full = format!("{prefix}::{name}");
        if only.as_ref().is_some_and(|o| {
            if exact {
                *o != full
            } else {
                !full.contains(o.as_str())
            }
        }) {
            continue;
        }
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: passed on from our caller.
            unsafe { run::<T, F>(prefix, name, check) }
        }));
        if !exact {
            println!(
                "test {full} ... {}",
                if ran.is_ok() { "ok" } else { "FAILED" }
            );
        }
        failed += usize::from(ran.is_err());
    }
    failed
}

/// Runs the whole suite for a transport: `conformance_tests!(module, Type,
/// Flavor)` where the flavour is `Threads`, `Coroutines` or `Processes`.
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident, $transport:ty, $flavor:ident) => {
        #[cfg(test)]
        mod $module {
            use $crate::conformance::{self as c, $flavor};
            type T = $transport;

            $crate::conformance_tests!(@checks T, $flavor;
                round_trip,
                keeps_order,
                every_size_to_the_maximum,
                one_byte_over_is_too_large,
                sender_dropped_is_disconnected,
                receiver_dropped_is_disconnected,
                receiver_killed_is_disconnected,
                empty_channel_waits,
                ready_hides_nothing,
                random_sizes_nothing_lost,
                try_send_fills_until_full,
                several_producers_keep_their_order,
                soak,
                create_drop_cycles,
            );

            #[test]
            #[ignore = "long: a million messages (see conformance::soak_a_million)"]
            fn soak_a_million() {
                // SAFETY: as for the checks above.
                unsafe {
                    c::run::<T, $flavor>(module_path!(), "soak_a_million", c::soak_a_million::<T, $flavor>)
                }
            }
        }
    };
    (@checks $t:ty, $flavor:ident; $($check:ident,)*) => {
        $(
            #[test]
            fn $check() {
                // SAFETY: in this test binary only the process flavour sets
                // the variables `run` reads, when it starts the binary anew
                // with the fds they name.
                unsafe {
                    c::run::<$t, $flavor>(module_path!(), stringify!($check), c::$check::<$t, $flavor>)
                }
            }
        )*
    };
}
