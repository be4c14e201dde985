//! A single-producer single-consumer ring of variable-size frames in a
//! shared-memory region.
//!
//! Layout: a control block whose parts each sit on their own 128-byte line
//! pair (so the adjacent-line prefetcher does not make two writers share),
//! then the data ring. A frame is an 8-byte header word, then the payload,
//! padded to 8 bytes, frames packed one after the other. The header word
//! carries the frame's position stamp (high 32 bits) and length (low 32
//! bits) and is published last: the consumer polls the header of the next
//! frame itself, so an 8-byte message moves in one cache line and a 64-byte
//! one in two (the consumer asks for the second line before each look at the
//! header, so the two travel together). A frame that does not fit before the
//! end of the ring is preceded by a wrap marker. The ring is never cleared by
//! the consumer, so the slot where the next header will go may still hold an
//! earlier lap's payload, whose bytes could read as a header for this lap:
//! the producer makes sure that slot is zero before it publishes a frame,
//! zeroing the ring ahead of itself after each publication (off the path of
//! the message) and, when that has not reached far enough, before it.
//!
//! Blocking uses a futex word per direction in the region (shared futex
//! operations): a waiter announces itself, re-checks, and sleeps; the other
//! side pays a load of that flag per message and a wake only when someone
//! sleeps. The store-then-load on each side needs a full barrier between
//! them: the producer's is the locked swap that publishes a header (the
//! fastest publication measured); for the consumer's position, the sleeping
//! producer pays it for both with `membarrier(2)` (see `sys::light_fences`).
//! Sleeps are bounded, so a peer that died without a word (SIGKILL)
//! is noticed from its pid within [`LIVENESS_CHECK`].

