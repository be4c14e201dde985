//! The floors every shared-memory exchange is held against, measured by the
//! same process in the same run:
//!
//! - latency: two threads ping-ponging one 8-byte atomic on its own cache
//!   line, timed one round trip per sample like the harness times a ping-pong
//!   (the floor: one cache line, which a 64-byte message cannot be); and the
//!   plain slot ring, the yardstick a shared-memory ring's latency is held
//!   to at every size ([`slot_ring_round_trips`]);
//! - bandwidth: `memcpy` on one core, and the bare minimum of a copy between
//!   two cores: a ring of fixed slots in which one thread copies each message
//!   in and the other copies it out, with one counter per side and nothing
//!   else (no framing, no waiting but spinning, no checks).

use std::cell::UnsafeCell;
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

/// How far past a source (modulo 4 KiB) a destination makes `memcpy` stall
/// on AMD EPYC: glibc copies large blocks with `rep movsb`, which runs 15-20
/// times slower when the destination lies 1 to 31 bytes past the source
/// modulo 4 KiB (measured: 1.3-1.8 GB/s against 23-33 GB/s at 64 KiB). The
/// floors place their buffers clear of it: they show what the cores and
/// caches allow, not where the allocator happened to put a buffer (which
/// made them swing 3x from run to run). `ipc-shm` copies around it.
const MEMCPY_STALL: std::ops::Range<usize> = 1..32;

/// A zeroed buffer of `len` bytes that starts `page_offset` bytes into a
/// 4 KiB page: the vector and the index of that start.
fn buffer_at(len: usize, page_offset: usize) -> (Vec<u8>, usize) {
    let buf = vec![0u8; len + 4096];
    let start = (page_offset + 4096 - buf.as_ptr() as usize % 4096) % 4096;
    (buf, start)
}

/// A page offset for a buffer that `memcpy` fills from (`into_slots`
/// false) or empties into (true) slots at the page offsets `slots`, such
/// that no copy falls in [`MEMCPY_STALL`].
fn clear_of_stall(slots: &[usize], into_slots: bool) -> usize {
    let stalls = |p: usize| {
        slots.iter().any(|&slot| {
            let (src, dst) = if into_slots { (p, slot) } else { (slot, p) };
            MEMCPY_STALL.contains(&((dst + 4096 - src) % 4096))
        })
    };
    // Each slot rules out 31 offsets in a row, at most 4 of the 512
    // multiples of 8, so up to 127 slots always leave one free (the floors'
    // 64 KiB messages make 64 slots in a 4 MiB ring); with more slots and
    // none free, offset 0, and some copies may stall.
    (0..512)
        .map(|i| (2048 + 8 * i) % 4096)
        .find(|&p| !stalls(p))
        .unwrap_or(0)
}

/// Single-core `memcpy` bandwidth in bytes per second: `rounds` copies of
/// `size` bytes out of a `ring`-byte buffer (so the source comes from where a
/// ring of that size keeps it) into one `size`-byte buffer, placed clear of
/// [`MEMCPY_STALL`].
pub fn memcpy_bandwidth(size: usize, ring: usize, rounds: usize) -> f64 {
    let size = size.max(1);
    let src = vec![7u8; ring.max(size)];
    let chunks = src.len() / size;
    let from_pages: Vec<usize> = (0..chunks)
        .map(|c| (src.as_ptr() as usize + c * size) % 4096)
        .collect();
    let (mut dst_buf, start) = buffer_at(size, clear_of_stall(&from_pages, false));
    let dst = &mut dst_buf[start..start + size];
    let t0 = Instant::now();
    for i in 0..rounds {
        let from = (i % chunks) * size;
        dst.copy_from_slice(&src[from..from + size]);
        std::hint::black_box(&mut *dst);
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
    // The writer's and the reader's buffers, placed clear of MEMCPY_STALL
    // against every slot.
    let slot_pages: Vec<usize> = (0..slots)
        .map(|i| (buf.as_ptr() as usize + at(i)) % 4096)
        .collect();
    let (mut src_buf, src_start) = buffer_at(size, clear_of_stall(&slot_pages, true));
    let (mut out_buf, out_start) = buffer_at(size, clear_of_stall(&slot_pages, false));
    let reader = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            let (slots_mem, written, read) = &*shared;
            let out = &mut out_buf[out_start..out_start + size];
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
    let src = &mut src_buf[src_start..src_start + size];
    src.fill(3);
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

/// Slots in each ring of the plain slot ring.
pub const SLOT_RING_SLOTS: usize = 4096;

/// The payload a slot of the plain slot ring holds: 128 bytes less its two
/// words.
pub const SLOT_PAYLOAD: usize = 112;

/// One slot of the plain slot ring, alone on its 128 bytes.
#[repr(C, align(128))]
struct Slot {
    /// The slot's position in the stream plus one, once it is full.
    seq: AtomicU64,
    len: AtomicU64,
    payload: UnsafeCell<[u8; SLOT_PAYLOAD]>,
}

/// One direction of the plain slot ring: the slots, and the consumer's
/// position on its own line.
struct SlotRing {
    slots: Box<[Slot]>,
    read: Counter,
}

// SAFETY: a slot's payload is written by the producer only while the
// consumer's position says the slot is free, and read by the consumer only
// after the slot's `seq` (Release/Acquire) says it is full; the other fields
// are atomics.
unsafe impl Sync for SlotRing {}

impl SlotRing {
    fn new() -> Self {
        SlotRing {
            slots: (0..SLOT_RING_SLOTS)
                .map(|_| Slot {
                    seq: AtomicU64::new(0),
                    len: AtomicU64::new(0),
                    payload: UnsafeCell::new([0; SLOT_PAYLOAD]),
                })
                .collect(),
            read: Counter(AtomicU64::new(0)),
        }
    }
}

/// The producer's side of a [`SlotRing`].
struct SlotProducer<'a> {
    ring: &'a SlotRing,
    pos: u64,
    cached_read: u64,
}

impl SlotProducer<'_> {
    fn send(&mut self, msg: &[u8]) {
        let ring = self.ring;
        while self.pos - self.cached_read >= SLOT_RING_SLOTS as u64 {
            self.cached_read = ring.read.0.load(Ordering::Acquire);
            std::hint::spin_loop();
        }
        let slot = &ring.slots[self.pos as usize % SLOT_RING_SLOTS];
        let len = msg.len().min(SLOT_PAYLOAD);
        // SAFETY: the slot is free (the consumer's position, Acquire above,
        // is less than a ring behind), so the consumer does not read it until
        // the `seq` store below; len <= SLOT_PAYLOAD.
        unsafe {
            std::ptr::copy_nonoverlapping(msg.as_ptr(), slot.payload.get().cast::<u8>(), len)
        };
        slot.len.store(len as u64, Ordering::Relaxed);
        slot.seq.store(self.pos + 1, Ordering::Release);
        self.pos += 1;
    }
}

