//! The shared region: a header, the robust mutex and the two semaphores,
//! the table of participants (each with its ledger), a log of messages lost
//! to deaths, and the slots.
//!
//! ```text
//! 0      Header (128 bytes)
//! 128    pthread_mutex_t (robust, process-shared)
//! 192    sem_t empty: free slots
//! 256    sem_t full: filled slots
//! 320    [Participant; 128], 64 bytes each
//! 8512   [Lost; 128], 16 bytes each
//! 10560  [Slot; n]: a 64-byte header and the payload, each rounded to 64 bytes
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64};

use ipc_core::liveness::OwnerWord;

pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"ipcsem01");

/// Participants (ends) one buffer can have at once.
pub const MAX_PARTICIPANTS: usize = 128;

/// Lost messages the log keeps (the oldest go first).
pub(crate) const LOST_LOG: usize = 128;

pub(crate) const MUTEX_OFF: usize = 128;
pub(crate) const EMPTY_OFF: usize = 192;
pub(crate) const FULL_OFF: usize = 256;
pub(crate) const PARTICIPANTS_OFF: usize = 320;
pub(crate) const LOST_OFF: usize = PARTICIPANTS_OFF + MAX_PARTICIPANTS * 64;
pub(crate) const SLOTS_OFF: usize = LOST_OFF + LOST_LOG * 16;
pub(crate) const SLOT_HEADER: usize = 64;

const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= EMPTY_OFF - MUTEX_OFF);
const _: () = assert!(std::mem::size_of::<libc::sem_t>() <= FULL_OFF - EMPTY_OFF);
const _: () = assert!(std::mem::size_of::<libc::sem_t>() <= PARTICIPANTS_OFF - FULL_OFF);
const _: () = assert!(std::mem::size_of::<Header>() <= MUTEX_OFF);
const _: () = assert!(std::mem::size_of::<Participant>() == 64);
const _: () = assert!(std::mem::size_of::<SlotHeader>() == SLOT_HEADER);
const _: () = assert!(std::mem::size_of::<Lost>() == 16);
const _: () = assert!(SLOTS_OFF % 64 == 0);

/// The geometry and counters at the start of the region.
#[repr(C)]
pub(crate) struct Header {
    pub magic: AtomicU64,
    /// Payload bytes of a slot.
    pub slot_size: AtomicU64,
    /// How many slots.
    pub slots: AtomicU64,
    /// How long a handed-over end may stay unopened, in ns.
    pub open_within_ns: AtomicU64,
    /// The next claim's ticket: a consumer takes the full slot with the
    /// lowest, so each producer's messages go out in the order it sent them.
    pub next_ticket: AtomicU64,
    /// Lost messages logged so far (the log keeps the last [`LOST_LOG`]).
    pub lost_count: AtomicU64,
    /// The next producer's number: a producer is known by it in slots and
    /// in the lost log, so that a table entry used again by another end
    /// does not make two producers one.
    pub next_producer: AtomicU64,
}

/// A participant's part in the table (state).
pub(crate) const UNUSED: u32 = 0;
/// Handed to a process that has not opened it yet (the owner word names
/// that process once the parent knows it, or nobody).
pub(crate) const HANDED: u32 = 1;
/// Held by the process its owner word names.
pub(crate) const HELD: u32 = 2;

/// Roles.
pub(crate) const PRODUCER: u32 = 1;
pub(crate) const CONSUMER: u32 = 2;

/// The ledger, a participant's phase in its current message:
/// idle between messages;
pub(crate) const IDLE: u32 = 0;
/// waiting on its semaphore (it may have got the token a moment ago and
/// not said so yet);
pub(crate) const WAIT: u32 = 1;
/// holding a token, no slot yet;
pub(crate) const HOLD: u32 = 2;
/// holding slot `slot` (writing it, or reading it);
pub(crate) const SLOT: u32 = 3;
/// done with slot `slot` (passed on under the mutex), posting the other
/// semaphore;
pub(crate) const POST: u32 = 4;
/// a consumer whose receive returned its message: the message counts as
/// delivered once the consumer asks for the next one or leaves, and as
/// lost (reported) if it dies before that.
pub(crate) const IN_HAND: u32 = 5;

/// One end of the buffer and its ledger.
#[repr(C)]
pub(crate) struct Participant {
    pub owner: OwnerWord,
    pub state: AtomicU32,
    pub role: AtomicU32,
    pub phase: AtomicU32,
    pub slot: AtomicU32,
    /// When it was handed over (CLOCK_MONOTONIC, ns).
    pub handed_at_ns: AtomicU64,
    /// A producer's next message number.
    pub next_seq: AtomicU64,
    /// A consumer's message in hand (from taking its slot until it asks
    /// for the next one): the producer and its number, reported lost if
    /// the consumer dies after freeing the slot.
    pub in_hand_seq: AtomicU64,
    pub in_hand_producer: AtomicU32,
    /// A producer's number (see [`Header::next_producer`]).
    pub producer: AtomicU32,
    _pad: u64,
}

/// A slot's state.
pub(crate) const FREE: u32 = 0;
pub(crate) const WRITING: u32 = 1;
pub(crate) const FULL: u32 = 2;
pub(crate) const READING: u32 = 3;

/// A slot's header; the payload follows it.
#[repr(C)]
pub(crate) struct SlotHeader {
    pub state: AtomicU32,
    /// The participant writing or reading it.
    pub holder: AtomicU32,
    pub ticket: AtomicU64,
    pub len: AtomicU64,
    /// The producer that wrote it (its number, not its table entry), and
    /// the message's number from that producer.
    pub producer: AtomicU32,
    _pad0: u32,
    pub seq: AtomicU64,
    _pad: [u64; 3],
}

/// A message lost to a death.
#[repr(C)]
pub(crate) struct Lost {
    pub producer: AtomicU32,
    _pad: u32,
    pub seq: AtomicU64,
}

/// Where a buffer of `slots` slots of `slot_size` bytes puts things.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub slot_size: usize,
    pub slots: usize,
}

impl Geometry {
    /// Bytes from one slot to the next.
    pub fn stride(&self) -> usize {
        (SLOT_HEADER + self.slot_size).next_multiple_of(64)
    }

    /// The region's length.
    pub fn region_len(&self) -> usize {
        SLOTS_OFF + self.slots * self.stride()
    }
}