use std::marker::PhantomData;
use std::sync::atomic::{compiler_fence, fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_core::{Error, Result};

use crate::region::{Backend, Region};
use crate::sys::{futex_wait, futex_wake_all, heavy_fence, light_fences};

/// How often a waiting side checks that its peer process still runs.
pub const LIVENESS_CHECK: Duration = Duration::from_millis(50);

/// Empty polls (`try_recv`) between two checks that the peer still runs.
const POLLS_PER_LIVENESS_CHECK: u32 = 1 << 16;

/// How far past a frame's end the producer clears the ring at a time.
const CLEAR_AHEAD: u64 = 256;

const MAGIC: u64 = u64::from_le_bytes(*b"ipcshm02");
const HEADER: u64 = 8;
const WRAP: u32 = u32::MAX;

#[repr(C, align(128))]
struct Line<T>(T);

#[repr(C)]
struct Meta {
    magic: AtomicU64,
    capacity: AtomicU64,
    max_message: AtomicU64,
}

#[repr(C)]
struct WaitWord {
    /// Non-zero while the owner of this word sleeps (or is about to).
    waiting: AtomicU32,
    /// The futex: bumped by the other side before a wake.
    futex: AtomicU32,
}

#[repr(C)]
struct Life {
    producer_pid: AtomicU32,
    consumer_pid: AtomicU32,
    producer_closed: AtomicU32,
    consumer_closed: AtomicU32,
    /// When the producer's process started (ns since the epoch, 0 unknown),
    /// so that another process given its pid later is not taken for it.
    producer_started: AtomicU64,
    /// The same for the consumer.
    consumer_started: AtomicU64,
}

/// When process `pid` started, in nanoseconds since the epoch (0: unknown).
fn start_of(pid: u32) -> u64 {
    ipc_core::sys::process_start_time(pid)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The control block at the start of the region.
#[repr(C)]
struct Control {
    meta: Line<Meta>,
    /// The consumer's position: written per message by the consumer, read
    /// by the producer only when its cached copy says the ring is full.
    tail: Line<AtomicU64>,
    /// The consumer's sleep: read per message by the producer.
    consumer_wait: Line<WaitWord>,
    /// The producer's sleep: read per message by the consumer.
    producer_wait: Line<WaitWord>,
    life: Line<Life>,
}

/// Where the data ring starts in the region.
const DATA_OFFSET: usize = std::mem::size_of::<Control>().next_multiple_of(128);

/// The region's size for a ring of `capacity` bytes.
pub fn region_len(capacity: usize) -> usize {
    DATA_OFFSET + capacity
}

/// The ring in a mapped region, shared by the ends that live in this process.
pub(crate) struct Ring {
    region: Region,
    capacity: u64,
    max: usize,
    /// How long a handed-over end may stay unopened before its process
    /// counts as gone (the options' connect timeout).
    open_within: Duration,
    /// When an end of this ring was handed to another process.
    handed_over_at: std::sync::OnceLock<Instant>,
    /// How long a sleep lasts at most before the peer's pid is checked:
    /// [`LIVENESS_CHECK`], or longer in tests that must see a missed
    /// wake-up fail instead of being covered by the next check.
    sleep_limit_ns: AtomicU64,
}

/// The largest ring: positions are stamped with their low 32 bits, so one
/// lap must stay below 2^32 bytes.
pub const MAX_CAPACITY: usize = 1 << 31;

/// Whether `capacity` and `max` make a ring this code can run: a power of
/// two no larger than [`MAX_CAPACITY`], holding two of the largest frames
/// (then a largest frame always fits into an empty ring, with the header
/// slot after it, even when it has to wrap).
fn sizes_hold(capacity: u64, max: u64) -> bool {
    capacity.is_power_of_two()
        && capacity <= MAX_CAPACITY as u64
        && max <= capacity
        && 2 * frame_len(max as usize) <= capacity
}

impl Ring {
    fn ctl(&self) -> &Control {
        // SAFETY: the region is at least DATA_OFFSET long (checked at create
        // and open), page-aligned, and lives as long as self; Control is made
        // only of atomics, which may be shared with the other process.
        unsafe { &*(self.region.as_ptr() as *const Control) }
    }

    /// The header word at ring offset `off` (8-aligned, inside the ring).
    fn header(&self, off: u64) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off + HEADER <= self.capacity);
        // SAFETY: off + 8 <= capacity keeps it inside the region; offsets are
        // multiples of 8 and the ring starts 128-aligned, so the word is
        // aligned; headers are only ever accessed atomically.
        unsafe { &*(self.region.as_ptr().add(DATA_OFFSET + off as usize) as *const AtomicU64) }
    }

    fn data(&self, off: u64) -> *mut u8 {
        // SAFETY: callers keep off + len within the ring (checked against capacity).
        unsafe { self.region.as_ptr().add(DATA_OFFSET + off as usize) }
    }

    /// Asks for the cache line after the one holding the header at `off`.
    /// Called before each look at a header: when the producer has just
    /// written both lines, the two misses then overlap instead of the second
    /// following the first.
    #[inline]
    fn prefetch_after(&self, off: u64) {
        let next = (off | 63) + 1;
        if next < self.capacity {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a prefetch is only a hint: it reads nothing into the
            // program and cannot fault; the address is inside the ring.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    self.data(next) as *const i8,
                );
            }
        }
    }

    pub(crate) fn name(&self) -> &str {
        self.region.name()
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Makes a fresh ring in a new region.
    pub(crate) fn create<B: Backend>(
        method: &str,
        capacity: usize,
        max: usize,
        open_within: Duration,
    ) -> Result<Arc<Ring>> {
        if !sizes_hold(capacity as u64, max as u64) {
            return Err(Error::io(
                format!("make a ring of {capacity} bytes for messages of up to {max}"),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "a ring is a power of two of at most {MAX_CAPACITY} bytes and holds two of its largest frames"
                    ),
                ),
            ));
        }
        let region = Region::create::<B>(method, region_len(capacity))?;
        let ring = Ring {
            region,
            capacity: capacity as u64,
            max,
            open_within,
            handed_over_at: std::sync::OnceLock::new(),
            sleep_limit_ns: AtomicU64::new(LIVENESS_CHECK.as_nanos() as u64),
        };
        let ctl = ring.ctl();
        let me = std::process::id();
        ctl.meta
            .0
            .capacity
            .store(capacity as u64, Ordering::Relaxed);
        ctl.meta.0.max_message.store(max as u64, Ordering::Relaxed);
        ctl.life.0.producer_pid.store(me, Ordering::Relaxed);
        ctl.life.0.consumer_pid.store(me, Ordering::Relaxed);
        ctl.meta.0.magic.store(MAGIC, Ordering::Release);
        Ok(Arc::new(ring))
    }

    /// Maps the ring another process created.
    pub(crate) fn open<B: Backend>(name: &str) -> Result<Arc<Ring>> {
        let region = Region::open::<B>(name)?;
        if region.len() < DATA_OFFSET {
            return Err(Error::BadEndpoint(format!(
                "{name} is too small to be a ring"
            )));
        }
        let mut ring = Ring {
            region,
            capacity: 0,
            max: 0,
            open_within: Duration::ZERO,
            handed_over_at: std::sync::OnceLock::new(),
            sleep_limit_ns: AtomicU64::new(LIVENESS_CHECK.as_nanos() as u64),
        };
        let meta = &ring.ctl().meta.0;
        if meta.magic.load(Ordering::Acquire) != MAGIC {
            return Err(Error::BadEndpoint(format!(
                "{name} is not an ipc-showcase ring"
            )));
        }
        let capacity = meta.capacity.load(Ordering::Relaxed);
        let max = meta.max_message.load(Ordering::Relaxed) as usize;
        if !sizes_hold(capacity, max as u64) || region_len(capacity as usize) > ring.region.len() {
            return Err(Error::BadEndpoint(format!(
                "{name} has an impossible ring size"
            )));
        }
        ring.capacity = capacity;
        ring.max = max;
        Ok(Arc::new(ring))
    }

    fn alive(&self, pid: &AtomicU32, started: &AtomicU64) -> bool {
        match pid.load(Ordering::Acquire) {
            // Handed to a process that has not opened it yet: it has the
            // connect timeout to do so.
            0 => self
                .handed_over_at
                .get()
                .is_none_or(|at| at.elapsed() < self.open_within),
            p if p == std::process::id() => true,
            p => {
                let was = started.load(Ordering::Relaxed);
                ipc_core::sys::process_running(p) && (was == 0 || start_of(p) == was)
            }
        }
    }

    /// Says that this process now holds the end whose process is recorded
    /// in `pid` and `started`.
    fn announce(&self, pid: &AtomicU32, started: &AtomicU64) {
        let me = std::process::id();
        started.store(start_of(me), Ordering::Relaxed);
        pid.store(me, Ordering::Release);
    }

    /// How long a sleep lasts at most before the peer's pid is checked.
    fn sleep_limit(&self) -> Duration {
        Duration::from_nanos(self.sleep_limit_ns.load(Ordering::Relaxed))
    }

    /// Lets sleeps on this ring last up to `limit` (tests only: a wake-up
    /// the ring misses then shows as a timeout, not as a 50 ms delay).
    #[cfg(test)]
    pub(crate) fn set_sleep_limit(&self, limit: Duration) {
        self.sleep_limit_ns
            .store(limit.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Gives an end (its process recorded in `pid`) to another process,
    /// which will open it soon; `used` says whether it already moved a
    /// message, which it must not have (`first` names what it would be).
    fn hand_over(self: &Arc<Ring>, used: bool, first: &str, pid: &AtomicU32) -> Result<Arc<Ring>> {
        if used {
            return Err(Error::BadEndpoint(format!(
                "a ring end must be handed over before its first {first}"
            )));
        }
        self.handed_over_at.get_or_init(Instant::now);
        pid.store(0, Ordering::Release);
        Ok(Arc::clone(self))
    }
}

/// How the side that wakes a sleeper orders its publication before its look
/// at the sleep flag, and so which barrier the sleeper needs.
#[derive(Clone, Copy)]
enum Waker {
    /// With a full barrier (the producer's locked swap): one here pairs with it.
    Fenced,
    /// With `publish`: perhaps only a compiler fence, so the sleeper pays
    /// the barrier for both sides.
    Light,
}

/// Announces a sleep on `word`, re-checks `ready`, and sleeps at most `limit`.
fn sleep_on(word: &WaitWord, waker: Waker, limit: Duration, ready: impl Fn() -> bool) {
    let seq = word.futex.load(Ordering::Acquire);
    // Either the waker sees us waiting, or we see what it published.
    match waker {
        Waker::Fenced => {
            word.waiting.swap(1, Ordering::SeqCst);
        }
        Waker::Light => {
            word.waiting.store(1, Ordering::Relaxed);
            heavy_fence();
        }
    }
    if !ready() {
        futex_wait(&word.futex, seq, limit);
    }
    word.waiting.store(0, Ordering::Relaxed);
}

/// Stores `value` into `word` (the consumer's position), ordered before the
/// caller's next look at a sleep flag: with a compiler fence when the
/// sleeper's `heavy_fence` covers this process, else with a sequentially
/// consistent swap (a locked instruction on x86).
#[inline]
fn publish(word: &AtomicU64, value: u64, light: bool) {
    if light {
        word.store(value, Ordering::Release);
        compiler_fence(Ordering::SeqCst);
    } else {
        word.swap(value, Ordering::SeqCst);
    }
}

/// Marks one end closed (`closed`) and wakes the other side if it sleeps
/// on `peer`: the full fence orders the mark before the look at its sleep
/// flag, as a sleeper re-checks the mark after raising the flag.
fn close(closed: &AtomicU32, peer: &WaitWord) {
    closed.store(1, Ordering::Release);
    fence(Ordering::SeqCst);
    wake(peer);
}

/// Wakes the owner of `word` if it sleeps.
#[inline]
fn wake(word: &WaitWord) {
    if word.waiting.load(Ordering::SeqCst) != 0 {
        word.futex.fetch_add(1, Ordering::Release);
        futex_wake_all(&word.futex);
    }
}

#[inline]
fn stamp(pos: u64) -> u64 {
    // Never 0 (positions are multiples of 8), so zeroed memory is no frame;
    // a frame from an earlier lap has another stamp (capacity < 2^32).
    ((pos as u32).wrapping_add(1) as u64) << 32
}

#[inline]
fn frame_len(len: usize) -> u64 {
    HEADER + (len as u64).next_multiple_of(8)
}

/// The producer's end of a ring.
pub struct ShmSender<B> {
    ring: Arc<Ring>,
    head: u64,
    cached_tail: u64,
    /// The ring holds zeros from `head` up to this position (see `clear_slot`).
    cleared: u64,
    handed_over: bool,
    _backend: PhantomData<B>,
}

/// The consumer's end of a ring.
pub struct ShmReceiver<B> {
    ring: Arc<Ring>,
    tail: u64,
    buf: Vec<u8>,
    empty_polls: u32,
    handed_over: bool,
    /// Whether this process's per-message fences can be compiler fences.
    light: bool,
    _backend: PhantomData<B>,
}

impl<B> std::fmt::Debug for ShmSender<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmSender")
            .field("ring", &self.ring.name())
            .field("head", &self.head)
            .finish()
    }
}

