//! Waiting on the ring: a futex word per direction in the region (shared
//! futex operations), and the liveness checks that bound every wait.
//!
//! A waiter announces itself, re-checks, and sleeps; the other side pays a
//! load of that flag per message and a wake only when someone sleeps. The
//! store-then-load on each side needs a full barrier between them: the
//! producer's is the locked swap that publishes a header (the fastest
//! publication measured, see the README); for the consumer's position, the
//! sleeping producer pays it for both with `membarrier(2)` (see
//! `sys::light_fences`). Sleeps are bounded, so a peer that died without a
//! word (SIGKILL) is noticed within [`LIVENESS_CHECK`]; a side that polls
//! without sleeping (`try_recv`, `try_send`) checks every
//! [`POLLS_PER_LIVENESS_CHECK`] polls that found nothing to do.

use std::sync::atomic::{compiler_fence, fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::sys::{futex_wait, futex_wake_all, heavy_fence};

/// How often a waiting side checks that its peer process still runs.
pub const LIVENESS_CHECK: Duration = Duration::from_millis(50);

/// Polls that found nothing to do (an empty ring for `try_recv`, a full one
/// for `try_send`) between two checks that the peer still runs.
pub(crate) const POLLS_PER_LIVENESS_CHECK: u32 = 1 << 16;

#[repr(C)]
pub(crate) struct WaitWord {
    /// Non-zero while the owner of this word sleeps (or is about to).
    waiting: AtomicU32,
    /// The futex: bumped by the other side before a wake.
    futex: AtomicU32,
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

/// Announces a sleep on `word`, re-checks `ready`, and sleeps at most `limit`.
pub(crate) fn sleep_on(word: &WaitWord, waker: Waker, limit: Duration, ready: impl Fn() -> bool) {
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
pub(crate) fn publish(word: &AtomicU64, value: u64, light: bool) {
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
pub(crate) fn close(closed: &AtomicU32, peer: &WaitWord) {
    closed.store(1, Ordering::Release);
    fence(Ordering::SeqCst);
    wake(peer);
}

/// Wakes the owner of `word` if it sleeps.
#[inline]
pub(crate) fn wake(word: &WaitWord) {
    if word.waiting.load(Ordering::SeqCst) != 0 {
        word.futex.fetch_add(1, Ordering::Release);
        futex_wake_all(&word.futex);
    }
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

    /// Work was done: start counting again.
    #[inline]
    pub(crate) fn reset(&mut self) {
        self.0 = 0;
    }
}
