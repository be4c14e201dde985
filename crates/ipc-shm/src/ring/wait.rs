//! Waiting on the ring: a wait word per direction in the region, a [`Bell`]
//! that puts a side to sleep and rings it awake (a futex in the region by
//! default, [`Futex`]; the signals transport rings with a signal), and the
//! liveness checks that bound every wait.
//!
//! A waiter announces itself, re-checks, and sleeps; the other side pays a
//! load of that flag per message and rings the bell only when someone
//! sleeps. The
//! store-then-load on each side needs a full barrier between them: the
//! producer's is the locked swap that publishes a header (the fastest
//! publication measured, see the README); for the consumer's position, the
//! sleeping producer pays it for both with `membarrier(2)` (see
//! `sys::light_fences`). Sleeps are bounded, so a peer that died without a
//! word (SIGKILL) is noticed within [`LIVENESS_CHECK`]; a side that polls
//! without sleeping (`try_recv`, `try_send`) checks every
//! [`POLLS_PER_LIVENESS_CHECK`] polls that found nothing to do (for the
//! consumer, polls and the looks of `Receiver::ready` together).

use std::sync::atomic::{compiler_fence, fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use ipc_core::liveness::ProcessId;

use super::{Ring, Side};
use crate::sys::{futex_wait, futex_wake_all, heavy_fence};

/// How one side of a ring sleeps, and how the other side wakes it.
///
/// The ring announces a sleep in the region before it calls
/// [`Bell::sleep`] and re-checks what it waits for after, and it rings only
/// a side that announced it sleeps; sleeps are bounded, so a bell that
/// loses a ring costs latency, never a message. The futex in the region
/// ([`Futex`]) is the default.
pub trait Bell: Send + Sync + 'static {
    /// Makes ready, in this process, whatever `side` needs to sleep on and
    /// be rung (a signal handler), before that side can announce a sleep.
    /// Called when an end of the ring is made or opened here.
    fn prepare(&self, side: Side) -> ipc_core::Result<()> {
        let _ = side;
        Ok(())
    }

    /// Sleeps at most `limit`, until rung (or earlier: the caller re-checks).
    /// `futex` is `side`'s futex word in the region and `seq` its value read
    /// before the sleep was announced; `peer` is the process holding the
    /// other end, the one that rings.
    fn sleep(
        &self,
        side: Side,
        futex: &AtomicU32,
        seq: u32,
        limit: Duration,
        peer: Option<ProcessId>,
    );

    /// Rings `side`, which announced that it sleeps; `holder` is the process
    /// holding that end.
    fn ring(&self, side: Side, futex: &AtomicU32, holder: Option<ProcessId>);
}

/// The default bell: a futex word in the region (the shared, not private,
/// futex operations, keyed by the physical page), bumped and woken.
#[derive(Debug, Clone, Copy, Default)]
pub struct Futex;

impl Bell for Futex {
    fn sleep(&self, _: Side, futex: &AtomicU32, seq: u32, limit: Duration, _: Option<ProcessId>) {
        futex_wait(futex, seq, limit);
    }

    fn ring(&self, _: Side, futex: &AtomicU32, _: Option<ProcessId>) {
        futex.fetch_add(1, Ordering::Release);
        futex_wake_all(futex);
    }
}

/// How often a waiting side checks that its peer process still runs.
pub const LIVENESS_CHECK: Duration = Duration::from_millis(50);

/// Polls that found nothing to do (an empty ring for `try_recv`, a full one
/// for `try_send`) between two checks that the peer still runs.
pub(crate) const POLLS_PER_LIVENESS_CHECK: u32 = 1 << 16;

/// Looks at the header alone (`Receiver::ready`) between two full polls,
/// which see a closed producer: a close is noticed within this many.
pub(crate) const LOOKS_PER_POLL: u32 = 256;

