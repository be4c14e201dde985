//! The producers' and consumers' ends (the transport that makes them is in
//! `transport.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_core::liveness::{PeerProcess, ProcessId};
use ipc_core::names::CleanReport;
use ipc_core::{
    check_mode, Endpoint, Error, Handover, Limit, LossReport, LostMessage, Mode, Options, Result,
    Transport,
};

use crate::buffer::{Buffer, Guard};
use crate::hook::{self, Point};
use crate::layout::*;
use crate::sys::{self, Taken};

mod transport;

/// How often a waiting end checks that the other side still has a live
/// process, and repairs after deaths.
pub const LIVENESS_CHECK: Duration = Duration::from_millis(50);

/// Polls that found nothing between two such checks.
const POLLS_PER_CHECK: u32 = 1 << 12;

/// The bounded buffer of slots in shared memory, guarded by the counting
/// semaphores `empty` and `full` and a robust mutex; several producers and
/// consumers, in processes or threads.
#[derive(Debug, Clone, Copy)]
pub struct Semaphores;

/// A producer's end; [`Transport::clone_sender`] makes more.
#[derive(Debug)]
pub struct SemSender {
    end: End,
}

/// A consumer's end; [`Transport::clone_receiver`] makes more.
#[derive(Debug)]
pub struct SemReceiver {
    end: End,
    buf: Vec<u8>,
}

/// What both ends are: a participant of a buffer.
struct End {
    buffer: Arc<Buffer>,
    me: usize,
    role: u32,
    handed_over: bool,
    gone: bool,
    idle: u32,
    /// This process as its owner word holds it (read once: `getpid` is a
    /// system call).
    owner: Option<ProcessId>,
}

impl std::fmt::Debug for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("End")
            .field("buffer", &self.buffer.name())
            .field("participant", &self.me)
            .finish()
    }
}

/// How a take waits.
#[derive(Clone, Copy)]
enum Wait {
    Poll,
    Until(Option<Instant>),
}

impl End {
    fn new(buffer: Arc<Buffer>, me: usize, role: u32) -> End {
        End {
            buffer,
            me,
            role,
            handed_over: false,
            gone: false,
            idle: 0,
            owner: Some(ProcessId::current()),
        }
    }

    fn ledger(&self) -> &Participant {
        self.buffer.participant(self.me)
    }

    /// Whether the other side has no live process left (and, for a
    /// consumer, nothing left to take).
    fn other_side_gone(&self) -> bool {
        let b = &self.buffer;
        if self.role == PRODUCER {
            b.live(CONSUMER) == 0
        } else {
            b.live(PRODUCER) == 0 && b.count_slots(FULL) == 0 && b.count_slots(WRITING) == 0
        }
    }

    /// Takes a token of `sem`: the ledger says `WAIT` before and `HOLD`
    /// after. Between slices of waiting, repairs after deaths and returns
    /// `Disconnected` when the other side is gone. `false`: `Poll` found none.
    fn acquire(&mut self, sem: *mut libc::sem_t, wait: Wait) -> Result<bool> {
        self.ledger().phase.store(WAIT, Ordering::SeqCst);
        loop {
            let slice = match wait {
                Wait::Poll => None,
                Wait::Until(None) => Some(LIVENESS_CHECK),
                Wait::Until(Some(d)) => Some(
                    d.saturating_duration_since(Instant::now())
                        .min(LIVENESS_CHECK),
                ),
            };
            // SAFETY: `sem` is one of the buffer's semaphores, in its region.
            let got = unsafe {
                match slice {
                    None => sys::sem_try(sem),
                    Some(limit) => sys::sem_wait_for(sem, limit).map(|t| t == Taken::Token),
                }
            }
            .map_err(|e| Error::io("wait on the buffer's semaphore", e))?;
            if got {
                hook::reached(self.role, Point::AfterWait);
                self.ledger().phase.store(HOLD, Ordering::SeqCst);
                self.idle = 0;
                return Ok(true);
            }
            let check = match wait {
                Wait::Poll => {
                    self.idle += 1;
                    self.idle % POLLS_PER_CHECK == 0
                }
                Wait::Until(_) => true,
            };
            if check {
                self.buffer.repair_if_needed()?;
                if self.other_side_gone() {
                    self.ledger().phase.store(IDLE, Ordering::SeqCst);
                    self.gone = true;
                    return Err(Error::Disconnected);
                }
            }
            match wait {
                Wait::Poll => {
                    self.ledger().phase.store(IDLE, Ordering::SeqCst);
                    return Ok(false);
                }
                Wait::Until(Some(d)) if Instant::now() >= d => {
                    self.ledger().phase.store(IDLE, Ordering::SeqCst);
                    return Err(Error::Timeout);
                }
                Wait::Until(_) => {}
            }
        }
    }

