//! The ways a receiver waits, implemented once for every transport over
//! `recv`, `try_recv` and the `ready` hint.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipc_core::{Error, Receiver, RecvInPlace};
use serde::{Deserialize, Serialize};

/// How the receiving side waits for the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    /// Sleep in the kernel (`recv`): the plain mechanism, no CPU while idle.
    Block,
    /// Poll in a loop (`try_recv` whenever `ready` says a message may be
    /// there): lowest latency, burns a CPU.
    Spin,
    /// Poll for a short bounded time, then block: low latency while messages
    /// flow, no CPU burnt while idle.
    Hybrid,
    /// The coroutine hand-off: the message is already there when asked for.
    Resume,
}

/// How long `hybrid` polls before it blocks, by default: longer than a round
/// trip takes while both sides are awake, shorter than the wake-up of a
/// halted virtual CPU (the README has both figures), so a running exchange
/// stays awake and a quiet channel burns no CPU.
pub const HYBRID_SPIN: Duration = Duration::from_micros(50);

/// The budget `hybrid` polls for in this process, in nanoseconds.
static SPIN_BUDGET_NS: AtomicU64 = AtomicU64::new(HYBRID_SPIN.as_nanos() as u64);

/// Whether polling yields the CPU instead of pausing, in this process.
static SPIN_YIELDS: AtomicBool = AtomicBool::new(false);

/// Sets, for this process, how long `hybrid` polls before it blocks (the
/// command line's `--spin-us`) and whether polling yields the CPU between
/// polls: when both sides are pinned to one CPU, a side that only paused
/// would hold the CPU its peer needs until the scheduler's tick, so it yields
/// instead (the peer process gets the same settings).
pub fn set_spin(budget: Duration, yields: bool) {
    SPIN_BUDGET_NS.store(
        budget.as_nanos().min(u64::MAX as u128) as u64,
        Ordering::Relaxed,
    );
    SPIN_YIELDS.store(yields, Ordering::Relaxed);
}

/// Waits a moment between two polls: a pause, or a yield of the CPU.
#[inline]
fn relax() {
    if SPIN_YIELDS.load(Ordering::Relaxed) {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// How long `hybrid` polls before it blocks, in this process.
fn spin_budget() -> Duration {
    Duration::from_nanos(SPIN_BUDGET_NS.load(Ordering::Relaxed))
}

impl Wait {
    /// The name on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Wait::Block => "block",
            Wait::Spin => "spin",
            Wait::Hybrid => "hybrid",
            Wait::Resume => "resume",
        }
    }

    /// Waits for the next message on `rx` and hands it to `f`.
    #[inline(always)]
    pub fn recv_with<R: Receiver + ?Sized, T>(
        self,
        rx: &mut R,
        mut f: impl FnMut(&[u8]) -> T,
    ) -> Result<T, Error> {
        self.wait_for(
            rx,
            #[inline(always)]
            |rx, block| {
                if block {
                    rx.recv().map(&mut f)
                } else {
                    rx.try_recv().map(&mut f)
                }
            },
        )
    }

    /// Waits for the next message on `rx` and hands `f` a view of it in
    /// place (zero-copy), which is freed when `f` returns.
    #[inline]
    pub fn recv_in_place_with<R: RecvInPlace + ?Sized, T>(
        self,
        rx: &mut R,
        mut f: impl FnMut(&[u8]) -> T,
    ) -> Result<T, Error> {
        self.wait_for(
            rx,
            #[inline(always)]
            |rx, block| {
                if block {
                    rx.recv_in_place(&mut f)
                } else {
                    rx.try_recv_in_place(&mut f)
                }
            },
        )
    }

    /// The wait itself, over `take`: `take(rx, true)` waits for a message
    /// in the kernel, `take(rx, false)` returns [`Error::Empty`] when there
    /// is none. A polling wait asks `take` only when the receiver says it
    /// is [`ready`](Receiver::ready): between two polls the loop is then a
    /// look at one word, so it sees a message as soon as it lands.
    #[inline(always)]
    fn wait_for<R: Receiver + ?Sized, T>(
        self,
        rx: &mut R,
        mut take: impl FnMut(&mut R, bool) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self {
            Wait::Block => take(rx, true),
            Wait::Resume => match take(rx, false) {
                Err(Error::Empty) => Err(Error::WouldDeadlock),
                other => other,
            },
            Wait::Spin => loop {
                if rx.ready() {
                    match take(rx, false) {
                        Err(Error::Empty) => {}
                        other => return other,
                    }
                }
                relax();
            },
            Wait::Hybrid => {
                let budget = spin_budget();
                let start = Instant::now();
                let mut polls = 0u32;
                loop {
                    if rx.ready() {
                        match take(rx, false) {
                            Err(Error::Empty) => {}
                            other => return other,
                        }
                    }
                    polls = polls.wrapping_add(1);
                    // Read the clock only every 16 polls: it costs more than a poll.
                    if polls % 16 == 0 && start.elapsed() >= budget {
                        return take(rx, true);
                    }
                    relax();
                }
            }
        }
    }
}
