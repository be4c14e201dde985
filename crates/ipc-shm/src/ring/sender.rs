//! The producer's end of the ring.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use ipc_core::{Error, Result};

use super::wait::{close, sleep_on, wake, IdlePolls, Waker};
use super::{frame_len, stamp, Ring, Side, HEADER, WRAP};
use crate::region::Backend;

/// How far past a frame's end the producer clears the ring at a time.
const CLEAR_AHEAD: u64 = 256;

/// The producer's end of a ring.
pub struct ShmSender<B> {
    pub(crate) ring: Arc<Ring>,
    pub(crate) head: u64,
    pub(super) cached_tail: u64,
    /// The ring holds zeros from `head` up to this position (see `clear_slot`).
    pub(super) cleared: u64,
    handed_over: bool,
    /// `try_send`s that found the ring full since the last liveness check.
    full_polls: IdlePolls,
    /// Set once the consumer's process was found gone: it stays gone.
    gone: bool,
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

impl<B: Backend> ShmSender<B> {
    /// The producer's end of `ring`, whose producer end this process holds.
    pub(crate) fn attach(ring: Arc<Ring>) -> Self {
        ShmSender {
            head: 0,
            cached_tail: 0,
            // A new region is zero-filled; an end is only handed over unused.
            cleared: ring.capacity,
            ring,
            handed_over: false,
            full_polls: IdlePolls::default(),
            gone: false,
            _backend: PhantomData,
        }
    }

    /// Gives this end to another process: nobody holds it until that
    /// process opens the ring.
    pub(crate) fn hand_over(mut self) -> Result<Arc<Ring>> {
        let ring = self
            .ring
            .hand_over(Side::Producer, self.head != 0, "send")?;
        self.handed_over = true;
        Ok(ring)
    }

