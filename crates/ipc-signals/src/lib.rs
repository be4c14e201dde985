//! Signals between a producer and a consumer: the oldest way for two
//! processes to talk, shown honestly. Variant `rt` carries the messages
//! themselves in real-time signals, 8 bytes a signal; variant `doorbell`
//! carries them in ipc-shm's ring and uses a signal only to wake a receiver
//! that sleeps, which is what signals are good at.
//!
//! # Hello, world!
//!
//! ```
//! use ipc_core::{Mode, Options, Receiver, Sender, Transport};
//! use ipc_signals::Rt;
//!
//! let (mut tx, mut rx) = Rt::channel(Mode::Thread, &Options::default())?;
//! let consumer = std::thread::spawn(move || rx.recv().map(<[u8]>::to_vec));
//! tx.send(b"task 0")?;
//! assert_eq!(consumer.join().expect("consumer")?, b"task 0");
//! # Ok::<(), ipc_core::Error>(())
//! ```
//!
//! # Semantics
//!
//! **`rt`.** A message of `n` bytes is `1 + ceil(max(n - 4, 0) / 8)`
//! real-time signals of one number, each carrying 8 bytes in `si_value`
//! ([`chunks`] has the format); real-time signals of one number keep their
//! order, so each channel (one direction) takes one number. In process mode
//! the signals go to the peer process through its pidfd
//! (`pidfd_send_signal` with an `SI_QUEUE` siginfo: a pid given to another
//! process later can never receive them; `sigqueue` where pidfds are
//! missing); in thread mode to the receiving thread (`rt_tgsigqueueinfo`),
//! which names itself on its first receive, the sender waiting (up to the
//! connect timeout) for it. The receiver takes them with `sigtimedwait`
//! while they are blocked, so no work happens in a handler. A full queue
//! (`EAGAIN`: every queued signal of a user counts against
//! `RLIMIT_SIGPENDING`) makes the sender wait and retry; nothing is
//! dropped. A receiver accepts only signals from its peer's pid (`si_pid`)
//! and counts the others ([`RtReceiver::foreign_signals`]): this filters
//! accidents, not an attacker, since a process of the same user can forge
//! `si_pid`. A dropped end says goodbye with one more signal; a peer that
//! dies without one is noticed from its pid and start time.
//!
//! **Signal numbers** ([`numbers`]): the data signals run from
//! `SIGRTMIN()` (which leaves out what the C library keeps) to
//! `SIGRTMAX() - 8`, the doorbell's are the top 8. Each channel takes one
//! from a process-wide allocator and gives it back when dropped; when the
//! range is used up, making a channel fails with [`ipc_core::Error::InUse`].
//!
//! # Before anything else: [`init`]
//!
//! A real-time signal that no thread blocks kills the process. So a
//! program that uses process mode calls [`init`] first in `main`, before
//! any thread starts: it blocks the data signals in the calling thread for
//! the life of the process, every thread started later inherits that, and
//! so does every child process (std passes the signal mask on). A signal
//! that arrives after its channel was dropped then stays pending instead of
//! killing the process. A child the parent hands an end to blocks them
//! before it runs any code (a hook between fork and exec). The harness's
//! binaries call it for you (`Transport::before_threads`). Under the test
//! runner, whose threads exist before any test, a test that sends to a
//! process runs in a `harness = false` test binary that calls [`init`]
//! first; thread mode aims at the receiving thread and needs no call.
//!
//! # Limitations
//!
//! Slow on purpose: every 8 bytes is a system call on each side (see the
//! README for the cost per byte). A message is at most 64 KiB
//! ([`rt::MAX_MESSAGE`]). A thread-mode receiver stays on the thread of its
//! first receive. Linux only (pidfds, `rt_tgsigqueueinfo`).

#[cfg(not(target_os = "linux"))]
compile_error!("ipc-signals uses Linux's real-time signals, pidfds and rt_tgsigqueueinfo.");

pub mod chunks;
pub mod doorbell;
pub mod numbers;
pub mod rt;
mod spill;
mod sys;

pub use doorbell::{Doorbell, DoorbellReceiver, DoorbellSender};
pub use rt::{Rt, RtReceiver, RtSender};

/// Blocks the data signals (see [`numbers`]) in the calling thread: call it
/// first in `main`, before any thread starts, so that every thread and
/// every child process inherits the mask. Calling it again does no harm.
pub fn init() -> ipc_core::Result<()> {
    let (low, high) = numbers::data_bounds();
    sys::block(low..=high).map_err(|e| ipc_core::Error::io("block the data signals", e))
}

ipc_core::conformance_tests!(rt_conformance, crate::Rt, Threads);
ipc_core::conformance_tests!(doorbell_conformance, crate::Doorbell, Threads);

#[cfg(test)]
mod tests;
