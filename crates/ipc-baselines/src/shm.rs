//! The floors every shared-memory exchange is held against, measured by the
//! same process in the same run:
//!
//! - latency: two threads ping-ponging one 8-byte atomic on its own cache
//!   line, timed one round trip per sample like the harness times a ping-pong;
//! - bandwidth: `memcpy` on one core, and the bare minimum of a copy between
//!   two cores: a ring of fixed slots in which one thread copies each message
//!   in and the other copies it out, with one counter per side and nothing
//!   else (no framing, no waiting but spinning, no checks).

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

/// Single-core `memcpy` bandwidth in bytes per second: `rounds` copies of
/// `size` bytes out of a `ring`-byte buffer (so the source comes from where a
/// ring of that size keeps it) into one `size`-byte buffer.
pub fn memcpy_bandwidth(size: usize, ring: usize, rounds: usize) -> f64 {
    let size = size.max(1);
    let src = vec![7u8; ring.max(size)];
    let mut dst = vec![0u8; size];
    let chunks = src.len() / size;
    let t0 = Instant::now();
    for i in 0..rounds {
        let from = (i % chunks) * size;
        dst.copy_from_slice(&src[from..from + size]);
        std::hint::black_box(&mut dst);
    }
    (rounds * size) as f64 / t0.elapsed().as_secs_f64()
}

/// A buffer two threads write and read in turns, slot by slot.
struct Slots {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the threads never touch one slot at the same time: the writer
// fills slot `i` only after the reader's counter says it left it, and the
// reader copies it only after the writer's counter says it is full (both
// counters Release/Acquire).
unsafe impl Send for Slots {}
// SAFETY: as for Send.
unsafe impl Sync for Slots {}

/// A counter alone on its cache lines.
#[repr(align(128))]
struct Counter(AtomicU64);

/// Bandwidth in bytes per second of the barest copy between two threads:
/// `count` messages of `size` bytes through a `ring`-byte buffer of fixed
/// slots (each 8 bytes past a line boundary, where a framed ring puts a
/// payload), copied in by this thread and out by a spinning reader thread.
/// What the cores and caches allow a ring that copies in and out. Each
/// message carries its number in its first 8 bytes and the reader checks it:
/// `None` if any arrived wrong.
pub fn copy_ring_bandwidth(size: usize, ring: usize, count: u64) -> Option<f64> {
    let size = size.max(8);
    let stride = size + 8;
    let slots = (ring / stride).max(1) as u64;
    let mut buf = vec![0u8; slots as usize * stride];
    let shared = Arc::new((
        Slots {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
        },
        Counter(AtomicU64::new(0)),
        Counter(AtomicU64::new(0)),
    ));
    let at = move |i: u64| (i % slots) as usize * stride + 8;
    let reader = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            let (slots_mem, written, read) = &*shared;
            let mut out = vec![0u8; size];
            let mut wrong = 0u64;
            for i in 0..count {
                while written.0.load(Ordering::Acquire) <= i {
                    std::hint::spin_loop();
                }
                debug_assert!(at(i) + size <= slots_mem.len);
                // SAFETY: slot i is inside the buffer (at(i) + size <= len)
                // and full: the writer published it (Acquire above) and will
                // not touch it again before `read` passes it.
                unsafe {
                    std::ptr::copy_nonoverlapping(slots_mem.ptr.add(at(i)), out.as_mut_ptr(), size)
                };
                wrong += u64::from(out[..8] != i.to_le_bytes());
                read.0.store(i + 1, Ordering::Release);
            }
            wrong
        })
    };
    let (slots_mem, written, read) = &*shared;
    let mut src = vec![3u8; size];
    let t0 = Instant::now();
    for i in 0..count {
        while i - read.0.load(Ordering::Acquire) >= slots {
            std::hint::spin_loop();
        }
        src[..8].copy_from_slice(&i.to_le_bytes());
        // SAFETY: slot i is inside the buffer and free: the reader finished
        // copying it out (its counter, Acquire above, is past it).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), slots_mem.ptr.add(at(i)), size) };
        written.0.store(i + 1, Ordering::Release);
    }
    let wrong = reader.join();
    let elapsed = t0.elapsed();
    drop(buf);
    matches!(wrong, Ok(0)).then(|| (count as f64 * size as f64) / elapsed.as_secs_f64())
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

    #[test]
    fn the_bandwidth_floors_move_bytes() {
        assert!(super::memcpy_bandwidth(4096, 1 << 16, 100) > 0.0);
        // More messages than slots: the ring wraps many times.
        let bw = super::copy_ring_bandwidth(4096, 1 << 16, 1000);
        assert!(bw.is_some_and(|b| b > 0.0), "{bw:?}");
    }
}