    /// Under the lock: marks slot `s` held by this end (ledger `SLOT`).
    fn hold_slot(&self, s: usize, state: u32) {
        let slot = self.buffer.slot(s);
        slot.holder.store(self.me as u32, Ordering::Release);
        slot.state.store(state, Ordering::Release);
        let p = self.ledger();
        p.slot.store(s as u32, Ordering::Release);
        p.phase.store(SLOT, Ordering::Release);
    }

    /// Gives slot `s` on (`FULL` or `FREE`) under the lock `held`, then
    /// lets the lock go and posts `sem`: a waiter woken by the post does
    /// not find the lock still held by its waker.
    ///
    /// Refuses, touching nothing, when the slot is no longer this end's:
    /// when another process judged this one dead and gave the slot away,
    /// the bytes it wrote or read may be another message's.
    fn pass_slot(
        &self,
        held: Guard<'_>,
        s: usize,
        state: u32,
        sem: *mut libc::sem_t,
    ) -> Result<()> {
        let slot = self.buffer.slot(s);
        let was = if state == FULL { WRITING } else { READING };
        let p = self.ledger();
        let still_mine = slot.holder.load(Ordering::Acquire) as usize == self.me
            && slot.state.load(Ordering::Acquire) == was
            && p.owner.holder() == self.owner
            && p.state.load(Ordering::Acquire) == HELD;
        if !still_mine {
            return Err(Error::Corrupt(format!(
                "slot {s} of the buffer {} was taken from this end while it held it (another process judged this one dead)",
                self.buffer.name()
            )));
        }
        // The ledger first: a death between the two stores finds the slot
        // still held, and its message is lost and logged once.
        p.phase.store(POST, Ordering::SeqCst);
        slot.state.store(state, Ordering::SeqCst);
        drop(held);
        hook::reached(self.role, Point::BeforePost);
        // SAFETY: `sem` is one of the buffer's semaphores, in its region.
        let posted = unsafe { sys::sem_post(sem) };
        let after = if self.role == CONSUMER { IN_HAND } else { IDLE };
        p.phase.store(after, Ordering::SeqCst);
        posted.map_err(|e| Error::io("post the buffer's semaphore", e))
    }

    /// This end leaves the buffer (a waiter on the other side notices
    /// within a slice of its wait).
    fn leave(&mut self) {
        if !self.handed_over {
            self.buffer.leave(self.me);
        }
    }

    fn hand_over(&mut self) -> Result<Endpoint> {
        if Arc::strong_count(&self.buffer) < 2 {
            return Err(Error::BadEndpoint(format!(
                "no other end of the buffer {} is held by this process: the creator must keep one, which keeps the region",
                self.buffer.name()
            )));
        }
        self.buffer.hand_over(self.me)?;
        self.handed_over = true;
        let mut ep = Endpoint::new(
            Semaphores::NAME,
            Semaphores::VARIANT,
            self.buffer.geo.slot_size,
        );
        ep.name = Some(self.buffer.name().to_owned());
        ep.extra = vec![self.me as u64];
        Ok(ep)
    }
}

