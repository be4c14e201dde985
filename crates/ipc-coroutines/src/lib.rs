//! Two coroutines on one thread: the consumer is an `async` state machine,
//! polled by hand with no runtime, that the producer's `send` resumes until it
//! waits for the next message: the shape of a Python generator driven by
//! `send()`. No kernel, no lock, no other thread: this row of the comparison
//! is the cost of a switch and a copy.
//!
//! # Hello, world!
//!
//! ```
//! use ipc_core::Sender;
//! use ipc_coroutines::coroutine;
//!
//! // The consumer: runs until its first `next().await`, then waits there.
//! let mut producer = coroutine(|mut rx| async move {
//!     while let Ok(task) = rx.next().await {
//!         println!("consumer: got {}", String::from_utf8_lossy(task));
//!     }
//! });
//! for n in 0..3 {
//!     // Each send resumes the consumer, which handles the task and yields back.
//!     producer.send(format!("task {n}").as_bytes())?;
//! }
//! # Ok::<(), ipc_core::Error>(())
//! ```
//!
//! # Semantics
//!
//! A channel holds one message. `send` puts the message in the slot and, when
//! a consumer coroutine is attached ([`coroutine`], or the trait's
//! `spawn_consumer`), polls it until it waits again, so the message has been
//! handled when `send` returns. Without a consumer, the message waits in the
//! slot for a `recv`/`try_recv`; a second `send` then finds the channel full.
//! A blocking `recv` on an empty channel would never return (nothing else runs
//! on this thread), so it returns [`ipc_core::Error::WouldDeadlock`] instead
//! of hanging, and so does `recv_timeout`.
//!
//! # Limitations
//!
//! Coroutine mode only, and the ends are not `Send`: they share the slot
//! through an `Rc`. Threads and processes are refused with
//! [`ipc_core::Error::Unsupported`].

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ipc_core::{Error, Handler, Mode, Options, Result, Transport};

/// The coroutine transport.
#[derive(Debug, Clone, Copy)]
pub struct Coroutine;

/// The one-message slot both ends share.
#[derive(Debug)]
struct Slot {
    buf: Vec<u8>,
    full: bool,
    sender_alive: bool,
    receiver_alive: bool,
}

/// A consumer coroutine, resumed by the sender.
type Body = Pin<Box<dyn Future<Output = ()>>>;

/// The producer's end: `send` fills the slot and resumes the consumer.
pub struct CoSender {
    slot: Rc<RefCell<Slot>>,
    consumer: Option<Body>,
    max: usize,
}

/// The consumer's end: `next().await` inside a coroutine, or `try_recv` outside.
#[derive(Debug)]
pub struct CoReceiver {
    slot: Rc<RefCell<Slot>>,
    current: Vec<u8>,
    max: usize,
}

impl std::fmt::Debug for CoSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoSender")
            .field("consumer", &self.consumer.is_some())
            .field("max", &self.max)
            .finish()
    }
}

/// A fresh channel of messages up to `max` bytes.
pub fn channel(max: usize) -> (CoSender, CoReceiver) {
    let slot = Rc::new(RefCell::new(Slot {
        buf: Vec::new(),
        full: false,
        sender_alive: true,
        receiver_alive: true,
    }));
    (
        CoSender {
            slot: Rc::clone(&slot),
            consumer: None,
            max,
        },
        CoReceiver {
            slot,
            current: Vec::new(),
            max,
        },
    )
}

/// Starts `body` as the consumer of a fresh channel (messages up to 1 MiB):
/// it runs until its first `next().await`; every `send` on the returned
/// sender resumes it until it waits again.
pub fn coroutine<F, Fut>(body: F) -> CoSender
where
    F: FnOnce(CoReceiver) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let (mut tx, rx) = channel(Options::default().max_message);
    tx.attach(Box::pin(body(rx)));
    tx
}

impl CoSender {
    /// Makes `body` this channel's consumer and runs it to its first wait.
    pub fn attach(&mut self, body: Body) {
        self.consumer = Some(body);
        self.resume();
    }

    /// Polls the consumer until it waits again (or ends).
    #[inline]
    fn resume(&mut self) {
        if let Some(body) = self.consumer.as_mut() {
            let mut cx = Context::from_waker(Waker::noop());
            if body.as_mut().poll(&mut cx).is_ready() {
                self.consumer = None;
            }
        }
    }

    #[inline]
    fn put(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::too_large(msg.len(), self.max));
        }
        {
            let mut slot = self.slot.borrow_mut();
            if !slot.receiver_alive {
                return Err(Error::Disconnected);
            }
            if slot.full {
                return Err(Error::Full);
            }
            slot.buf.clear();
            slot.buf.extend_from_slice(msg);
            slot.full = true;
        }
        self.resume();
        Ok(())
    }
}

impl ipc_core::Sender for CoSender {
    /// Puts the message in the slot and resumes the consumer. A full slot
    /// with no consumer to drain it is [`Error::Full`]: waiting would never end.
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.put(msg)
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.put(msg)
    }

    fn max_message(&self) -> usize {
        self.max
    }
}

impl Drop for CoSender {
    fn drop(&mut self) {
        self.slot.borrow_mut().sender_alive = false;
        // Let the consumer see the end of the channel and finish.
        self.resume();
    }
}