impl<B> std::fmt::Debug for ShmReceiver<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmReceiver")
            .field("ring", &self.ring.name())
            .field("tail", &self.tail)
            .finish()
    }
}

/// The two ends of a fresh ring.
pub(crate) fn ends<B: Backend>(ring: Arc<Ring>) -> (ShmSender<B>, ShmReceiver<B>) {
    (
        ShmSender::attach(Arc::clone(&ring), false),
        ShmReceiver::attach(ring, false),
    )
}

impl<B: Backend> ShmSender<B> {
    pub(crate) fn attach(ring: Arc<Ring>, announce: bool) -> Self {
        if announce {
            let life = &ring.ctl().life.0;
            ring.announce(&life.producer_pid, &life.producer_started);
        }
        ShmSender {
            head: 0,
            cached_tail: 0,
            // A new region is zero-filled; an end is only handed over unused.
            cleared: ring.capacity,
            ring,
            handed_over: false,
            _backend: PhantomData,
        }
    }

    /// Gives this end to another process: its pid is unknown until it opens the ring.
    pub(crate) fn hand_over(mut self) -> Result<Arc<Ring>> {
        let ring =
            self.ring
                .hand_over(self.head != 0, "send", &self.ring.ctl().life.0.producer_pid)?;
        self.handed_over = true;
        Ok(ring)
    }

