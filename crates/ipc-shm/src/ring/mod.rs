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
//! one in two. (The consumer once prefetched the second line before each
//! look at a header: on AMD EPYC the two lines then travelled together, but
//! on Intel Xeon a prefetch on every poll pulls the line away from the
//! producer while it writes it, and cost more than it saved: see the
//! README.) A frame that does not fit before the
//! end of the ring is preceded by a wrap marker. The ring is never cleared by
//! the consumer, so the slot where the next header will go may still hold an
//! earlier lap's payload, whose bytes could read as a header for this lap:
//! the producer makes sure that slot is zero before it publishes a frame,
//! zeroing the ring ahead of itself after each publication (off the path of
//! the message) and, when that has not reached far enough, before it.
//!
//! Each end is held by one process, named in the region by an
//! [`OwnerWord`] (pid and start time): opening an end is a compare-and-swap
//! of that word, so a second producer or consumer is refused, in this
//! process or another. Blocking and liveness are in [`wait`]; the ends in
//! [`sender`] and [`receiver`].

#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod receiver;
mod sender;
#[cfg(test)]
mod tests;
mod wait;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipc_core::liveness::{OwnerWord, PeerProcess, ProcessId};
use ipc_core::{Error, Limit, Result};

use crate::region::{Backend, Region};

pub use receiver::{ShmReceiver, View};
pub use sender::{Loan, ShmSender};
pub use wait::{Bell, Futex, LIVENESS_CHECK};

const MAGIC: u64 = u64::from_le_bytes(*b"ipcshm03");
const HEADER: u64 = 8;
const WRAP: u32 = u32::MAX;

/// The largest ring: positions are stamped with their low 32 bits, so one
/// lap must stay below 2^32 bytes.
pub const MAX_CAPACITY: usize = 1 << 31;

/// The largest message: the largest ring holds two of the largest frames.
pub const MESSAGE_LIMIT: Limit = Limit {
    bytes: MAX_CAPACITY / 2 - HEADER as usize,
    name: "the largest ring (2 GiB), which holds two frames",
};

/// The largest ring size the `capacity` option may ask for.
pub const CAPACITY_LIMIT: Limit = Limit {
    bytes: MAX_CAPACITY,
    name: "the largest ring (2 GiB; positions are stamped with 32 bits)",
};

#[repr(C, align(128))]
struct Line<T>(T);

#[repr(C)]
struct Meta {
    magic: AtomicU64,
    capacity: AtomicU64,
    max_message: AtomicU64,
    /// How long a handed-over end may stay unopened before its process
    /// counts as gone (the options' connect timeout), in nanoseconds.
    open_within_ns: AtomicU64,
}

/// One end's life: who holds it, whether it was closed, and when it was
/// handed to a process that has not opened it yet.
#[repr(C)]
struct End {
    /// The process holding the end; nobody while handed over and unopened.
    owner: OwnerWord,
    /// Set when the end is dropped (not when its process dies).
    closed: AtomicU32,
    /// When the end was handed over (CLOCK_MONOTONIC, which every process
    /// of the machine shares, in ns; 0: never).
    handed_at_ns: AtomicU64,
}

#[repr(C)]
struct Life {
    producer: End,
    consumer: End,
}

/// The control block at the start of the region.
#[repr(C)]
struct Control {
    meta: Line<Meta>,
    /// The consumer's position: written per message by the consumer, read
    /// by the producer only when its cached copy says the ring is full.
    tail: Line<AtomicU64>,
    /// The consumer's sleep: read per message by the producer.
    consumer_wait: Line<wait::WaitWord>,
    /// The producer's sleep: read per message by the consumer.
    producer_wait: Line<wait::WaitWord>,
    life: Line<Life>,
}

/// Where the data ring starts in the region.
const DATA_OFFSET: usize = std::mem::size_of::<Control>().next_multiple_of(128);

/// The region's size for a ring of `capacity` bytes.
fn region_len(capacity: usize) -> usize {
    DATA_OFFSET + capacity
}

/// Which end of a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The sending end.
    Producer,
    /// The receiving end.
    Consumer,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Producer => "sending",
            Side::Consumer => "receiving",
        }
    }

    /// The other end.
    pub fn other(self) -> Side {
        match self {
            Side::Producer => Side::Consumer,
            Side::Consumer => Side::Producer,
        }
    }
}

