//! The consumer's end of the ring.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_core::{Error, Result};

use super::wait::{close, publish, sleep_on, wake, IdlePolls, Waker};
use super::{frame_len, stamp, Ring, Side, HEADER, WRAP};
use crate::region::Backend;
use crate::sys::light_fences;

/// The consumer's end of a ring.
pub struct ShmReceiver<B> {
    pub(crate) ring: Arc<Ring>,
    pub(crate) tail: u64,
    pub(super) buf: Vec<u8>,
    empty_polls: IdlePolls,
    handed_over: bool,
    /// Set once the producer's process was found gone: it stays gone.
    gone: bool,
    /// Whether this process's per-message fences can be compiler fences.
    light: bool,
    _backend: PhantomData<B>,
}

impl<B> std::fmt::Debug for ShmReceiver<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmReceiver")
            .field("ring", &self.ring.name())
            .field("tail", &self.tail)
            .finish()
    }
}

/// What the consumer's position holds: a published frame (its ring offset
/// and length), or nothing yet.
pub(super) type Found = Option<(u64, usize)>;

impl<B: Backend> ShmReceiver<B> {
    /// The consumer's end of `ring`, whose consumer end this process holds.
    pub(crate) fn attach(ring: Arc<Ring>) -> Self {
        let max = ring.max;
        ShmReceiver {
            ring,
            tail: 0,
            buf: Vec::with_capacity(max.min(1 << 16)),
            empty_polls: IdlePolls::default(),
            handed_over: false,
            gone: false,
            light: light_fences(),
            _backend: PhantomData,
        }
    }

    /// Gives this end to another process: nobody holds it until that
    /// process opens the ring.
    pub(crate) fn hand_over(mut self) -> Result<Arc<Ring>> {
        let ring = self
            .ring
            .hand_over(Side::Consumer, self.tail != 0, "receive")?;
        self.handed_over = true;
        Ok(ring)
    }

    /// The ring, for the parent to say which process will open the other end.
    pub(crate) fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Whether a frame is published at the consumer's position (the
    /// sequentially consistent look a sleeper re-checks with).
    #[inline]
    fn published(ring: &Ring, tail: u64) -> bool {
        let h = ring.header(tail).load(Ordering::SeqCst);
        h & !0xffff_ffff == stamp(tail)
    }

    /// The published frame at the consumer's position, if there is one,
    /// checked to lie inside the ring; not freed yet.
    #[inline(always)]
    pub(super) fn locate(&mut self) -> Result<Found> {
        let ring = &*self.ring;
        let off = self.tail & (ring.capacity - 1);
        let h = ring.header(off).load(Ordering::Acquire);
        if h & !0xffff_ffff != stamp(self.tail) {
            return self.nothing_yet();
        }
        let len = h as u32 as usize;
        if len > ring.max || off + frame_len(len) > ring.capacity {
            // A wrap marker (its length is u32::MAX) or a corrupt header.
            return self.locate_slow();
        }
        Ok(Some((off, len)))
    }