    /// Waits until `need` bytes are free after `head`, or says why not:
    /// inline when the consumer's last known position already leaves them
    /// (the common case), else through `wait_for_room`.
    #[inline(always)]
    fn make_room(&mut self, need: u64, block: bool) -> Result<()> {
        // The cached position was checked when read: at most a ring behind.
        if self.ring.capacity - (self.head - self.cached_tail) >= need {
            return Ok(());
        }
        self.wait_for_room(need, block)
    }

    /// `make_room` when the last known position does not leave the room:
    /// reads the consumer's position again, spins a little, then sleeps.
    #[cold]
    #[inline(never)]
    fn wait_for_room(&mut self, need: u64, block: bool) -> Result<()> {
        let ring = &*self.ring;
        let ctl = ring.ctl();
        // The free bytes the consumer's position `tail` leaves; `None` for a
        // position the other process wrote that cannot be (ahead of ours,
        // or more than a ring behind).
        let free = |head: u64, tail: u64| ring.capacity.checked_sub(head.wrapping_sub(tail));
        let mut spins = 0u32;
        let mut since = Instant::now();
        loop {
            let tail = ctl.tail.0.load(Ordering::Acquire);
            match free(self.head, tail) {
                None => {
                    return Err(Error::Corrupt(format!(
                        "the consumer's position {tail} is not within one ring ({} bytes) behind the producer's {}",
                        ring.capacity, self.head
                    )))
                }
                Some(f) => {
                    self.cached_tail = tail;
                    if f >= need {
                        return Ok(());
                    }
                }
            }
            if ctl.life.0.consumer_closed.load(Ordering::Acquire) != 0 {
                return Err(Error::Disconnected);
            }
            if !block {
                return Err(Error::Full);
            }
            if spins < 1000 {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let head = self.head;
            sleep_on(
                &ctl.producer_wait.0,
                Waker::Light,
                ring.sleep_limit(),
                || {
                    free(head, ctl.tail.0.load(Ordering::Acquire)).is_none_or(|f| f >= need)
                        || ctl.life.0.consumer_closed.load(Ordering::Acquire) != 0
                },
            );
            if since.elapsed() >= ring.sleep_limit() {
                if !ring.alive(&ctl.life.0.consumer_pid, &ctl.life.0.consumer_started) {
                    return Err(Error::Disconnected);
                }
                since = Instant::now();
            }
        }
    }

    /// Makes sure the header slot at position `at` (at or past `head`,
    /// inside the room `make_room` found) reads as zero, "nothing yet", for
    /// a consumer that will look at it as soon as the next header is
    /// published: an earlier lap may have left payload bytes there that look
    /// like a header for this lap. Usually `clear_ahead` has zeroed it.
    #[inline(always)]
    fn clear_slot(&mut self, at: u64) {
        if at + HEADER > self.cleared {
            self.zero(at, at + HEADER);
            self.cleared = at + HEADER;
        }
    }

    /// After a publication, zeroes the ring ahead of `head` (in the free
    /// room, [`CLEAR_AHEAD`] bytes at a time), so that the header slots of
    /// the next messages are already clear when they are sent: the lines
    /// this writes are the producer's by then, and no send waits for them.
    #[inline(always)]
    fn clear_ahead(&mut self) {
        if self.cleared < self.head + HEADER + CLEAR_AHEAD / 2 {
            let from = self.cleared.max(self.head + HEADER);
            let to = (self.head + HEADER + CLEAR_AHEAD).min(self.cached_tail + self.ring.capacity);
            if from < to {
                self.zero(from, to);
                self.cleared = to;
            }
        }
    }

    /// Writes zeros to ring positions [from, to), which lie in the free
    /// room at or past `head`.
    #[cold]
    #[inline(never)]
    fn zero(&self, from: u64, to: u64) {
        let ring = &*self.ring;
        debug_assert!(from >= self.head && to <= self.cached_tail + ring.capacity);
        let (start, len) = (from & (ring.capacity - 1), to - from);
        let first = len.min(ring.capacity - start);
        // SAFETY: [from, to) lies in the room the consumer has left (below
        // its position plus the capacity, and at or past `head`, which it
        // has not reached), split where it wraps so both parts are inside
        // the ring; the consumer reads none of it before a header published
        // after these writes.
        unsafe {
            std::ptr::write_bytes(ring.data(start), 0, first as usize);
            std::ptr::write_bytes(ring.data(0), 0, (len - first) as usize);
        }
    }

    fn put(&mut self, msg: &[u8], block: bool) -> Result<()> {
        let ring = &*self.ring;
        if msg.len() > ring.max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: ring.max,
            });
        }
        if ring.ctl().life.0.consumer_closed.load(Ordering::Relaxed) != 0 {
            return Err(Error::Disconnected);
        }
        let frame = frame_len(msg.len());
        let mut off = self.head & (ring.capacity - 1);
        let to_end = ring.capacity - off;
        let wraps = frame > to_end;
        // The frame, and the header slot after it, which is cleared below.
        let need = if wraps { to_end + frame } else { frame } + HEADER;
        self.make_room(need, block)?;
        if wraps {
            // The consumer goes to offset 0 on seeing the marker.
            self.clear_slot(self.head + to_end);
            let ring = &*self.ring;
            ring.header(off)
                .store(stamp(self.head) | WRAP as u64, Ordering::SeqCst);
            self.head += to_end;
            off = 0;
        }
        // The consumer looks there once it has this frame.
        self.clear_slot(self.head + frame);
        let ring = &*self.ring;
        // SAFETY: make_room guaranteed that [off, off + frame) is free: the
        // consumer has moved past it and will not read it before the header
        // below is published. The source is the caller's slice.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), ring.data(off + HEADER), msg.len()) };
        // Published before the load of `waiting` in `wake` (a consumer about
        // to sleep either sees this header or is seen waiting here), with a
        // sequentially consistent swap even where a compiler fence would do:
        // a locked xchg reaches a polling consumer on another core sooner
        // than a plain store (measured with `shm_floor` on two cores: 8-byte
        // round trips 420 ns against 530 ns, the floor 390 ns; on two threads
        // of one core the two measured alike).
        ring.header(off)
            .swap(stamp(self.head) | msg.len() as u64, Ordering::SeqCst);
        self.head += frame;
        wake(&ring.ctl().consumer_wait.0);
        self.clear_ahead();
        Ok(())
    }
}

