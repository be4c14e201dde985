//! The sending and receiving ends, and how each knows that the other is
//! gone: a close notice in the queue, a flag between ends of one process,
//! or the other process's death (the core's liveness service).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipc_core::liveness::{PeerProcess, ProcessId};
use ipc_core::{Error, Result};

use crate::queue::{Attempt, Named, Queue};

/// The priority of data; the close notice has a lower one, so that it is
/// received only after every message sent before it.
pub(crate) const DATA: u32 = 1;
/// The priority of the close notice (an empty message).
pub(crate) const CLOSE: u32 = 0;

/// How long a wait sleeps between two looks at the other side.
pub const LIVENESS_CHECK: Duration = Duration::from_millis(50);

/// How long a dropped sender waits for room for its close notice.
const LINGER: Duration = Duration::from_secs(2);

/// What two ends made in one process share.
#[derive(Debug, Default)]
pub(crate) struct Pair {
    sender_gone: AtomicBool,
    receiver_gone: AtomicBool,
    /// An end was handed to another process: from then on that process's
    /// life says whether it is there.
    sender_away: AtomicBool,
    receiver_away: AtomicBool,
}

impl Pair {
    /// One of the two ends went to another process.
    pub(crate) fn mark_away(&self, sender: bool) {
        let flag = if sender {
            &self.sender_away
        } else {
            &self.receiver_away
        };
        flag.store(true, Ordering::Release);
    }
}

/// Where the other end is.
#[derive(Debug)]
pub(crate) enum Other {
    /// In this process (the flags say whether it is gone), or handed to a
    /// child whose identity arrives with `set_peer`.
    Here(Arc<Pair>, Mutex<Option<PeerProcess>>),
    /// In the process that created the channel, which handed this end over.
    Creator(ProcessId),
}

/// What both ends hold.
#[derive(Debug)]
pub(crate) struct End {
    pub queue: Queue,
    pub other: Other,
    /// The queue's name, held by the ends in its creating process.
    pub _named: Option<Arc<Named>>,
    /// Set once the other side is known to be gone.
    pub gone: bool,
    /// When the other side was last looked at.
    pub last_look: Instant,
    /// Handed over: nothing to say on drop.
    pub handed_over: bool,
}

impl End {
    /// Whether the other end is gone: `sender` says which end this is.
    fn other_gone(&self, sender: bool) -> bool {
        match &self.other {
            Other::Here(pair, peer) => {
                let (gone, away) = if sender {
                    (&pair.receiver_gone, &pair.receiver_away)
                } else {
                    (&pair.sender_gone, &pair.sender_away)
                };
                if gone.load(Ordering::Acquire) {
                    return true;
                }
                away.load(Ordering::Acquire)
                    && peer
                        .lock()
                        .ok()
                        .and_then(|p| p.as_ref().map(|p| !p.is_running()))
                        .unwrap_or(false)
            }
            Other::Creator(id) => !id.is_running(),
        }
    }

    /// Looks at the other side if it is time to (or `now`), remembering a
    /// death.
    fn look(&mut self, sender: bool, now: bool) -> bool {
        if !self.gone && (now || self.last_look.elapsed() >= LIVENESS_CHECK) {
            self.last_look = Instant::now();
            self.gone = self.other_gone(sender);
        }
        self.gone
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
    pub(crate) len: usize,
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
        if self.end.look(true, false) {
            return Err(Error::Disconnected);
        }
        loop {
            if let Attempt::Done(()) = self.end.queue.try_send(msg, DATA)? {
                return Ok(());
            }
            // Full: is anyone still taking?
            if self.end.look(true, true) {
                return Err(Error::Disconnected);
            }
            let Some(slice) = next_slice(deadline)? else {
                return Err(Error::Full);
            };
            self.end.queue.wait(false, slice)?;
        }
    }

    /// The largest message (the queue's `mq_msgsize`).
    pub fn max_message(&self) -> usize {
        self.end.queue.msgsize
    }
}

impl MqReceiver {
    /// Takes the next data message; `None` when `deadline` is `None` (poll)
    /// and there is none. The close notice, or a sender that is gone with
    /// the queue empty, is `Disconnected`.
    fn take(&mut self, deadline: Option<Option<Instant>>) -> Result<Option<usize>> {
        if self.end.gone {
            return Err(Error::Disconnected);
        }
        // Waiting first when the sender has had no time to answer saves a
        // failed receive; polling tries at once.
        let mut ready = deadline.is_none();
        loop {
            if ready {
                match self.end.queue.try_recv(&mut self.buf)? {
                    Attempt::Done((len, DATA)) => return Ok(Some(len)),
                    Attempt::Done((_, CLOSE)) => {
                        self.end.gone = true;
                        return Err(Error::Disconnected);
                    }
                    Attempt::Done((len, prio)) => {
                        return Err(Error::Corrupt(format!(
                            "a message of {len} bytes at priority {prio}, which no sender of this transport uses"
                        )))
                    }
                    Attempt::WouldBlock => {}
                }
                if self.end.look(false, deadline.is_some()) {
                    // The sender is gone; what it sent before is all there.
                    if let Attempt::Done((len, DATA)) = self.end.queue.try_recv(&mut self.buf)? {
                        self.end.gone = false;
                        return Ok(Some(len));
                    }
                    return Err(Error::Disconnected);
                }
            }
            let Some(slice) = next_slice(deadline)? else {
                return Ok(None);
            };
            // Ready or not (a slice that ran out), look again: the
            // receive, then the sender.
            self.end.queue.wait(true, slice)?;
            ready = true;
        }
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
        let len = self.take(Some(None))?.unwrap_or(0);
        self.len = len;
        Ok(&self.buf[..len])
    }

    fn try_recv(&mut self) -> Result<&[u8]> {
        match self.take(None)? {
            Some(len) => {
                self.len = len;
                Ok(&self.buf[..len])
            }
            None => Err(Error::Empty),
        }
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8]> {
        let len = self
            .take(Some(Some(Instant::now() + timeout)))?
            .unwrap_or(0);
        self.len = len;
        Ok(&self.buf[..len])
    }

    fn max_message(&self) -> usize {
        self.end.queue.msgsize
    }
}

impl Drop for MqSender {
    fn drop(&mut self) {
        if self.end.handed_over {
            return;
        }
        if let Other::Here(pair, _) = &self.end.other {
            pair.sender_gone.store(true, Ordering::Release);
        }
        // The close notice, after everything sent: the receiver then knows
        // the end from an empty message. Given up when nobody takes.
        let until = Instant::now() + LINGER;
        while !self.end.gone {
            match self.end.queue.try_send(&[], CLOSE) {
                Ok(Attempt::WouldBlock) => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() || self.end.look(true, true) {
                        break;
                    }
                    let _ = self.end.queue.wait(false, left.min(LIVENESS_CHECK));
                }
                _ => break,
            }
        }
    }
}

impl Drop for MqReceiver {
    fn drop(&mut self) {
        if self.end.handed_over {
            return;
        }
        if let Other::Here(pair, _) = &self.end.other {
            pair.receiver_gone.store(true, Ordering::Release);
        }
    }
}