    /// Copies the next message into `buf`, if there is one, and frees it.
    #[cfg(test)]
    pub(super) fn take(&mut self) -> Result<bool> {
        match self.locate()? {
            Some((off, len)) => {
                self.read(off, len);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// `try_recv` when its quick path does not apply.
    #[cold]
    #[inline(never)]
    fn try_recv_slow(&mut self) -> Result<&[u8]> {
        let (off, len) = self.poll()?;
        Ok(self.read(off, len))
    }

    /// Why there is no frame at the consumer's position: none yet, or none
    /// ever again.
    #[inline]
    fn nothing_yet(&self) -> Result<Found> {
        let ring = &*self.ring;
        if (self.gone || ring.ctl().life.0.producer.closed.load(Ordering::Acquire) != 0)
            && !Self::published(ring, self.tail)
        {
            return Err(Error::Disconnected);
        }
        Ok(None)
    }

    /// `locate` past a wrap marker, or the error for a header that cannot be.
    #[cold]
    #[inline(never)]
    fn locate_slow(&mut self) -> Result<Found> {
        let ring = &*self.ring;
        loop {
            let off = self.tail & (ring.capacity - 1);
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
            return Ok(Some((off, len)));
        }
    }

    /// Copies the message of the frame at ring offset `off` (published, of
    /// `len` bytes, checked to fit in the ring) into `buf`, frees the frame
    /// and returns the message (cut to `len`, for the reason `try_recv`
    /// gives).
    #[inline(always)]
    fn read(&mut self, off: u64, len: usize) -> &[u8] {
        let ring = &*self.ring;
        self.buf.clear();
        self.buf.reserve(len);
        // SAFETY: the callers checked that the frame [off, off + HEADER +
        // len) lies inside the ring, so the source is inside the region; the
        // destination has room for len bytes (reserved above) and is ours
        // alone. The header was published (Acquire) after the payload was
        // written, and a producer that keeps the protocol does not touch the
        // frame until the tail below moves past it. One that breaks it can
        // change these bytes while they are copied: then `buf` holds a mix
        // of old and new bytes, plain u8 values like any other, and the harm
        // stays in the len bytes copied; nothing outside the ring is read and
        // nothing of ours but `buf` is written.
        unsafe {
            crate::copy::copy(ring.data(off + HEADER), self.buf.as_mut_ptr(), len);
            self.buf.set_len(len);
        }
        self.free(len);
        &self.buf[..len]
    }

    /// Frees the frame of a `len`-byte message at the consumer's position:
    /// the producer may write there again.
    #[inline(always)]
    fn free(&mut self, len: usize) {
        let ring = &*self.ring;
        self.tail += frame_len(len);
        publish(&ring.ctl().tail.0, self.tail, self.light);
        wake(ring, Side::Producer);
        self.empty_polls.reset();
    }

    /// Waits for a published frame until `deadline` (`None`: no limit).
    fn wait(&mut self, deadline: Option<Instant>) -> Result<(u64, usize)> {
        let mut since = Instant::now();
        loop {
            if let Some(found) = self.locate()? {
                return Ok(found);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(Error::Timeout);
            }
            let most = self.ring.sleep_limit();
            let limit = deadline.map_or(most, |d| (d - now).min(most));
            let (ring, tail) = (&*self.ring, self.tail);
            let closed = &ring.ctl().life.0.producer.closed;
            sleep_on(ring, Side::Consumer, Waker::Fenced, limit, || {
                Self::published(ring, tail) || closed.load(Ordering::Acquire) != 0
            });
            if since.elapsed() >= self.ring.sleep_limit() {
                if !self.ring.alive(Side::Producer) {
                    return self.last_look();
                }
                since = Instant::now();
            }
        }
    }

    /// Polls once for a published frame; every so often, when there is
    /// none, checks that the producer still runs.
    #[inline]
    fn poll(&mut self) -> Result<(u64, usize)> {
        match self.locate()? {
            Some(found) => Ok(found),
            None => {
                if self.empty_polls.tick() && !self.ring.alive(Side::Producer) {
                    return self.last_look();
                }
                Err(Error::Empty)
            }
        }
    }

    /// After the producer's process was found gone: a frame it published
    /// before it died, or `Disconnected` (from now on).
    fn last_look(&mut self) -> Result<(u64, usize)> {
        self.gone = true;
        self.locate()?.ok_or(Error::Disconnected)
    }

    /// Waits for the next message and shows it in place, inside the ring:
    /// zero-copy. The message is freed when the [`View`] is dropped; until
    /// then the producer does not write over it (and can fill the rest of
    /// the ring).
    pub fn recv_in_place(&mut self) -> Result<View<'_, B>> {
        let (off, len) = self.wait(None)?;
        Ok(View {
            receiver: self,
            off,
            len,
        })
    }

    /// As [`ShmReceiver::recv_in_place`] if a message is waiting, else
    /// [`Error::Empty`].
    #[inline(always)]
    pub fn try_recv_in_place(&mut self) -> Result<View<'_, B>> {
        let (off, len) = self.poll()?;
        Ok(View {
            receiver: self,
            off,
            len,
        })
    }
}

/// A message shown where the producer wrote it, inside the ring, by
/// [`ShmReceiver::recv_in_place`]; dropping the view frees it.
///
/// It derefs to a `&[u8]`. That is sound for an honest producer, which never
/// writes a published frame before the consumer's position has passed it,
/// and the position moves only when the view is dropped. A producer that
/// breaks the protocol can write the bytes under the view while it is read:
/// then they may change between two reads of one byte (a copy out of the
/// ring, as `recv` makes, would have the same mix of old and new bytes, only
/// frozen); a check made on the view does not hold for a later read of it.
/// Nothing outside the frame's place in the ring, which was checked to lie
/// inside the ring, is ever shown.
pub struct View<'a, B: Backend> {
    receiver: &'a mut ShmReceiver<B>,
    off: u64,
    len: usize,
}