#[cfg(test)]
impl<B> ShmSender<B> {
    /// See [`Ring::set_sleep_limit`].
    pub(crate) fn set_sleep_limit(&self, limit: Duration) {
        self.ring.set_sleep_limit(limit);
    }
}

impl<B: Backend> ipc_core::Sender for ShmSender<B> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.put(msg, true)
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.put(msg, false)
    }

    fn max_message(&self) -> usize {
        self.ring.max
    }
}

impl<B> Drop for ShmSender<B> {
    fn drop(&mut self) {
        if !self.handed_over {
            let ctl = self.ring.ctl();
            close(&ctl.life.0.producer_closed, &ctl.consumer_wait.0);
        }
    }
}

/// What the next frame holds.
enum Next {
    Message,
    Empty,
}

impl<B: Backend> ShmReceiver<B> {
    pub(crate) fn attach(ring: Arc<Ring>, announce: bool) -> Self {
        if announce {
            let life = &ring.ctl().life.0;
            ring.announce(&life.consumer_pid, &life.consumer_started);
        }
        let max = ring.max;
        ShmReceiver {
            ring,
            tail: 0,
            buf: Vec::with_capacity(max.min(1 << 16)),
            empty_polls: 0,
            handed_over: false,
            light: light_fences(),
            _backend: PhantomData,
        }
    }