#[repr(C)]
pub(crate) struct WaitWord {
    /// Non-zero while the owner of this word sleeps (or is about to).
    waiting: AtomicU32,
    /// The futex: bumped by the other side before a wake.
    futex: AtomicU32,
}

impl WaitWord {
    /// Writes both words as a peer that breaks the protocol could (tests).
    #[cfg(test)]
    pub(crate) fn forge(&self, waiting: u32, futex: u32) {
        self.waiting.store(waiting, Ordering::Relaxed);
        self.futex.store(futex, Ordering::Relaxed);
    }
}

/// How the side that wakes a sleeper orders its publication before its look
/// at the sleep flag, and so which barrier the sleeper needs.
#[derive(Clone, Copy)]
pub(crate) enum Waker {
    /// With a full barrier (the producer's locked swap): one here pairs with it.
    Fenced,
    /// With `publish`: perhaps only a compiler fence, so the sleeper pays
    /// the barrier for both sides.
    Light,
}

/// Announces a sleep of `side`, re-checks `ready`, and sleeps at most `limit`.
pub(crate) fn sleep_on(
    ring: &Ring,
    side: Side,
    waker: Waker,
    limit: Duration,
    ready: impl Fn() -> bool,
) {
    let word = ring.wait_word(side);
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
        let peer = ring.end(side.other()).owner.holder();
        ring.bell.sleep(side, &word.futex, seq, limit, peer);
    }
    word.waiting.store(0, Ordering::Relaxed);
}

/// Stores `value` into `word` (the consumer's position), ordered before the
/// caller's next look at a sleep flag: with a compiler fence when the
/// sleeper's `heavy_fence` covers this process, else with a sequentially
/// consistent swap (a locked instruction on x86).
#[inline]
pub(crate) fn publish(word: &AtomicU64, value: u64, light: bool) {
    if light {
        word.store(value, Ordering::Release);
        compiler_fence(Ordering::SeqCst);
    } else {
        word.swap(value, Ordering::SeqCst);
    }
}

/// Marks the `side` end closed and wakes the other side if it sleeps: the
/// full fence orders the mark before the look at its sleep flag, as a
/// sleeper re-checks the mark after raising the flag.
pub(crate) fn close(ring: &Ring, side: Side) {
    ring.end(side).closed.store(1, Ordering::Release);
    fence(Ordering::SeqCst);
    wake(ring, side.other());
}

/// Rings `side` awake if it sleeps.
#[inline]
pub(crate) fn wake(ring: &Ring, side: Side) {
    let word = ring.wait_word(side);
    if word.waiting.load(Ordering::SeqCst) != 0 {
        ring_bell(ring, side, word);
    }
}

#[cold]
#[inline(never)]
fn ring_bell(ring: &Ring, side: Side, word: &WaitWord) {
    ring.bell
        .ring(side, &word.futex, ring.end(side).owner.holder());
}

/// Counts polls that found nothing to do, and says when the next one
/// should check that the peer still runs.
#[derive(Debug, Default)]
pub(crate) struct IdlePolls(u32);

impl IdlePolls {
    /// One more idle poll; true when it is time for a liveness check.
    #[inline]
    pub(crate) fn tick(&mut self) -> bool {
        self.0 += 1;
        if self.0 >= POLLS_PER_LIVENESS_CHECK {
            self.0 = 0;
            true
        } else {
            false
        }
    }

    /// One more idle poll, seen by a look at the header alone
    /// (`Receiver::ready`): true every [`LOOKS_PER_POLL`] of them, when
    /// `try_recv` should run its own checks (the producer's closed flag;
    /// its count then says when the liveness check is due).
    #[inline]
    pub(crate) fn look(&mut self) -> bool {
        self.0 = self.0.wrapping_add(1);
        self.0 % LOOKS_PER_POLL == 0
    }

    /// Work was done: start counting again.
    #[inline]
    pub(crate) fn reset(&mut self) {
        self.0 = 0;
    }
}