impl SemSender {
    fn put(&mut self, msg: &[u8], wait: Wait) -> Result<()> {
        let e = &mut self.end;
        let max = e.buffer.geo.slot_size;
        if msg.len() > max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max,
                limit: SLOT_NAME,
            });
        }
        if e.gone {
            return Err(Error::Disconnected);
        }
        loop {
            if !e.acquire(e.buffer.empty(), wait)? {
                return Err(Error::Full);
            }
            let held = e.buffer.lock()?;
            hook::reached(PRODUCER, Point::HoldingMutex);
            let b = &e.buffer;
            let Some(s) =
                (0..b.geo.slots).find(|&s| b.slot(s).state.load(Ordering::Acquire) == FREE)
            else {
                // A token with no free slot: one the recount left too many.
                e.ledger().phase.store(WAIT, Ordering::SeqCst);
                drop(held);
                continue;
            };
            let p = e.ledger();
            let slot = b.slot(s);
            slot.producer
                .store(p.producer.load(Ordering::Acquire), Ordering::Release);
            slot.seq
                .store(p.next_seq.fetch_add(1, Ordering::AcqRel), Ordering::Release);
            slot.ticket.store(
                b.header().next_ticket.fetch_add(1, Ordering::AcqRel),
                Ordering::Release,
            );
            slot.len.store(msg.len() as u64, Ordering::Release);
            e.hold_slot(s, WRITING);
            drop(held);
            let half = msg.len() / 2;
            // SAFETY: s < slots; the slot is WRITING and held by this end
            // (under the mutex above), so no other end reads or writes its
            // payload until it is FULL; msg.len() <= slot_size bytes fit.
            // A process that breaks the protocol and writes the payload
            // meanwhile races only with these bytes of shared memory.
            unsafe {
                let to = b.payload(s);
                std::ptr::copy_nonoverlapping(msg.as_ptr(), to, half);
                hook::reached(PRODUCER, Point::MidWrite);
                std::ptr::copy_nonoverlapping(
                    msg.as_ptr().add(half),
                    to.add(half),
                    msg.len() - half,
                );
            }
            let held = b.lock()?;
            return e.pass_slot(held, s, FULL, b.full());
        }
    }

    /// This producer's number in the buffer: the `producer` of the
    /// messages it sends, in a [`LostMessage`].
    pub fn producer_number(&self) -> u32 {
        self.end.ledger().producer.load(Ordering::Acquire)
    }

    /// Its entry in the buffer's table of participants.
    #[cfg(test)]
    pub(crate) fn participant(&self) -> usize {
        self.end.me
    }
}

impl SemReceiver {
    /// Takes the oldest full slot's message into `buf`; `false`: `Poll` found none.
    fn take(&mut self, wait: Wait) -> Result<bool> {
        let e = &mut self.end;
        if e.gone {
            return Err(Error::Disconnected);
        }
        loop {
            if !e.acquire(e.buffer.full(), wait)? {
                return Ok(false);
            }
            let held = e.buffer.lock()?;
            hook::reached(CONSUMER, Point::HoldingMutex);
            let b = &e.buffer;
            let oldest = (0..b.geo.slots)
                .filter(|&s| b.slot(s).state.load(Ordering::Acquire) == FULL)
                .min_by_key(|&s| b.slot(s).ticket.load(Ordering::Acquire));
            let Some(s) = oldest else {
                e.ledger().phase.store(WAIT, Ordering::SeqCst);
                drop(held);
                if e.other_side_gone() {
                    e.ledger().phase.store(IDLE, Ordering::SeqCst);
                    e.gone = true;
                    return Err(Error::Disconnected);
                }
                continue;
            };
            let (slot, p) = (b.slot(s), e.ledger());
            p.in_hand_producer
                .store(slot.producer.load(Ordering::Acquire), Ordering::Release);
            p.in_hand_seq
                .store(slot.seq.load(Ordering::Acquire), Ordering::Release);
            e.hold_slot(s, READING);
            drop(held);
            let len = b.slot(s).len.load(Ordering::Acquire) as usize;
            let fits = len <= b.geo.slot_size;
            if fits {
                self.buf.clear();
                self.buf.reserve(len);
                let half = len / 2;
                // SAFETY: s < slots; the slot is READING and held by this
                // end, so no other end writes it; len <= slot_size keeps the
                // copy inside the payload; `buf` has room for len bytes. A
                // process that breaks the protocol and writes the payload
                // meanwhile changes only the bytes copied.
                unsafe {
                    let from = b.payload(s);
                    std::ptr::copy_nonoverlapping(from, self.buf.as_mut_ptr(), half);
                    hook::reached(CONSUMER, Point::MidRead);
                    std::ptr::copy_nonoverlapping(
                        from.add(half),
                        self.buf.as_mut_ptr().add(half),
                        len - half,
                    );
                    self.buf.set_len(len);
                }
            }
            let held = b.lock()?;
            e.pass_slot(held, s, FREE, b.empty())?;
            if !fits {
                return Err(Error::Corrupt(format!(
                    "slot {s} says it holds {len} bytes, more than its {}",
                    b.geo.slot_size
                )));
            }
            return Ok(true);
        }
    }