    /// Gives this end to another process: its pid is unknown until it opens the ring.
    pub(crate) fn hand_over(mut self) -> Result<Arc<Ring>> {
        let ring = self.ring.hand_over(
            self.tail != 0,
            "receive",
            &self.ring.ctl().life.0.consumer_pid,
        )?;
        self.handed_over = true;
        Ok(ring)
    }

    /// Whether a frame is published at the consumer's position.
    #[inline]
    fn ready(ring: &Ring, tail: u64) -> bool {
        let h = ring
            .header(tail & (ring.capacity - 1))
            .load(Ordering::SeqCst);
        h & !0xffff_ffff == stamp(tail)
    }

    /// Copies the next message into `buf`, if there is one.
    #[inline]
    fn take(&mut self) -> Result<Next> {
        let ring = &*self.ring;
        let off = self.tail & (ring.capacity - 1);
        ring.prefetch_after(off);
        let h = ring.header(off).load(Ordering::Acquire);
        if h & !0xffff_ffff != stamp(self.tail) {
            return self.nothing_yet();
        }
        let len = h as u32 as usize;
        if len > ring.max || off + frame_len(len) > ring.capacity {
            // A wrap marker (its length is u32::MAX) or a corrupt header.
            return self.take_slow();
        }
        self.read(off, len);
        Ok(Next::Message)
    }