/// The consumer's side of a [`SlotRing`].
struct SlotConsumer<'a> {
    ring: &'a SlotRing,
    pos: u64,
}

impl SlotConsumer<'_> {
    /// Waits for the next message and copies it into `out`; its length.
    fn recv(&mut self, out: &mut [u8; SLOT_PAYLOAD]) -> usize {
        let slot = &self.ring.slots[self.pos as usize % SLOT_RING_SLOTS];
        while slot.seq.load(Ordering::Acquire) != self.pos + 1 {
            std::hint::spin_loop();
        }
        let len = (slot.len.load(Ordering::Relaxed) as usize).min(SLOT_PAYLOAD);
        // SAFETY: the slot is full (its `seq`, Acquire above) and the producer
        // does not write it again before our position below passes it.
        unsafe {
            std::ptr::copy_nonoverlapping(slot.payload.get().cast::<u8>(), out.as_mut_ptr(), len)
        };
        self.pos += 1;
        self.ring.read.0.store(self.pos, Ordering::Release);
        len
    }
}

/// `count` round trips (after `warmup` untimed ones) of `size`-byte messages
/// through the plain slot ring between this thread and a spinning echo
/// thread: two rings (ping and pong) of [`SLOT_RING_SLOTS`] slots of 128
/// bytes, each slot `{seq, len, payload}`; the producer copies the payload
/// in, stores `len` (Relaxed) and then `seq` (Release); the consumer spins on
/// that slot's `seq` (Acquire), copies the payload out into its own buffer
/// and stores its position (Release) on its own line, which the producer
/// reads only when its cached copy says the ring is full. The echo copies
/// each message back; this thread times each round trip with `Instant` and
/// checks the first 8 bytes. The samples in nanoseconds, sorted; `None` when
/// `size` is not 8 to [`SLOT_PAYLOAD`] bytes or a message came back wrong.
///
/// It is a fixed yardstick for shared-memory latency, the plainest ring
/// that is right: not something to tune.
pub fn slot_ring_round_trips(size: usize, count: usize, warmup: usize) -> Option<Vec<u64>> {
    if !(8..=SLOT_PAYLOAD).contains(&size) {
        return None;
    }
    let (ping, pong) = (SlotRing::new(), SlotRing::new());
    let total = warmup + count;
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rx = SlotConsumer {
                ring: &ping,
                pos: 0,
            };
            let mut tx = SlotProducer {
                ring: &pong,
                pos: 0,
                cached_read: 0,
            };
            let mut buf = [0u8; SLOT_PAYLOAD];
            for _ in 0..total {
                let len = rx.recv(&mut buf);
                tx.send(&buf[..len]);
            }
        });
        let mut tx = SlotProducer {
            ring: &ping,
            pos: 0,
            cached_read: 0,
        };
        let mut rx = SlotConsumer {
            ring: &pong,
            pos: 0,
        };
        let mut msg = [5u8; SLOT_PAYLOAD];
        let mut back = [0u8; SLOT_PAYLOAD];
        let mut samples = Vec::with_capacity(count);
        let mut wrong = 0u64;
        for i in 0..total {
            msg[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let t0 = Instant::now();
            tx.send(&msg[..size]);
            let len = rx.recv(&mut back);
            let t = t0.elapsed().as_nanos() as u64;
            wrong += u64::from(len != size || back[..8] != msg[..8]);
            if i >= warmup {
                samples.push(t);
            }
        }
        samples.sort_unstable();
        (wrong == 0).then_some(samples)
    })
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
    fn the_slot_ring_brings_every_message_back_across_its_laps() {
        // More round trips than slots: both rings wrap.
        for size in [8, 64, super::SLOT_PAYLOAD] {
            let samples = super::slot_ring_round_trips(size, 2 * super::SLOT_RING_SLOTS, 10);
            let samples = samples.expect("every message came back");
            assert_eq!(samples.len(), 2 * super::SLOT_RING_SLOTS);
            assert!(samples.windows(2).all(|w| w[0] <= w[1]));
        }
        assert!(super::slot_ring_round_trips(7, 10, 0).is_none());
        assert!(super::slot_ring_round_trips(super::SLOT_PAYLOAD + 1, 10, 0).is_none());
    }

    #[test]
    fn the_bandwidth_floors_move_bytes() {
        assert!(super::memcpy_bandwidth(4096, 1 << 16, 100) > 0.0);
        // More messages than slots: the ring wraps many times.
        let bw = super::copy_ring_bandwidth(4096, 1 << 16, 1000);
        assert!(bw.is_some_and(|b| b > 0.0), "{bw:?}");
    }
}
