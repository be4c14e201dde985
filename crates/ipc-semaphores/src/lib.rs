//! Semaphores: the textbook bounded buffer. Slots in shared memory, a
//! counting semaphore `empty` (free slots) and `full` (filled slots), and a
//! mutex over the slots' states; several producers and several consumers,
//! in processes or threads. Done so that a killed process cannot wedge the
//! others or hand anyone a wrong message.
//!
//! # Hello, world!
//!
//! ```
//! use ipc_core::{Mode, Options, Receiver, Sender, Transport};
//! use ipc_semaphores::Semaphores;
//!
//! let (mut tx, mut rx) = Semaphores::channel(Mode::Thread, &Options::default().max_message(64))?;
//! let mut second = Semaphores::clone_sender(&tx)?;
//! tx.send(b"task 0")?;
//! second.send(b"task 1")?;
//! assert_eq!(rx.recv()?, b"task 0");
//! assert_eq!(rx.recv()?, b"task 1");
//! # Ok::<(), ipc_core::Error>(())
//! ```
//!
//! # Semantics
//!
//! A producer waits on `empty` (`sem_clockwait` on CLOCK_MONOTONIC, in
//! slices, so that no wall-clock step moves it and a dead peer is noticed),
//! takes a free slot under the mutex, copies its message in, marks the slot
//! full and posts `full`; a consumer waits on `full`, takes the full slot
//! claimed first (so each producer's messages arrive in the order it sent
//! them, whichever consumer gets them), copies the message out, frees the
//! slot and posts `empty`. Each slot carries a state word (free, being
//! written by participant `i`, full, being read by `i`), so no consumer
//! takes a slot before its producer finished writing it, also with several
//! producers writing at once.
//!
//! The semaphores are **unnamed, inside the region** (`sem_init` with
//! `pshared`): the region is then the one named object to create 0600,
//! clean and remove, and the semaphores live and die with it; named ones
//! (`sem_open`) would be two more objects in /dev/shm to name and clean.
//! The mutex is robust and process-shared (`PTHREAD_MUTEX_ROBUST`), so a
//! holder that dies does not deadlock the others: the next one gets
//! `EOWNERDEAD` and repairs. `sem_t` and the mutex are reached through raw
//! pointers only.
//!
//! **When a process dies**: every end is a participant in a table in the
//! region, with its pid and start time and a ledger of its phase (waiting
//! on a semaphore, holding a token, holding slot `i`, posting). A waiter
//! looks at the table between slices of its wait; finding a participant
//! dead (or `EOWNERDEAD` on the mutex), it repairs under the mutex: the
//! slot the dead one was writing or reading is freed and its message
//! logged as lost ([`SemReceiver::lost_messages`]: the producer and its
//! number), the dead one leaves the table, and the semaphores are set to
//! what the slots and the live ledgers say (see the `buffer` module for why
//! that is exact enough). A death costs at most one message: the one the
//! process was writing, or the one it had taken. When every process of the
//! other side is gone, a wait returns [`ipc_core::Error::Disconnected`]
//! within [`ends::LIVENESS_CHECK`].
//!
//! # Limitations
//!
//! At most [`layout::MAX_PARTICIPANTS`] ends per buffer; a message of at
//! most the slot size (the `max_message` option, at most
//! [`SLOT_LIMIT`]); every message costs the mutex twice and a semaphore
//! each way. The region can be written by any process that shares it: a
//! slot whose length cannot be is [`ipc_core::Error::Corrupt`], but a
//! process that breaks the protocol can still hand over wrong bytes.
//! Linux (glibc 2.30 or later, for `sem_clockwait`).

#[cfg(not(target_os = "linux"))]
compile_error!("ipc-semaphores uses Linux's robust process-shared mutexes and sem_clockwait.");

mod buffer;
pub mod ends;
pub mod hook;
pub mod layout;
mod sys;
#[cfg(test)]
mod tests;

pub use ends::{BufferState, SemReceiver, SemSender, Semaphores};
pub use ipc_core::LostMessage;

use ipc_core::Limit;

/// Slots when the options name no capacity (fewer for large slots: at
/// most [`DEFAULT_CAPACITY`] bytes of them, and at least one).
pub const DEFAULT_SLOTS: usize = 64;

/// The most bytes of slots a buffer gets when the options name no capacity.
pub const DEFAULT_CAPACITY: usize = 64 << 20;

/// The most slots a buffer has.
pub const MAX_SLOTS: usize = 4096;

/// The largest slot (and so message).
pub const SLOT_LIMIT: Limit = Limit {
    bytes: 16 << 20,
    name: "the largest slot of a semaphore buffer (16 MiB)",
};

/// The largest `capacity` (slots x slot size).
pub const CAPACITY_LIMIT: Limit = Limit {
    bytes: 1 << 30,
    name: "the largest semaphore buffer (1 GiB)",
};

ipc_core::conformance_tests!(semaphores_conformance, crate::Semaphores, Threads);
ipc_core::conformance_tests!(semaphores_process_conformance, crate::Semaphores, Processes);