    /// Why there is no frame at the consumer's position: none yet, or none
    /// ever again.
    #[inline]
    fn nothing_yet(&self) -> Result<Next> {
        let ring = &*self.ring;
        if ring.ctl().life.0.producer_closed.load(Ordering::Acquire) != 0
            && !Self::ready(ring, self.tail)
        {
            return Err(Error::Disconnected);
        }
        Ok(Next::Empty)
    }

    /// `take` past a wrap marker, or the error for a header that cannot be.
    #[cold]
    #[inline(never)]
    fn take_slow(&mut self) -> Result<Next> {
        let ring = &*self.ring;
        loop {
            let off = self.tail & (ring.capacity - 1);
            ring.prefetch_after(off);
            let h = ring.header(off).load(Ordering::Acquire);
            if h & !0xffff_ffff != stamp(self.tail) {
                return self.nothing_yet();
            }
            let len = h as u32;
            if len == WRAP {
                self.tail += ring.capacity - off;
                continue;
            }
            let len = len as usize;
            if len > ring.max || off + frame_len(len) > ring.capacity {
                return Err(Error::Corrupt(format!(
                    "frame of {len} bytes at ring offset {off} does not fit (maximum {}, ring {} bytes)",
                    ring.max, ring.capacity
                )));
            }
            self.read(off, len);
            return Ok(Next::Message);
        }
    }

    /// Copies the message of the frame at ring offset `off` (published, of
    /// `len` bytes, checked to fit in the ring) into `buf` and frees the frame.
    #[inline(always)]
    fn read(&mut self, off: u64, len: usize) {
        let ring = &*self.ring;
        self.buf.clear();
        self.buf.reserve(len);
        // SAFETY: the header was published (Acquire) after the payload was
        // written, and the producer does not touch [off, off + frame) until
        // the tail below moves past it; the callers checked that the frame
        // lies inside the ring; the destination has room for len bytes
        // (reserved above) and is ours alone.
        unsafe {
            std::ptr::copy_nonoverlapping(ring.data(off + HEADER), self.buf.as_mut_ptr(), len);
            self.buf.set_len(len);
        }
        self.tail += frame_len(len);
        publish(&ring.ctl().tail.0, self.tail, self.light);
        wake(&ring.ctl().producer_wait.0);
        self.empty_polls = 0;
    }

    fn producer_alive(&self) -> bool {
        let life = &self.ring.ctl().life.0;
        self.ring.alive(&life.producer_pid, &life.producer_started)
    }

    /// Waits for a message until `deadline` (`None`: no limit).
    fn wait(&mut self, deadline: Option<Instant>) -> Result<()> {
        let mut since = Instant::now();
        loop {
            if let Next::Message = self.take()? {
                return Ok(());
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(Error::Timeout);
            }
            let most = self.ring.sleep_limit();
            let limit = deadline.map_or(most, |d| (d - now).min(most));
            let (ring, tail) = (&*self.ring, self.tail);
            let closed = &ring.ctl().life.0.producer_closed;
            sleep_on(&ring.ctl().consumer_wait.0, Waker::Fenced, limit, || {
                Self::ready(ring, tail) || closed.load(Ordering::Acquire) != 0
            });
            if since.elapsed() >= self.ring.sleep_limit() {
                if !self.producer_alive() {
                    return match self.take()? {
                        Next::Message => Ok(()),
                        Next::Empty => Err(Error::Disconnected),
                    };
                }
                since = Instant::now();
            }
        }
    }
}

impl<B: Backend> ipc_core::Receiver for ShmReceiver<B> {
    fn recv(&mut self) -> Result<&[u8]> {
        self.wait(None)?;
        Ok(&self.buf)
    }

    fn try_recv(&mut self) -> Result<&[u8]> {
        match self.take()? {
            Next::Message => Ok(&self.buf),
            Next::Empty => {
                self.empty_polls += 1;
                if self.empty_polls >= POLLS_PER_LIVENESS_CHECK {
                    self.empty_polls = 0;
                    if !self.producer_alive() {
                        return match self.take()? {
                            Next::Message => Ok(&self.buf),
                            Next::Empty => Err(Error::Disconnected),
                        };
                    }
                }
                Err(Error::Empty)
            }
        }
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8]> {
        self.wait(Some(Instant::now() + timeout))?;
        Ok(&self.buf)
    }