    /// The ring, for the parent to say which process will open the other end.
    pub(crate) fn ring(&self) -> &Ring {
        &self.ring
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
    /// reads the consumer's position again, spins a little, then sleeps; a
    /// `try_send` (no `block`) returns `Full`, and every so often checks that
    /// the consumer still runs.
    #[cold]
    #[inline(never)]
    fn wait_for_room(&mut self, need: u64, block: bool) -> Result<()> {
        let ring = &*self.ring;
        let ctl = ring.ctl();
        let consumer = &ctl.life.0.consumer;
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
                        self.full_polls.reset();
                        return Ok(());
                    }
                }
            }
            if consumer.closed.load(Ordering::Acquire) != 0 {
                return Err(Error::Disconnected);
            }
            if !block {
                if self.full_polls.tick() && !ring.alive(Side::Consumer) {
                    self.gone = true;
                    return Err(Error::Disconnected);
                }
                return Err(Error::Full);
            }
            if spins < 1000 {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let head = self.head;
            sleep_on(
                ring,
                Side::Producer,
                Waker::Light,
                ring.sleep_limit(),
                || {
                    free(head, ctl.tail.0.load(Ordering::Acquire)).is_none_or(|f| f >= need)
                        || consumer.closed.load(Ordering::Acquire) != 0
                },
            );
            if since.elapsed() >= ring.sleep_limit() {
                if !ring.alive(Side::Consumer) {
                    self.gone = true;
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
        // SAFETY: start < capacity and start + first <= capacity, and the
        // rest, len - first <= capacity (the room is at most one ring), starts
        // at 0: both parts are inside the ring. [from, to) lies in the room
        // the consumer has left (below its position plus the capacity, and
        // at or past `head`, which it has not reached), and the consumer
        // reads none of it before a header published after these writes. A
        // consumer that breaks the protocol and writes there meanwhile races
        // only with these zeros.
        unsafe {
            std::ptr::write_bytes(ring.data(start), 0, first as usize);
            std::ptr::write_bytes(ring.data(0), 0, (len - first) as usize);
        }
    }

    /// Finds room for a frame of a `len`-byte message (waiting for it when
    /// `block`), and says where its payload goes: the frame's ring offset,
    /// and how many bytes before the ring's end the producer skips (0, or
    /// the rest of the ring when the frame wraps to offset 0).
    #[inline(always)]
    fn reserve(&mut self, len: usize, block: bool) -> Result<(u64, u64)> {
        let ring = &*self.ring;
        if len > ring.max {
            return Err(Error::TooLarge {
                len,
                max: ring.max,
                limit: ring.limit,
            });
        }
        if self.gone || ring.ctl().life.0.consumer.closed.load(Ordering::Relaxed) != 0 {
            return Err(Error::Disconnected);
        }
        let frame = frame_len(len);
        let off = self.head & (ring.capacity - 1);
        let to_end = ring.capacity - off;
        let wraps = frame > to_end;
        // The frame, and the header slot after it, which `publish` clears.
        let need = if wraps { to_end + frame } else { frame } + HEADER;
        self.make_room(need, block)?;
        Ok(if wraps { (0, to_end) } else { (off, 0) })
    }

    /// Publishes the frame `reserve` found at ring offset `off` (after
    /// `skip` bytes to the ring's end), whose `len` bytes of payload are
    /// written: a wrap marker first if it skips, the slot after the frame
    /// cleared, then its header.
    #[inline(always)]
    fn publish(&mut self, off: u64, skip: u64, len: usize) {
        if skip > 0 {
            // The consumer goes to offset 0 on seeing the marker.
            self.clear_slot(self.head + skip);
            let ring = &*self.ring;
            ring.header(self.head & (ring.capacity - 1))
                .store(stamp(self.head) | WRAP as u64, Ordering::SeqCst);
            self.head += skip;
        }
        let frame = frame_len(len);
        // The consumer looks there once it has this frame.
        self.clear_slot(self.head + frame);
        let ring = &*self.ring;
        // Published before the load of `waiting` in `wake` (a consumer about
        // to sleep either sees this header or is seen waiting here), with a
        // sequentially consistent swap even where a compiler fence would do:
        // a locked xchg reaches a polling consumer on another core sooner
        // than a plain store (the README has the figures).
        ring.header(off)
            .swap(stamp(self.head) | len as u64, Ordering::SeqCst);
        self.head += frame;
        wake(ring, Side::Consumer);
        self.clear_ahead();
    }

    /// Sends `msg`, waiting for room when `block`. The common case is
    /// inline and straight: the frame fits before the ring's end, in room
    /// the consumer's last known position already leaves and that is
    /// cleared ahead, for a consumer still there. Anything else (a frame
    /// that wraps, a full ring, a message above the maximum, a consumer
    /// gone) goes through `put_slow`. Every instruction here lies on the
    /// path of a round trip (the README's shared memory II section has the
    /// figures).
    #[inline(always)]
    pub(super) fn put(&mut self, msg: &[u8], block: bool) -> Result<()> {
        let ring = &*self.ring;
        let (len, head) = (msg.len(), self.head);
        if len <= ring.max {
            let frame = frame_len(len);
            // Where the frame and the header slot after it end: within the
            // room and the zeros ahead, and the frame itself not past the
            // end of the ring (the slot after it may be the next lap's first).
            let end = head + frame + HEADER;
            let lap_end = (head | (ring.capacity - 1)) + 1;
            if end <= self.cached_tail + ring.capacity
                && end <= self.cleared
                && end <= lap_end + HEADER
                && !self.gone
                && ring.ctl().life.0.consumer.closed.load(Ordering::Relaxed) == 0
            {
                let off = head & (ring.capacity - 1);
                // SAFETY: the frame [off, off + frame) lies inside the ring
                // (it ends at the lap's end at the latest) and is free: it
                // is below the consumer's position plus the capacity, so the
                // consumer reads none of it before the header below is
                // published. The source is the caller's slice of len bytes.
                // A consumer that breaks the protocol races only with these
                // bytes of shared memory (as in `put_slow`).
                unsafe { crate::copy::copy(msg.as_ptr(), ring.data(off + HEADER), len) };
                // As in `publish` (the slot after the frame is cleared:
                // `end <= cleared`).
                ring.header(off)
                    .swap(stamp(head) | len as u64, Ordering::SeqCst);
                self.head = head + frame;
                wake(ring, Side::Consumer);
                self.clear_ahead();
                return Ok(());
            }
        }
        self.put_slow(msg, block)
    }

    /// `put` when its quick path does not apply.
    #[cold]
    #[inline(never)]
    fn put_slow(&mut self, msg: &[u8], block: bool) -> Result<()> {
        let (off, skip) = self.reserve(msg.len(), block)?;
        // SAFETY: the frame [off, off + frame_len) lies inside the ring (a
        // frame that would pass the end goes to offset 0, and the ring holds
        // two of the largest frames), and reserve made sure it is free: the
        // consumer has moved past it and will not read it before `publish`
        // stores its header. The source is the caller's slice of msg.len()
        // bytes. A consumer that breaks the protocol and reads or writes the
        // frame meanwhile races only with these bytes of shared memory,
        // never with memory of ours.
        unsafe { crate::copy::copy(msg.as_ptr(), self.ring.data(off + HEADER), msg.len()) };
        self.publish(off, skip, msg.len());
        Ok(())
    }

    /// Lends the room for a `len`-byte message inside the ring, waiting for
    /// it if the ring is full: write the message into the [`Loan`] and
    /// [`Loan::commit`] it to publish it; a loan dropped without a commit
    /// publishes nothing. Zero-copy: the consumer reads the bytes where they
    /// are written. [`Error::TooLarge`] above the ring's maximum,
    /// [`Error::Disconnected`] once the consumer is gone.
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_, B>> {
        self.lend(len, true)
    }

    /// As [`ShmSender::loan`], but [`Error::Full`] instead of waiting.
    #[inline]
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_, B>> {
        self.lend(len, false)
    }

    #[inline(always)]
    fn lend(&mut self, len: usize, block: bool) -> Result<Loan<'_, B>> {
        let (off, skip) = self.reserve(len, block)?;
        Ok(Loan {
            sender: self,
            off,
            skip,
            len,
            committed: false,
        })
    }
}

/// Room for one message inside the ring, lent by [`ShmSender::loan`]: a
/// `&mut [u8]` of the message's length (it holds what earlier laps left
/// there, not zeros). [`Loan::commit`] publishes it; dropping it publishes
/// nothing, and the next message goes where it was.
///
/// The slice is memory the consumer's process maps too. A consumer that
/// keeps the protocol does not read or write it before the commit, so the
/// slice is this end's alone, as a `&mut` must be; one that breaks the
/// protocol can write it meanwhile, which changes only these bytes of shared
/// memory (the same trust as [`ipc_core::Sender::send`]'s copy into the
/// ring).
pub struct Loan<'a, B: Backend> {
    sender: &'a mut ShmSender<B>,
    off: u64,
    skip: u64,
    len: usize,
    committed: bool,
}

