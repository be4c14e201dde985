//! The floor every shared-memory exchange is held against: two threads
//! ping-ponging one 8-byte atomic on its own cache line, timed one round trip
//! per sample like the harness times a ping-pong.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// An atomic alone on its cache lines (128 bytes: the adjacent-line
/// prefetcher pairs lines).
#[repr(align(128))]
struct Line(AtomicU64);

/// `count` round trips (after `warmup` untimed ones) of one atomic between
/// this thread and a spinning echo thread; the samples in nanoseconds, sorted.
pub fn atomic_round_trips(count: usize, warmup: usize) -> Vec<u64> {
    let line = Arc::new(Line(AtomicU64::new(0)));
    let other = Arc::clone(&line);
    let echo = std::thread::spawn(move || {
        let mut expect = 1u64;
        loop {
            let v = other.0.load(Ordering::Acquire);
            if v == u64::MAX {
                return;
            }
            if v == expect {
                other.0.store(v + 1, Ordering::Release);
                expect += 2;
            } else {
                std::hint::spin_loop();
            }
        }
    });
    let mut samples = Vec::with_capacity(count);
    let mut v = 1u64;
    for i in 0..warmup + count {
        let t0 = Instant::now();
        line.0.store(v, Ordering::Release);
        while line.0.load(Ordering::Acquire) != v + 1 {
            std::hint::spin_loop();
        }
        let t = t0.elapsed().as_nanos() as u64;
        v += 2;
        if i >= warmup {
            samples.push(t);
        }
    }
    line.0.store(u64::MAX, Ordering::Release);
    let _ = echo.join();
    samples.sort_unstable();
    samples
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_floor_takes_time_and_comes_back_sorted() {
        let samples = super::atomic_round_trips(1000, 10);
        assert_eq!(samples.len(), 1000);
        assert!(samples.windows(2).all(|w| w[0] <= w[1]));
        assert!(samples[samples.len() - 1] > 0);
    }
}
