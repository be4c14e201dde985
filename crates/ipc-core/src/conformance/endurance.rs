//! The long checks of the suite: a soak of many random-size messages, and
//! channels made and dropped a thousand times without a leak.

use std::time::Duration;

use super::{assert_same, channel, digest, message, options, process, Flavor, Watchdog, LIMIT};
use crate::transport::{Sender, Transport};

/// How many messages [`soak_a_million`] sends.
pub const SOAK_LONG: usize = 1_000_000;

/// How many messages [`soak`] sends in the default run.
pub const SOAK_SHORT: usize = 10_000;

/// The soak of the default run: [`SOAK_SHORT`] messages of random sizes,
/// each checked (see [`soak_messages`]).
pub fn soak<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("soak", LIMIT);
    soak_messages::<T, F>(SOAK_SHORT);
}

/// The long soak, `#[ignore]`d: [`SOAK_LONG`] messages of random sizes, each
/// checked. `cargo test --release --workspace --all-features soak_a_million
/// -- --ignored` runs it for every transport and flavour.
pub fn soak_a_million<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("soak_a_million", Duration::from_secs(3600));
    soak_messages::<T, F>(SOAK_LONG);
}

/// Sends `n` messages of random sizes, nine hundred and ninety-nine in a
/// thousand up to 256 bytes and the rest up to 64 KiB (or the maximum),
/// every byte depending on the message's index, and checks that each
/// arrives once, whole and in order (by digest, so that a million need not
/// be kept).
pub fn soak_messages<T: Transport, F: Flavor<T>>(n: usize) {
    let (tx, rx) = channel::<T>(F::MODE);
    let large = tx.max_message().min(64 * 1024);
    let small = large.min(256);
    let mut rng = fastrand::Rng::with_seed(0x50a6 ^ n as u64);
    let mut sent = Vec::with_capacity(n);
    let got = F::consume(tx, rx, false, &mut |tx| {
        for i in 0..n {
            let len = rng.usize(0..=if i % 1000 == 999 { large } else { small });
            let msg = message(i, len);
            if let Err(e) = tx.send(&msg) {
                panic!("soak: send of message {i} ({len} bytes) failed: {e}");
            }
            sent.push(digest(&msg));
        }
    });
    assert_same(&sent, &got);
}

/// What a process holds that a channel might leak: fds, threads, objects
/// in /dev/shm, abstract sockets and files in `$TMPDIR` named after this
/// process, and the names it registered for removal.
#[derive(Debug, PartialEq, Eq)]
struct Holdings {
    fds: usize,
    threads: usize,
    named: Vec<String>,
    registered: usize,
}

impl Holdings {
    fn now() -> Self {
        let count = |dir: &str| std::fs::read_dir(dir).map_or(0, |d| d.count());
        let named = crate::names::objects_of(&[std::process::id()], &crate::names::temp_dir());
        Holdings {
            fds: count("/proc/self/fd"),
            threads: count("/proc/self/task"),
            named,
            registered: crate::names::registered().len(),
        }
    }
}

/// How many channels [`create_drop_cycles`] makes and drops.
pub const CYCLES: usize = 1000;

/// [`CYCLES`] channels made and dropped leave this process holding what it
/// held before: as many fds and threads, no object in /dev/shm, no file in
/// `$TMPDIR`, no abstract socket, nothing registered for removal. A leaked
/// signal number would show as well: the allocator has a few dozen, so a
/// leak ends the cycles with `InUse`. Runs in a process of its own (this
/// test binary started again for this test alone), so that other tests'
/// threads and fds do not blur the counts.
pub fn create_drop_cycles<T: Transport, F: Flavor<T>>() {
    let _w = Watchdog::start("create_drop_cycles", LIMIT);
    process::in_a_process_of_its_own(|| {
        // The first channel may start what lives for the process (a
        // signal-handling thread, a lazily opened file): once, before the
        // count.
        drop(channel::<T>(F::MODE));
        let before = Holdings::now();
        for i in 0..CYCLES {
            let (tx, rx) = match T::channel(F::MODE, &options()) {
                Ok(ends) => ends,
                Err(e) => panic!("{}/{}: channel {i}: {e}", T::NAME, T::VARIANT),
            };
            drop((tx, rx));
        }
        // Helper threads of the last channels may take a moment to end.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut after = Holdings::now();
        while after != before && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            after = Holdings::now();
        }
        assert_eq!(
            after,
            before,
            "{}/{}: {CYCLES} channels made and dropped changed what the process holds",
            T::NAME,
            T::VARIANT
        );
    });
}
