//! Shared memory: a single-producer single-consumer ring in a POSIX
//! shared-memory region, the fastest path between two processes. After
//! set-up no system call is needed to move a message: the producer copies it
//! into the ring and publishes its header, the consumer sees the header and
//! copies it out. Waiting is a choice: spin, sleep on a futex in the region,
//! or both (see the harness's `--wait`).
//!
//! # Hello, world!
//!
//! ```
//! use ipc_core::{Mode, Options, Receiver, Sender, Transport};
//! use ipc_shm::ShmRing;
//!
//! let (mut tx, mut rx) = ShmRing::channel(Mode::Thread, &Options::default())?;
//! tx.send(b"task 0")?;
//! assert_eq!(rx.recv()?, b"task 0");
//! # Ok::<(), ipc_core::Error>(())
//! ```
//!
//! # Semantics
//!
//! The region is named `/ipc-showcase.shm.<pid>.<start>.<random>`, created
//! 0600 and fully allocated by its creator, and removed by it on drop, on
//! Ctrl-C, or by the next creator or `clean` once its creator is dead. Every
//! message is copied out into the receiver's own buffer: nothing hands out a
//! view into memory the other process writes. The ring's size is the
//! `capacity` option, rounded up to a power of two and to at least twice
//! the largest frame. Each end is held by one process, named in the region
//! by its pid and start time; opening an end that is held (a second
//! producer, in this process or another) is refused with
//! [`ipc_core::Error::InUse`]. A peer that dies without closing its end is
//! noticed from its pid and start time within [`ring::LIVENESS_CHECK`] by a
//! blocked waiter, and after 65536 idle polls by a polling one (`try_recv`
//! on an empty ring, `try_send` on a full one); an end handed to another
//! process that never opens it counts as gone when that process dies
//! (once the parent has said which it is, `Transport::set_peer_of_*`) or
//! after the options' connect timeout.
//!
//! # Limitations
//!
//! Linux only (futexes, /dev/shm). One producer and one consumer per ring,
//! of at most [`ring::MAX_CAPACITY`] bytes. The other process can write
//! anything into the region: a header or a position that cannot be valid is
//! [`ipc_core::Error::Corrupt`] and nothing is read or written outside the
//! ring, but a peer that breaks the protocol can still hand over wrong bytes
//! (as over any channel), change a message while it is being copied out, or
//! shrink the region, which makes this process fault (SIGBUS). Share a ring
//! only with a process you would share your memory with.

mod copy;
mod region;
pub mod ring;
mod sys;

use std::marker::PhantomData;
use std::sync::Arc;

use ipc_core::liveness::PeerProcess;
use ipc_core::names::CleanReport;
use ipc_core::{check_mode, Endpoint, Handover, Limit, Mode, Options, Result, Transport};

#[cfg(feature = "shared_memory")]
pub use region::Crate;
pub use region::{clean, Backend, Native, Region, SHM_DIR};
pub use ring::{Bell, Futex, Loan, ShmReceiver, ShmSender, Side, View};

/// The ring's default size when the options name none: large enough that a
/// producer of 64 KiB messages seldom finds it full and sleeps (the README
/// has the figures that chose it).
pub const DEFAULT_RING: usize = 4 << 20;

/// The shared-memory ring transport, on region backend `B` (our own by default).
#[derive(Debug, Clone, Copy)]
pub struct Shm<B = Native>(PhantomData<B>);

/// The ring on our own region backend.
pub type ShmRing = Shm<Native>;

/// The ring on the `shared_memory` crate's backend (cargo feature `shared_memory`).
#[cfg(feature = "shared_memory")]
pub type ShmRingCrate = Shm<Crate>;

/// The ring size for these options: a power of two holding at least two of
/// the largest frames (the options' `max_message`, lowered to
/// [`ring::MESSAGE_LIMIT`]); a `capacity` above [`ring::CAPACITY_LIMIT`] is
/// refused.
pub fn ring_capacity(opts: &Options) -> Result<usize> {
    let capacity = opts.capacity.unwrap_or(DEFAULT_RING);
    ring::CAPACITY_LIMIT.check_capacity(capacity)?;
    let (max, _) = ring::MESSAGE_LIMIT.lower(opts.max_message);
    let largest_frame = max.next_multiple_of(8) + 8;
    Ok(capacity.max(2 * largest_frame).next_power_of_two())
}

impl<B: Backend> Transport for Shm<B> {
    const NAME: &'static str = "shm";
    const VARIANT: &'static str = B::VARIANT;
    const MODES: &'static [Mode] = &[Mode::Process, Mode::Thread];
    type Sender = ShmSender<B>;
    type Receiver = ShmReceiver<B>;

