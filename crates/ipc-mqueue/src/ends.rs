//! The sending and receiving ends, and how each knows that the other is
//! gone.
//!
//! Each channel has a **presence link** beside its queue: a Unix socket
//! pair, one side held by each end. Nothing is ever written on it; when an
//! end is dropped, or its process dies, the kernel closes its side and the
//! other reads as hung up. A wait looks at it between slices of
//! [`LIVENESS_CHECK`], so a death or a drop wakes the other side within
//! one, in this process or another. Where the other end's process is known
//! (the creator, or the child named by `set_peer`), the core's liveness
//! service is asked too: a copy of the link inherited by a stray `fork`
//! could otherwise keep it open.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use ipc_core::liveness::ProcessId;
use ipc_core::{Error, Result};

use crate::queue::{Attempt, Named, Queue};

/// The priority every message goes at; a message at another one is not
/// this transport's.
pub(crate) const DATA: u32 = 1;

/// How long a wait sleeps, at most, between two looks at the other side's
/// process.
pub const LIVENESS_CHECK: Duration = Duration::from_millis(50);

/// What both ends hold.
#[derive(Debug)]
pub(crate) struct End {
    pub queue: Queue,
    /// This end's side of the presence link.
    pub presence: OwnedFd,
    /// The other end's process, when known.
    pub peer: Option<ProcessId>,
    /// The queue's name, held by the ends in its creating process (the
    /// last one to go unlinks it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub named: Option<std::sync::Arc<Named>>,
    /// Set once the other side is known to be gone.
    pub gone: bool,
    /// When the other side was last looked at.
    pub last_look: Instant,
}

impl End {
    /// A new end.
    pub(crate) fn new(
        queue: Queue,
        presence: OwnedFd,
        peer: Option<ProcessId>,
        named: Option<std::sync::Arc<Named>>,
    ) -> End {
        End {
            queue,
            presence,
            peer,
            named,
            gone: false,
            last_look: Instant::now(),
        }
    }

    /// Whether the other end is gone: its side of the link hung up, or its
    /// process is no more.
    fn other_gone(&self) -> bool {
        let hung_up = ipc_core::fdstream::wait_ready(
            self.presence.as_fd(),
            nix::poll::PollFlags::POLLIN,
            Some(Duration::ZERO),
        )
        .unwrap_or(true);
        hung_up || self.peer.is_some_and(|p| !p.is_running())
    }

    /// Looks at the other side if it is time to (or `now`), remembering
    /// that it is gone.
    fn look(&mut self, now: bool) -> bool {
        if !self.gone && (now || self.last_look.elapsed() >= LIVENESS_CHECK) {
            self.last_look = Instant::now();
            self.gone = self.other_gone();
        }
        self.gone
    }

    /// Sleeps until the queue is ready (`readable`: a message; else room)
    /// or `slice` passes. The presence link is looked at between slices,
    /// not polled with the queue, which keeps every wait to one descriptor.
    fn wait(&self, readable: bool, slice: Duration) -> Result<()> {
        self.queue.wait(readable, slice)
    }
}

/// How long the next wait may sleep: `None` when the caller polls
/// (`deadline` `None`), at most a liveness slice, `Timeout` past the
/// deadline.
fn next_slice(deadline: Option<Option<Instant>>) -> Result<Option<Duration>> {
    match deadline {
        None => Ok(None),
        Some(None) => Ok(Some(LIVENESS_CHECK)),
        Some(Some(d)) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout);
            }
            Ok(Some(left.min(LIVENESS_CHECK)))
        }
    }
}

/// The sending end of a queue.
#[derive(Debug)]
pub struct MqSender {
    pub(crate) end: End,
    pub(crate) limit: &'static str,
}

/// The receiving end of a queue.
#[derive(Debug)]
pub struct MqReceiver {
    pub(crate) end: End,
    pub(crate) buf: Vec<u8>,
}

impl MqSender {
    fn put(&mut self, msg: &[u8], deadline: Option<Option<Instant>>) -> Result<()> {
        let max = self.end.queue.msgsize;
        if msg.len() > max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max,
                limit: self.limit,
            });
        }
        if self.end.look(false) {
            return Err(Error::Disconnected);
        }
        loop {
            if let Attempt::Done(()) = self.end.queue.try_send(msg, DATA)? {
                return Ok(());
            }
            // Full: is anyone still taking?
            if self.end.look(true) {
                return Err(Error::Disconnected);
            }
            let Some(slice) = next_slice(deadline)? else {
                return Err(Error::Full);
            };
            self.end.wait(false, slice)?;
        }
    }
}

impl MqReceiver {
    /// One receive now: the message's length, or `None` for an empty queue.
    fn receive_now(&mut self) -> Result<Option<usize>> {
        match self.end.queue.try_recv(&mut self.buf)? {
            Attempt::Done((len, DATA)) => Ok(Some(len)),
            Attempt::Done((len, prio)) => Err(Error::Corrupt(format!(
                "a message of {len} bytes at priority {prio}, which no sender of this transport uses"
            ))),
            Attempt::WouldBlock => Ok(None),
        }
    }

    /// Takes the next message; `None` when `deadline` is `None` (poll) and
    /// there is none. A sender that is gone with the queue empty is
    /// `Disconnected`: what it sent before it went is all taken first.
    fn take(&mut self, deadline: Option<Option<Instant>>) -> Result<Option<usize>> {
        // A plain receive waits first: in a ping-pong the answer has not
        // come yet, and a failed receive would cost a system call.
        let mut ready = !matches!(deadline, Some(None));
        loop {
            if ready {
                if let Some(len) = self.receive_now()? {
                    return Ok(Some(len));
                }
                if self.end.look(deadline.is_some()) {
                    // Gone; but a message may have come just before.
                    return match self.receive_now()? {
                        Some(len) => Ok(Some(len)),
                        None => Err(Error::Disconnected),
                    };
                }
            }
            let Some(slice) = next_slice(deadline)? else {
                return Ok(None);
            };
            self.end.wait(true, slice)?;
            ready = true;
        }
    }

    fn message(&self, len: Option<usize>) -> &[u8] {
        &self.buf[..len.unwrap_or(0)]
    }
}

impl ipc_core::Sender for MqSender {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.put(msg, Some(None))
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.put(msg, None)
    }

    fn max_message(&self) -> usize {
        self.end.queue.msgsize
    }
}

impl ipc_core::Receiver for MqReceiver {
    fn recv(&mut self) -> Result<&[u8]> {
        let len = self.take(Some(None))?;
        Ok(self.message(len))
    }

    fn try_recv(&mut self) -> Result<&[u8]> {
        match self.take(None)? {
            Some(len) => Ok(self.message(Some(len))),
            None => Err(Error::Empty),
        }
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8]> {
        let len = self.take(Some(Some(Instant::now() + timeout)))?;
        Ok(self.message(len))
    }

    fn max_message(&self) -> usize {
        self.end.queue.msgsize
    }
}
