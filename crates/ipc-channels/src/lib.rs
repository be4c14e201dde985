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
//! channel operation each way); a larger one travels in the same slot as an
//! owned buffer, and the receiver hands the buffers it is done with back for
//! reuse, so a steady exchange allocates nothing. Several producers may share
//! the channel ([`Transport::clone_sender`]): each producer's messages, small
//! or large, arrive in the order it sent them. The receiver keeps the message
//! until its next call. Dropping either end (every sender, or the receiver)
//! is seen by the other as [`ipc_core::Error::Disconnected`].
//!
//! # Limitations
//!
//! Thread mode only: a process cannot reach another's heap (process mode is
//! [`ipc_core::Error::Unsupported`] and names the transports that can), and
//! coroutines sharing one thread cannot block on each other. One consumer.

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use ipc_core::{Error, Limit, Mode, Options, Result, Transport};

/// Messages the channel holds before `send` waits (when the options name no capacity).
pub const DEFAULT_SLOTS: usize = 64;

/// Bytes of one slot of the channel.
pub const SLOT_BYTES: usize = 128;

/// Messages up to this many bytes travel inside the channel's slots.
pub const INLINE: usize = 126;

/// The largest `capacity` (in bytes, [`SLOT_BYTES`] a slot): std's channel
/// allocates all its slots when it is made.
pub const CAPACITY_LIMIT: Limit = Limit {
    bytes: 1 << 30,
    name: "the slots std's channel allocates up front (1 GiB)",
};

/// One slot of the channel: a small message inside it, or a large one's
/// buffer. 128 bytes, one or two cache lines: measured, a slot of 64 or 128
/// bytes moves through the channel faster than one of a size between (see
/// the README).
enum Slot {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Vec<u8>),
}

const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_BYTES);

/// `std::sync::mpsc::sync_channel` between threads.
#[derive(Debug, Clone, Copy)]
pub struct Mpsc;

/// The sending end; [`Transport::clone_sender`] makes more.
#[derive(Debug)]
pub struct MpscSender {
    tx: mpsc::SyncSender<Slot>,
    /// Buffers the receiver is done with, shared by the producers.
    spare: Arc<Mutex<mpsc::Receiver<Vec<u8>>>>,
    max: usize,
}

/// The receiving end.
#[derive(Debug)]
pub struct MpscReceiver {
    rx: mpsc::Receiver<Slot>,
    recycle: mpsc::SyncSender<Vec<u8>>,
    current: Vec<u8>,
    max: usize,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Slot::Inline { len, .. } => write!(f, "Inline({len} bytes)"),
            Slot::Heap(buf) => write!(f, "Heap({} bytes)", buf.len()),
        }
    }
}

impl Transport for Mpsc {
    const NAME: &'static str = "channels";
    const VARIANT: &'static str = "mpsc";
    const MODES: &'static [Mode] = &[Mode::Thread];
    const MULTI_PRODUCER: bool = true;
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
        let slots = match opts.capacity {
            None => DEFAULT_SLOTS,
            Some(bytes) => {
                CAPACITY_LIMIT.check_capacity(bytes)?;
                (bytes / SLOT_BYTES).max(1)
            }
        };
        let (tx, rx) = mpsc::sync_channel(slots);
        // Buffers the receiver is done with travel back for reuse.
        let (recycle, spare) = mpsc::sync_channel(slots + 2);
        let max = opts.max_message;
        Ok((
            MpscSender {
                tx,
                spare: Arc::new(Mutex::new(spare)),
                max,
            },
            MpscReceiver {
                rx,
                recycle,
                current: Vec::new(),
                max,
            },
        ))
    }

    fn capacity_limit() -> Limit {
        CAPACITY_LIMIT
    }

    fn clone_sender(end: &MpscSender) -> Result<MpscSender> {
        Ok(MpscSender {
            tx: end.tx.clone(),
            spare: Arc::clone(&end.spare),
            max: end.max,
        })
    }
}