    /// The buffer, for the unit tests to break on purpose.
    #[cfg(test)]
    pub(crate) fn buffer(&self) -> &Arc<Buffer> {
        &self.end.buffer
    }

    /// The messages lost so far to the death of a process that was writing
    /// or reading them: at most one per death. Every other message a
    /// producer sent arrives exactly once.
    pub fn lost_messages(&self) -> Result<Vec<LostMessage>> {
        self.end.buffer.lost()
    }

    /// The buffer as it is now, after a repair of whatever deaths it has
    /// seen: its slots by state and the semaphores' tokens (when no end is
    /// busy, `empty` holds a token per free slot and `full` one per full
    /// slot: the capacity is whole).
    pub fn state(&self) -> Result<BufferState> {
        let b = &self.end.buffer;
        let held = b.lock()?;
        b.repair(&held);
        // SAFETY: the buffer's semaphores, in its region.
        let (empty, full) = unsafe { (sys::sem_value(b.empty()), sys::sem_value(b.full())) };
        Ok(BufferState {
            slots: b.geo.slots,
            free: b.count_slots(FREE),
            full: b.count_slots(FULL),
            empty_tokens: empty.max(0) as usize,
            full_tokens: full.max(0) as usize,
        })
    }
}

/// What [`SemReceiver::state`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferState {
    /// Slots in all.
    pub slots: usize,
    /// Free slots.
    pub free: usize,
    /// Full slots.
    pub full: usize,
    /// Tokens of the semaphore `empty`.
    pub empty_tokens: usize,
    /// Tokens of the semaphore `full`.
    pub full_tokens: usize,
}

/// The name of the limit a message larger than a slot meets.
const SLOT_NAME: &str = "the buffer's slot size (the channel's max_message option)";

impl ipc_core::Sender for SemSender {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.put(msg, Wait::Until(None))
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.put(msg, Wait::Poll)
    }

    fn max_message(&self) -> usize {
        self.end.buffer.geo.slot_size
    }
}

impl ipc_core::Receiver for SemReceiver {
    fn recv(&mut self) -> Result<&[u8]> {
        self.take(Wait::Until(None))?;
        Ok(&self.buf)
    }

    fn try_recv(&mut self) -> Result<&[u8]> {
        if self.take(Wait::Poll)? {
            Ok(&self.buf)
        } else {
            Err(Error::Empty)
        }
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8]> {
        self.take(Wait::Until(Some(Instant::now() + timeout)))?;
        Ok(&self.buf)
    }

    fn max_message(&self) -> usize {
        self.end.buffer.geo.slot_size
    }
}

impl Drop for SemSender {
    fn drop(&mut self) {
        self.end.leave();
    }
}

impl Drop for SemReceiver {
    fn drop(&mut self) {
        self.end.leave();
    }
}