/// The ring in a mapped region, shared by the ends that live in this process.
pub(crate) struct Ring {
    region: Region,
    capacity: u64,
    max: usize,
    limit: &'static str,
    /// The process the parent spawned to open a handed-over end, once known
    /// (see `Transport::set_peer_of_sender`): if it dies before opening
    /// the end, the end is gone at once.
    expected: std::sync::Mutex<Option<PeerProcess>>,
    /// How long a sleep lasts at most before the peer's liveness is
    /// checked: [`LIVENESS_CHECK`], or longer in tests that must see a
    /// missed wake-up fail instead of being covered by the next check.
    sleep_limit_ns: AtomicU64,
    /// How the sides sleep and are woken.
    bell: Arc<dyn Bell>,
}

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

/// The position stamp of a header at stream position `pos`. Never 0
/// (positions are multiples of 8), so zeroed memory is no frame; a frame
/// from an earlier lap has another stamp (capacity < 2^32).
#[inline]
fn stamp(pos: u64) -> u64 {
    ((pos as u32).wrapping_add(1) as u64) << 32
}

/// The bytes a frame of a `len`-byte message takes in the ring.
#[inline]
fn frame_len(len: usize) -> u64 {
    HEADER + (len as u64).next_multiple_of(8)
}

/// Now on CLOCK_MONOTONIC, in ns: the same clock in every process of the
/// machine, never stepped.
fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

impl Ring {
    fn ctl(&self) -> &Control {
        // SAFETY: the region is at least DATA_OFFSET long (checked at create
        // and open), page-aligned, and lives as long as self; Control is made
        // only of atomics, which may be shared with the other process.
        unsafe { &*(self.region.as_ptr() as *const Control) }
    }

    /// The header word for stream position `pos`: its offset in the ring
    /// is `pos` modulo the capacity, rounded down to 8, so the word is
    /// always inside the ring and aligned, whatever `pos` is.
    #[inline]
    fn header(&self, pos: u64) -> &AtomicU64 {
        let off = pos & (self.capacity - 1) & !7;
        // SAFETY: off + 8 <= capacity (off is a multiple of 8 below the
        // capacity, itself a multiple of 8), so the word lies inside the
        // region; the ring starts 128-aligned, so it is aligned; headers are
        // only ever accessed atomically, by both processes.
        unsafe { &*(self.region.as_ptr().add(DATA_OFFSET + off as usize) as *const AtomicU64) }
    }

    /// The address of ring offset `off`.
    ///
    /// # Safety
    ///
    /// `off` must be at most the ring's capacity (then the pointer lies in
    /// the region or one past its end); accesses through it must stay
    /// below the capacity.
    #[inline]
    unsafe fn data(&self, off: u64) -> *mut u8 {
        debug_assert!(off <= self.capacity);
        // SAFETY: DATA_OFFSET + off <= the region's length (our caller keeps
        // off <= capacity, and the region holds DATA_OFFSET + capacity).
        unsafe { self.region.as_ptr().add(DATA_OFFSET + off as usize) }
    }