    fn max_message(&self) -> usize {
        self.ring.max
    }
}

impl<B> Drop for ShmReceiver<B> {
    fn drop(&mut self) {
        if !self.handed_over {
            let ctl = self.ring.ctl();
            close(&ctl.life.0.consumer_closed, &ctl.producer_wait.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Native;

    /// Writes a header at the consumer's position, as a hostile peer could.
    fn forge(rx: &ShmReceiver<Native>, len: u64) {
        let off = rx.tail & (rx.ring.capacity - 1);
        rx.ring
            .header(off)
            .store(stamp(rx.tail) | len, Ordering::Release);
    }

    fn corrupt(rx: &mut ShmReceiver<Native>) -> String {
        match rx.take() {
            Err(Error::Corrupt(why)) => why,
            Err(e) => panic!("expected Corrupt, got {e}"),
            Ok(_) => panic!("expected Corrupt, got a message or nothing"),
        }
    }

    #[test]
    fn a_header_that_cannot_be_is_corrupt_and_copies_nothing() {
        let ring = Ring::create::<Native>("shm", 4096, 256, Duration::from_secs(5)).expect("ring");
        let (_tx, mut rx) = ends::<Native>(ring);

        // Longer than the largest message.
        forge(&rx, 1000);
        assert!(corrupt(&mut rx).contains("1000 bytes"));

        // Within the maximum but running past the end of the ring.
        rx.tail = 4096 - 16;
        forge(&rx, 200);
        assert!(corrupt(&mut rx).contains("200 bytes at ring offset 4080"));
        assert!(rx.buf.is_empty(), "nothing was copied");
    }

    fn ring(capacity: usize, max: usize) -> Arc<Ring> {
        Ring::create::<Native>("shm", capacity, max, Duration::from_secs(5)).expect("ring")
    }

    /// Both ends as if the ring had already carried `pos` bytes.
    fn at(ring: Arc<Ring>, pos: u64) -> (ShmSender<Native>, ShmReceiver<Native>) {
        let (mut tx, mut rx) = ends::<Native>(ring);
        (tx.head, tx.cached_tail, tx.cleared, rx.tail) = (pos, pos, pos, pos);
        rx.ring.ctl().tail.0.store(pos, Ordering::Release);
        (tx, rx)
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
            assert!(matches!(rx.take(), Ok(Next::Message)));
            assert_eq!(rx.buf, vec![2; len]);
        }
        assert_eq!(tx.head, P);
        assert!(
            matches!(rx.take(), Ok(Next::Empty)),
            "an old lap's bytes read as a frame"
        );
        tx.put(b"next", true).expect("send");
        assert!(matches!(rx.take(), Ok(Next::Message)));
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
    fn a_pid_that_now_belongs_to_another_process_is_a_gone_peer() {
        let ring = ring(4096, 256);
        let life = &ring.ctl().life.0;
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = other.id();
        let started = start_of(pid);
        assert_ne!(started, 0, "the start time of {pid} is readable");
        life.consumer_pid.store(pid, Ordering::Release);
        life.consumer_started.store(started, Ordering::Relaxed);
        assert!(ring.alive(&life.consumer_pid, &life.consumer_started));
        // The same pid, but the process that held the end started earlier.
        life.consumer_started
            .store(started - 1_000_000_000, Ordering::Relaxed);
        assert!(!ring.alive(&life.consumer_pid, &life.consumer_started));
        let _ = other.kill();
        let _ = other.wait();
        life.consumer_started.store(started, Ordering::Relaxed);
        assert!(!ring.alive(&life.consumer_pid, &life.consumer_started));
    }

    #[test]
    fn a_ring_of_impossible_sizes_is_not_made_or_opened() {
        assert!(Ring::create::<Native>("shm", MAX_CAPACITY * 2, 256, Duration::ZERO).is_err());
        assert!(Ring::create::<Native>("shm", 4096, 4096, Duration::ZERO).is_err());
        assert!(Ring::create::<Native>("shm", 3000, 8, Duration::ZERO).is_err());

        let forged = ring(4096, 256);
        let meta = &forged.ctl().meta.0;
        let open = || Ring::open::<Native>(forged.name()).map(drop);
        open().expect("an honest ring opens");
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
    }
}