    fn channel(mode: Mode, opts: &Options) -> Result<(ShmSender<B>, ShmReceiver<B>)> {
        Self::channel_with_bell(Self::NAME, mode, opts, Arc::new(Futex))
    }

    fn message_limit() -> Limit {
        ring::MESSAGE_LIMIT
    }

    fn capacity_limit() -> Limit {
        ring::CAPACITY_LIMIT
    }

    fn set_peer_of_sender(end: &mut ShmSender<B>, peer: &PeerProcess) -> Result<()> {
        end.ring().expect_peer(peer);
        Ok(())
    }

    fn set_peer_of_receiver(end: &mut ShmReceiver<B>, peer: &PeerProcess) -> Result<()> {
        end.ring().expect_peer(peer);
        Ok(())
    }

    fn export_sender(end: ShmSender<B>, _handover: &mut Handover) -> Result<Endpoint> {
        let ring = end.hand_over()?;
        let mut ep = Endpoint::new(Self::NAME, Self::VARIANT, ring.max());
        ep.name = Some(ring.name().to_owned());
        Ok(ep)
    }

    fn export_receiver(end: ShmReceiver<B>, _handover: &mut Handover) -> Result<Endpoint> {
        let ring = end.hand_over()?;
        let mut ep = Endpoint::new(Self::NAME, Self::VARIANT, ring.max());
        ep.name = Some(ring.name().to_owned());
        Ok(ep)
    }

    fn open_sender(ep: Endpoint) -> Result<ShmSender<B>> {
        ep.expect(Self::NAME, Self::VARIANT)?;
        Self::open_sender_with_bell(&ep, Arc::new(Futex))
    }

    fn open_receiver(ep: Endpoint) -> Result<ShmReceiver<B>> {
        ep.expect(Self::NAME, Self::VARIANT)?;
        Self::open_receiver_with_bell(&ep, Arc::new(Futex))
    }

    fn clean() -> Result<CleanReport> {
        region::clean(Self::NAME)
    }
}

impl<B: Backend> Shm<B> {
    /// A fresh ring whose sides sleep and wake through `bell` instead of
    /// the futex (the signals transport's doorbell rings with a signal); its
    /// region is named for `method` (`ipc-showcase.<method>...`), whose
    /// `clean` removes it after a crash ([`clean`]).
    pub fn channel_with_bell(
        method: &'static str,
        mode: Mode,
        opts: &Options,
        bell: Arc<dyn Bell>,
    ) -> Result<(ShmSender<B>, ShmReceiver<B>)> {
        check_mode::<Self>(mode)?;
        let (max, limit) = ring::MESSAGE_LIMIT.lower(opts.max_message);
        let ring = ring::Ring::create::<B>(
            method,
            ring_capacity(opts)?,
            max,
            limit,
            opts.connect_timeout,
            bell,
        )?;
        Ok(ring::ends(ring))
    }

    /// Reopens, in the child, a sender handed over by the parent, sleeping
    /// and woken through `bell` (the one the parent's end uses, in kind).
    /// The endpoint's transport is not checked: a transport built on the
    /// ring checks its own.
    pub fn open_sender_with_bell(ep: &Endpoint, bell: Arc<dyn Bell>) -> Result<ShmSender<B>> {
        let ring = ring::Ring::open::<B>(endpoint_name(ep)?, Side::Producer, bell)?;
        Ok(ShmSender::attach(ring))
    }

    /// The same for a receiver.
    pub fn open_receiver_with_bell(ep: &Endpoint, bell: Arc<dyn Bell>) -> Result<ShmReceiver<B>> {
        let ring = ring::Ring::open::<B>(endpoint_name(ep)?, Side::Consumer, bell)?;
        Ok(ShmReceiver::attach(ring))
    }
}

fn endpoint_name(ep: &Endpoint) -> Result<&str> {
    ep.name
        .as_deref()
        .ok_or_else(|| ipc_core::Error::BadEndpoint("a shm endpoint carries no region name".into()))
}

ipc_core::conformance_tests!(ring_conformance, crate::ShmRing, Threads);
ipc_core::conformance_tests!(ring_process_conformance, crate::ShmRing, Processes);
#[cfg(feature = "shared_memory")]
ipc_core::conformance_tests!(crate_ring_conformance, crate::ShmRingCrate, Threads);
#[cfg(feature = "shared_memory")]
ipc_core::conformance_tests!(
    crate_ring_process_conformance,
    crate::ShmRingCrate,
    Processes
);

#[cfg(test)]
mod tests;
