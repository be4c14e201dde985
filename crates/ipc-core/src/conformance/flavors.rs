//! Where the suite puts the other end of a channel: another thread, or a
//! coroutine on this thread (the process flavour lives in `process.rs`).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;

use super::{digest, Digest};
use crate::error::Error;
use crate::transport::{Mode, Receiver, Sender, Transport};

/// Where the suite runs the other end of a channel.
pub trait Flavor<T: Transport> {
    /// The mode the channels are made for.
    const MODE: Mode;

    /// Starts a consumer of `rx` in this flavour's place, runs `produce`
    /// with `tx` here, drops `tx`, and returns what the consumer received
    /// before it saw `Disconnected`. With `paused`, the consumer starts
    /// reading only once `produce` has returned (so that it can fill the
    /// channel).
    fn consume(
        tx: T::Sender,
        rx: T::Receiver,
        paused: bool,
        produce: &mut dyn FnMut(&mut T::Sender),
    ) -> Vec<Digest>;

    /// Starts a producer of `tx` in this flavour's place: on
    /// [`Producer::go`] it sends `msgs`, on [`Producer::finish`] it drops
    /// its sender (and its process or thread ends). `rx`, the receiver kept
    /// here, learns where the producer is.
    fn produce(tx: T::Sender, rx: &mut T::Receiver, msgs: Vec<Vec<u8>>) -> Box<dyn Producer>;

    /// Ends `rx` in this flavour's place: dropped, or with `kill` its
    /// process killed without a word (where it has a process of its own).
    /// Returns once it is gone; `tx` learns of the peer where it can.
    fn end_receiver(tx: &mut T::Sender, rx: T::Receiver, kill: bool);
}

/// A producer started by [`Flavor::produce`].
pub trait Producer {
    /// Sends the messages.
    fn go(&mut self);
    /// Drops the sender and waits for the producer to end.
    fn finish(self: Box<Self>);
}

/// Receives until `Disconnected`, as digests.
pub(crate) fn drain<R: Receiver>(rx: &mut R) -> Vec<Digest> {
    let mut got = Vec::new();
    loop {
        match rx.recv() {
            Ok(m) => got.push(digest(m)),
            Err(Error::Disconnected) => return got,
            Err(e) => panic!("recv failed after {} messages: {e}", got.len()),
        }
    }
}

/// Sends `msgs` on `tx`, panicking with the message's number on failure.
pub(crate) fn send_all<S: Sender>(tx: &mut S, msgs: &[Vec<u8>]) {
    for (i, m) in msgs.iter().enumerate() {
        if let Err(e) = tx.send(m) {
            panic!("send of message {i} ({} bytes) failed: {e}", m.len());
        }
    }
}

/// The other end runs on another thread and blocks in `recv` or `send`.
#[derive(Debug)]
pub struct Threads;

impl<T: Transport> Flavor<T> for Threads
where
    T::Sender: Send,
    T::Receiver: Send,
{
    const MODE: Mode = Mode::Thread;

    fn consume(
        mut tx: T::Sender,
        mut rx: T::Receiver,
        paused: bool,
        produce: &mut dyn FnMut(&mut T::Sender),
    ) -> Vec<Digest> {
        let (start, started) = mpsc::channel::<()>();
        let (polled, first_poll) = mpsc::channel::<()>();
        let consumer = std::thread::spawn(move || {
            // One poll first, before anything is sent: a transport that
            // learns its receiving thread from its first call (signals)
            // knows it before the producer starts.
            let first = match rx.try_recv() {
                Ok(m) => Some(digest(m)),
                Err(Error::Empty) => None,
                Err(e) => panic!("a first poll of an empty channel: {e}"),
            };
            let _ = polled.send(());
            let _ = started.recv();
            first.into_iter().chain(drain(&mut rx)).collect::<Vec<_>>()
        });
        let _ = first_poll.recv();
        if !paused {
            let _ = start.send(());
        }
        produce(&mut tx);
        let _ = start.send(());
        drop(tx);
        consumer.join().expect("the consumer thread panicked")
    }

    fn produce(mut tx: T::Sender, _: &mut T::Receiver, msgs: Vec<Vec<u8>>) -> Box<dyn Producer> {
        let (steps, step) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if step.recv().is_ok() {
                send_all(&mut tx, &msgs);
                let _ = step.recv();
            }
        });
        Box::new(ThreadProducer {
            steps,
            thread: Some(thread),
        })
    }

    fn end_receiver(_tx: &mut T::Sender, rx: T::Receiver, _kill: bool) {
        std::thread::spawn(move || drop(rx))
            .join()
            .expect("drop the receiver");
    }
}

struct ThreadProducer {
    steps: mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Producer for ThreadProducer {
    fn go(&mut self) {
        let _ = self.steps.send(());
    }

    fn finish(mut self: Box<Self>) {
        let _ = self.steps.send(());
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the producer thread panicked");
        }
    }
}

/// The consumer is a coroutine resumed by each `send`, on this thread; a
/// producer sends from this thread when told to.
#[derive(Debug)]
pub struct Coroutines;

impl<T: Transport> Flavor<T> for Coroutines {
    const MODE: Mode = Mode::Coroutine;

    fn consume(
        mut tx: T::Sender,
        rx: T::Receiver,
        paused: bool,
        produce: &mut dyn FnMut(&mut T::Sender),
    ) -> Vec<Digest> {
        let got = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&got);
        let mut rx = Some(rx);
        let mut attach = |tx: &mut T::Sender| {
            if let Some(rx) = rx.take() {
                let sink = Rc::clone(&sink);
                T::spawn_consumer(
                    tx,
                    rx,
                    Box::new(move |m| {
                        sink.borrow_mut().push(digest(m));
                        Ok(())
                    }),
                )
                .expect("spawn the consumer coroutine");
            }
        };
        if !paused {
            attach(&mut tx);
        }
        produce(&mut tx);
        attach(&mut tx);
        drop(tx);
        let out = got.borrow().clone();
        out
    }

    fn produce(tx: T::Sender, _: &mut T::Receiver, msgs: Vec<Vec<u8>>) -> Box<dyn Producer> {
        Box::new(LocalProducer { tx: Some(tx), msgs })
    }

    fn end_receiver(_tx: &mut T::Sender, rx: T::Receiver, _kill: bool) {
        drop(rx);
    }
}

struct LocalProducer<S> {
    tx: Option<S>,
    msgs: Vec<Vec<u8>>,
}

impl<S: Sender> Producer for LocalProducer<S> {
    fn go(&mut self) {
        if let Some(tx) = &mut self.tx {
            send_all(tx, &self.msgs);
        }
    }

    fn finish(mut self: Box<Self>) {
        drop(self.tx.take());
    }
}