impl CoReceiver {
    /// Takes the waiting message into this end's own buffer.
    #[inline]
    fn take(&mut self) -> Result<&[u8]> {
        {
            let mut slot = self.slot.borrow_mut();
            if !slot.full {
                return Err(if slot.sender_alive {
                    Error::Empty
                } else {
                    Error::Disconnected
                });
            }
            // The buffers change hands; no byte is copied, none is shared.
            std::mem::swap(&mut slot.buf, &mut self.current);
            slot.full = false;
        }
        Ok(&self.current)
    }

    /// Inside a coroutine: yields to the producer until the next message is
    /// there, then returns it ([`Error::Disconnected`] once the sender is gone).
    /// The `await` point is where the producer's `send` resumes the consumer.
    pub async fn next(&mut self) -> Result<&[u8]> {
        std::future::poll_fn(|_| {
            let slot = self.slot.borrow();
            if slot.full || !slot.sender_alive {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        self.take()
    }
}

impl ipc_core::Receiver for CoReceiver {
    /// The waiting message; on an empty channel [`Error::WouldDeadlock`],
    /// as nothing else on this thread could fill it.
    fn recv(&mut self) -> Result<&[u8]> {
        match self.take() {
            Err(Error::Empty) => Err(Error::WouldDeadlock),
            other => other,
        }
    }

    fn try_recv(&mut self) -> Result<&[u8]> {
        self.take()
    }

    fn recv_timeout(&mut self, _timeout: Duration) -> Result<&[u8]> {
        ipc_core::Receiver::recv(self)
    }

    fn max_message(&self) -> usize {
        self.max
    }
}

impl Drop for CoReceiver {
    fn drop(&mut self) {
        self.slot.borrow_mut().receiver_alive = false;
    }
}

impl Transport for Coroutine {
    const NAME: &'static str = "coroutines";
    const VARIANT: &'static str = "async";
    const MODES: &'static [Mode] = &[Mode::Coroutine];
    type Sender = CoSender;
    type Receiver = CoReceiver;

    fn channel(mode: Mode, opts: &Options) -> Result<(CoSender, CoReceiver)> {
        if mode != Mode::Coroutine {
            return Err(Error::Unsupported {
                transport: Self::NAME,
                mode,
                hint: "a coroutine is resumed by a send on its own thread, so its ends cannot live in two threads or processes: use ipc-channels between threads, pipes or shm between processes",
            });
        }
        Ok(channel(opts.max_message))
    }

    fn spawn_consumer(
        sender: &mut CoSender,
        mut receiver: CoReceiver,
        mut handler: Handler,
    ) -> Result<()> {
        sender.attach(Box::pin(async move {
            while let Ok(msg) = receiver.next().await {
                if handler(msg).is_err() {
                    break;
                }
            }
        }));
        Ok(())
    }
}

ipc_core::conformance_tests!(coroutine_conformance, crate::Coroutine, Coroutines);

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_core::{Receiver, Sender};

    #[test]
    fn each_send_runs_the_consumer_to_its_next_wait() {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let log = Rc::clone(&seen);
        let mut tx = coroutine(move |mut rx| async move {
            log.borrow_mut().push("started".to_owned());
            while let Ok(m) = rx.next().await {
                log.borrow_mut()
                    .push(String::from_utf8_lossy(m).into_owned());
            }
            log.borrow_mut().push("ended".to_owned());
        });
        assert_eq!(*seen.borrow(), ["started"]);
        tx.send(b"task 0").expect("send");
        assert_eq!(
            *seen.borrow(),
            ["started", "task 0"],
            "handled before send returned"
        );
        tx.send(b"task 1").expect("send");
        drop(tx);
        assert_eq!(*seen.borrow(), ["started", "task 0", "task 1", "ended"]);
    }

    #[test]
    fn a_full_slot_without_a_consumer_is_full_not_a_hang() {
        let (mut tx, mut rx) =
            Coroutine::channel(Mode::Coroutine, &Options::default()).expect("channel");
        tx.send(b"one").expect("send");
        assert!(matches!(tx.send(b"two"), Err(Error::Full)));
        assert_eq!(rx.recv().expect("recv"), b"one");
        assert!(matches!(rx.recv(), Err(Error::WouldDeadlock)));
    }

    #[test]
    fn a_consumer_that_ended_disconnects_the_sender() {
        let mut tx = coroutine(|mut rx| async move {
            let _ = rx.next().await;
        });
        tx.send(b"only one").expect("send");
        assert!(matches!(tx.send(b"too many"), Err(Error::Disconnected)));
    }

    #[test]
    fn threads_and_processes_are_refused_saying_why() {
        for mode in [Mode::Thread, Mode::Process] {
            let err = Coroutine::channel(mode, &Options::default()).expect_err("unsupported");
            assert!(err.to_string().contains("own thread"), "{err}");
        }
    }

    #[test]
    fn a_million_messages_arrive_in_order_and_intact() {
        let next = Rc::new(RefCell::new(0u64));
        let check = Rc::clone(&next);
        let mut tx = coroutine(move |mut rx| async move {
            while let Ok(m) = rx.next().await {
                let mut want = check.borrow_mut();
                assert_eq!(m, &want.to_le_bytes()[..], "message {want}");
                *want += 1;
            }
        });
        for i in 0..1_000_000u64 {
            tx.send(&i.to_le_bytes()).expect("send");
        }
        assert_eq!(*next.borrow(), 1_000_000);
    }
}