impl MpscSender {
    /// The slot for `msg`: inside it, or in a buffer (a spare one if the
    /// receiver gave one back and no other producer holds the spares).
    #[inline]
    fn slot(&mut self, msg: &[u8]) -> Result<Slot> {
        if msg.len() > self.max {
            return Err(Error::too_large(msg.len(), self.max));
        }
        if msg.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..msg.len()].copy_from_slice(msg);
            return Ok(Slot::Inline {
                len: msg.len() as u8,
                bytes,
            });
        }
        let spare = self.spare.try_lock().ok().and_then(|s| s.try_recv().ok());
        let mut buf = spare.unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(msg);
        Ok(Slot::Heap(buf))
    }
}

impl ipc_core::Sender for MpscSender {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let slot = self.slot(msg)?;
        self.tx.send(slot).map_err(|_| Error::Disconnected)
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
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
    /// back to the producers for reuse.
    #[inline]
    fn keep(&mut self, slot: Slot) -> &[u8] {
        match slot {
            Slot::Inline { len, bytes } => {
                self.current.clear();
                self.current.extend_from_slice(&bytes[..len as usize]);
            }
            Slot::Heap(buf) => {
                let old = std::mem::replace(&mut self.current, buf);
                if old.capacity() > INLINE {
                    let _ = self.recycle.try_send(old);
                }
            }
        }
        &self.current
    }
}

impl ipc_core::Receiver for MpscReceiver {
    fn recv(&mut self) -> Result<&[u8]> {
        let slot = self.rx.recv().map_err(|_| Error::Disconnected)?;
        Ok(self.keep(slot))
    }

    fn try_recv(&mut self) -> Result<&[u8]> {
        let slot = self.rx.try_recv().map_err(|e| match e {
            mpsc::TryRecvError::Empty => Error::Empty,
            mpsc::TryRecvError::Disconnected => Error::Disconnected,
        })?;
        Ok(self.keep(slot))
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8]> {
        let slot = self.rx.recv_timeout(timeout).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => Error::Timeout,
            mpsc::RecvTimeoutError::Disconnected => Error::Disconnected,
        })?;
        Ok(self.keep(slot))
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
        assert!(
            tx.spare.lock().expect("spares").try_recv().is_err(),
            "small messages travel inline"
        );
        for i in 0..100u8 {
            let msg = vec![i; INLINE + 1 + i as usize];
            tx.send(&msg).expect("send");
            assert_eq!(rx.recv().expect("recv"), &msg[..]);
        }
        assert!(
            tx.spare.lock().expect("spares").try_recv().is_ok(),
            "a large buffer came back for reuse"
        );
    }

    #[test]
    fn try_send_of_a_large_message_into_a_full_channel_does_not_wait() {
        let opts = Options::default().capacity(SLOT_BYTES);
        let (mut tx, mut rx) = Mpsc::channel(Mode::Thread, &opts).expect("channel");
        tx.try_send(&[1; 1000]).expect("room for one");
        // Before, a large message went on a side channel with a blocking
        // send: this would wait for the receiver.
        assert!(matches!(tx.try_send(&[2; 1000]), Err(Error::Full)));
        assert_eq!(rx.recv().expect("recv"), [1; 1000]);
        tx.try_send(&[3; 1000]).expect("room again");
        assert_eq!(rx.recv().expect("recv"), [3; 1000]);
    }

    #[test]
    fn four_producers_on_threads_each_keep_their_order_small_and_large() {
        let (tx, mut rx) = Mpsc::channel(Mode::Thread, &Options::default()).expect("channel");
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let mut tx = Mpsc::clone_sender(&tx).expect("clone");
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        // Every third message goes in a buffer, the rest inline.
                        let mut msg = vec![p as u8; if i % 3 == 0 { 300 } else { 16 }];
                        msg[..8].copy_from_slice(&(p << 32 | i).to_le_bytes());
                        tx.send(&msg).expect("send");
                    }
                })
            })
            .collect();
        drop(tx);
        let mut next = [0u64; 4];
        while let Ok(msg) = rx.recv() {
            let stamp = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
            let (p, i) = ((stamp >> 32) as usize, stamp & 0xffff_ffff);
            assert_eq!(i, next[p], "producer {p} out of order");
            assert!(msg[8..].iter().all(|&b| b == p as u8), "corrupt");
            next[p] += 1;
        }
        assert_eq!(next, [20_000; 4], "every message exactly once");
        for p in producers {
            p.join().expect("producer");
        }
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