impl<B: Backend> Loan<'_, B> {
    /// Publishes the message: the consumer can receive it from now on.
    #[inline(always)]
    pub fn commit(mut self) {
        self.committed = true;
        self.sender.publish(self.off, self.skip, self.len);
    }
}

impl<B: Backend> std::ops::Deref for Loan<'_, B> {
    type Target = [u8];

    #[inline(always)]
    fn deref(&self) -> &[u8] {
        // SAFETY: as for deref_mut, shared.
        unsafe { std::slice::from_raw_parts(self.sender.ring.data(self.off + HEADER), self.len) }
    }
}

impl<B: Backend> std::ops::DerefMut for Loan<'_, B> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: reserve found the frame [off, off + HEADER + len) inside
        // the ring (the ring holds two of the largest frames and a frame
        // that would pass its end was moved to offset 0) and free: the
        // consumer has left it and reads none of it before `publish` stores
        // its header, which only `commit` does. The region is mapped as
        // long as the sender's ring, which outlives this loan; the bytes
        // are initialised (a mapping's pages always are). The `&mut self`
        // borrow keeps a second slice from existing. A consumer that breaks
        // the protocol can write these bytes meanwhile (see the type's
        // documentation).
        unsafe {
            std::slice::from_raw_parts_mut(self.sender.ring.data(self.off + HEADER), self.len)
        }
    }
}

impl<B: Backend> Drop for Loan<'_, B> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Not committed: nothing was published. The loan may have written
        // anywhere past `head`, where the producer kept zeros ahead of
        // itself for the header slots to come; from now on only the slot at
        // `head` (which the loan does not reach) counts as cleared.
        let sender = &mut *self.sender;
        sender.cleared = sender.cleared.min(sender.head + HEADER);
    }
}

impl<B: Backend> ipc_core::SendInPlace for ShmSender<B> {
    /// Inline to the commit, as `send` is: with `loan`, `commit` and this
    /// out of line, zero-copy round trips took 1.12-1.22x as long at 8 and
    /// 64 bytes (AMD EPYC, measured; the README has the figures).
    #[inline(always)]
    fn send_in_place<T>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> T) -> Result<T> {
        let mut loan = self.loan(len)?;
        let out = fill(&mut loan);
        loan.commit();
        Ok(out)
    }
}

impl<B> ShmSender<B> {
    /// How long a sleep on this ring lasts at most before the peer's
    /// liveness is checked ([`super::LIVENESS_CHECK`] by default): a longer
    /// one lets a test see a wake-up the bell missed as a timeout, where
    /// the next check would otherwise cover it. It holds for both ends of
    /// the ring in this process.
    pub fn set_sleep_limit(&self, limit: std::time::Duration) {
        self.ring.set_sleep_limit(limit);
    }
}

impl<B: Backend> ipc_core::Sender for ShmSender<B> {
    #[inline(always)]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.put(msg, true)
    }

    #[inline(always)]
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
            close(&self.ring, Side::Producer);
        }
    }
}