    pub(crate) fn name(&self) -> &str {
        self.region.name()
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    fn end(&self, side: Side) -> &End {
        let life = &self.ctl().life.0;
        match side {
            Side::Producer => &life.producer,
            Side::Consumer => &life.consumer,
        }
    }

    /// Where `side` announces that it sleeps.
    pub(crate) fn wait_word(&self, side: Side) -> &wait::WaitWord {
        let ctl = self.ctl();
        match side {
            Side::Producer => &ctl.producer_wait.0,
            Side::Consumer => &ctl.consumer_wait.0,
        }
    }

    /// Makes a fresh ring in a new region, both ends held by this process.
    pub(crate) fn create<B: Backend>(
        method: &str,
        capacity: usize,
        max: usize,
        limit: &'static str,
        open_within: Duration,
        bell: Arc<dyn Bell>,
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
        if region.len() < region_len(capacity) {
            return Err(Error::BadEndpoint(format!(
                "{} was mapped shorter than asked",
                region.name()
            )));
        }
        bell.prepare(Side::Producer)?;
        bell.prepare(Side::Consumer)?;
        let ring = Ring::new(region, capacity as u64, max, limit, bell);
        let ctl = ring.ctl();
        let meta = &ctl.meta.0;
        meta.capacity.store(capacity as u64, Ordering::Relaxed);
        meta.max_message.store(max as u64, Ordering::Relaxed);
        meta.open_within_ns.store(
            open_within.as_nanos().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
        let me = Some(ProcessId::current());
        ctl.life.0.producer.owner.set(me);
        ctl.life.0.consumer.owner.set(me);
        meta.magic.store(MAGIC, Ordering::Release);
        Ok(Arc::new(ring))
    }

    fn new(
        region: Region,
        capacity: u64,
        max: usize,
        limit: &'static str,
        bell: Arc<dyn Bell>,
    ) -> Ring {
        Ring {
            region,
            capacity,
            max,
            limit,
            expected: std::sync::Mutex::new(None),
            sleep_limit_ns: AtomicU64::new(LIVENESS_CHECK.as_nanos() as u64),
            bell,
        }
    }

    /// Maps the ring another process created, and makes this process the
    /// holder of its `side` end, which must have been handed over and not
    /// opened since.
    pub(crate) fn open<B: Backend>(
        name: &str,
        side: Side,
        bell: Arc<dyn Bell>,
    ) -> Result<Arc<Ring>> {
        let region = Region::open::<B>(name)?;
        if region.len() < DATA_OFFSET {
            return Err(Error::BadEndpoint(format!(
                "{name} is too small to be a ring"
            )));
        }
        bell.prepare(side)?;
        let mut ring = Ring::new(region, 0, 0, ipc_core::LIMIT_OPTION, bell);
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
        ring.limit = MESSAGE_LIMIT.lower(max).1;
        if let Err(holder) = ring.end(side).owner.claim(ProcessId::current()) {
            let by = match holder {
                Some(p) if p == ProcessId::current() => "by this process".to_owned(),
                Some(p) => format!("by process {}", p.pid()),
                None => "(its owner word is not valid)".to_owned(),
            };
            return Err(Error::InUse(format!(
                "the {} end of the ring {name} is already open {by}: a ring has one producer and one consumer",
                side.name()
            )));
        }
        Ok(Arc::new(ring))
    }

    /// Whether the process holding the `side` end still runs. An end
    /// handed over and not opened yet counts as held until its process is
    /// known to be dead or the connect timeout has passed.
    fn alive(&self, side: Side) -> bool {
        let end = self.end(side);
        match end.owner.raw() {
            0 => {
                let handed = end.handed_at_ns.load(Ordering::Acquire);
                let within = self.ctl().meta.0.open_within_ns.load(Ordering::Relaxed);
                let in_time = monotonic_ns().saturating_sub(handed) < within;
                let expected = self.expected.lock().map(|e| e.clone()).unwrap_or(None);
                in_time && expected.is_none_or(|p| p.is_running())
            }
            raw => match ProcessId::unpack(raw) {
                Some(p) if p == ProcessId::current() => true,
                Some(p) => p.is_running(),
                None => false,
            },
        }
    }

    /// Says which process will open the handed-over end (the parent learns
    /// it when it spawns the child).
    pub(crate) fn expect_peer(&self, peer: &PeerProcess) {
        if let Ok(mut expected) = self.expected.lock() {
            *expected = Some(peer.clone());
        }
    }

    /// How long a sleep lasts at most before the peer's liveness is checked.
    fn sleep_limit(&self) -> Duration {
        Duration::from_nanos(self.sleep_limit_ns.load(Ordering::Relaxed))
    }

    /// Lets sleeps on this ring last up to `limit` (for tests: a wake-up the
    /// bell misses then shows as a timeout, not as a 50 ms delay).
    pub(crate) fn set_sleep_limit(&self, limit: Duration) {
        self.sleep_limit_ns
            .store(limit.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Gives the `side` end to another process, which will open it soon;
    /// `used` says whether it already moved a message, which it must not
    /// have (`first` names what it would be).
    fn hand_over(self: &Arc<Ring>, side: Side, used: bool, first: &str) -> Result<Arc<Ring>> {
        if used {
            return Err(Error::BadEndpoint(format!(
                "a ring end must be handed over before its first {first}"
            )));
        }
        // The region's name lives while its creator holds an end of the
        // ring: with no end left here, the child could not open it.
        if Arc::strong_count(self) < 2 {
            return Err(Error::BadEndpoint(format!(
                "the other end of the ring {} is not held by this process: the creator must keep one end, which keeps the region",
                self.name()
            )));
        }
        let end = self.end(side);
        end.handed_at_ns.store(monotonic_ns(), Ordering::Release);
        if !end.owner.replace(Some(ProcessId::current()), None) {
            return Err(Error::InUse(format!(
                "the {} end of the ring {} is not this process's to hand over",
                side.name(),
                self.name()
            )));
        }
        Ok(Arc::clone(self))
    }
}

/// The two ends of a fresh ring.
pub(crate) fn ends<B: Backend>(ring: Arc<Ring>) -> (ShmSender<B>, ShmReceiver<B>) {
    (
        ShmSender::attach(Arc::clone(&ring)),
        ShmReceiver::attach(ring),
    )
}