impl<B: Backend> std::ops::Deref for View<'_, B> {
    type Target = [u8];

    #[inline(always)]
    fn deref(&self) -> &[u8] {
        // SAFETY: locate checked that the frame [off, off + HEADER + len)
        // lies inside the ring, which is mapped as long as the receiver,
        // which outlives this view; the header was read with Acquire after
        // the producer published it, so the payload's bytes are visible;
        // the frame stays the consumer's until `free`, which only the
        // view's drop calls. (A dishonest producer: see the type's
        // documentation.)
        unsafe { std::slice::from_raw_parts(self.receiver.ring.data(self.off + HEADER), self.len) }
    }
}

impl<B: Backend> Drop for View<'_, B> {
    #[inline(always)]
    fn drop(&mut self) {
        self.receiver.free(self.len);
    }
}

impl<B: Backend> ipc_core::RecvInPlace for ShmReceiver<B> {
    #[inline]
    fn recv_in_place<T>(&mut self, f: impl FnOnce(&[u8]) -> T) -> Result<T> {
        let view = ShmReceiver::recv_in_place(self)?;
        Ok(f(&view))
    }

    /// Inline down to the view's drop, as `try_recv` is (see
    /// `ShmSender::send_in_place` for what the calls cost).
    #[inline(always)]
    fn try_recv_in_place<T>(&mut self, f: impl FnOnce(&[u8]) -> T) -> Result<T> {
        let view = ShmReceiver::try_recv_in_place(self)?;
        Ok(f(&view))
    }
}

impl<B> ShmReceiver<B> {
    /// See [`ShmSender::set_sleep_limit`](super::ShmSender::set_sleep_limit).
    pub fn set_sleep_limit(&self, limit: Duration) {
        self.ring.set_sleep_limit(limit);
    }
}

impl<B: Backend> ipc_core::Receiver for ShmReceiver<B> {
    fn recv(&mut self) -> Result<&[u8]> {
        let (off, len) = self.wait(None)?;
        Ok(self.read(off, len))
    }

    /// The common case inline and straight: a published frame that fits
    /// in the ring, for a message that fits in the buffer as it is. Anything
    /// else (nothing yet, a wrap marker, a corrupt header, a buffer to
    /// grow) goes through `try_recv_slow`. Every instruction here lies on
    /// the path of a round trip (see `ShmSender`'s `put`).
    ///
    /// The slice returned is cut to `len`, which is in a register, instead
    /// of being the whole buffer: that would reload the buffer's pointer
    /// and length as one 16-byte load just after `set_len` stored the
    /// length, a load the CPU cannot forward from that 8-byte store. It
    /// then waits for the store to reach the cache, about a tenth of an
    /// 8-byte round trip on AMD EPYC (measured).
    #[inline(always)]
    fn try_recv(&mut self) -> Result<&[u8]> {
        let ring = &*self.ring;
        let tail = self.tail;
        let off = tail & (ring.capacity - 1);
        let h = ring.header(off).load(Ordering::Acquire);
        let len = h as u32 as usize;
        if h & !0xffff_ffff == stamp(tail)
            && len <= ring.max
            && len <= self.buf.capacity()
            && off + frame_len(len) <= ring.capacity
        {
            // SAFETY: as in `read`: the frame [off, off + HEADER + len) lies
            // inside the ring (checked just above) and was published
            // (Acquire); the buffer has room for len bytes (its capacity).
            unsafe {
                crate::copy::copy(ring.data(off + HEADER), self.buf.as_mut_ptr(), len);
                self.buf.set_len(len);
            }
            self.free(len);
            return Ok(&self.buf[..len]);
        }
        self.try_recv_slow()
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8]> {
        let (off, len) = self.wait(Some(Instant::now() + timeout))?;
        Ok(self.read(off, len))
    }

    fn max_message(&self) -> usize {
        self.ring.max
    }

    /// A look at the header word at the consumer's position: no copy, no
    /// error built. Every [`LOOKS_PER_POLL`](super::wait::LOOKS_PER_POLL)
    /// looks that find nothing it says `true` all the same, so that a
    /// polling loop's `try_recv` sees a closed producer and counts the
    /// polls that make a liveness check due.
    #[inline]
    fn ready(&mut self) -> bool {
        self.ring.header(self.tail).load(Ordering::Acquire) & !0xffff_ffff == stamp(self.tail)
            || self.empty_polls.look()
    }
}

impl<B> Drop for ShmReceiver<B> {
    fn drop(&mut self) {
        if !self.handed_over {
            close(&self.ring, Side::Consumer);
        }
    }
}
