//! The common trait every transport implements.

use std::fmt;
use std::time::Duration;

use crate::endpoint::{Endpoint, Handover};
use crate::error::{Error, Result};
use crate::liveness::PeerProcess;

/// Where the two ends of a channel live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// In two processes: every message crosses the kernel (or shared memory).
    Process,
    /// In two threads of one process: they share a heap.
    Thread,
    /// In two coroutines on one thread: the producer's send resumes the consumer.
    Coroutine,
}

impl Mode {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Process => "process",
            Mode::Thread => "thread",
            Mode::Coroutine => "coroutine",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a channel is made. Every transport reads the fields that apply to it
/// and ignores the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// The largest message the channel should carry, in bytes (default 1
    /// MiB). A request: a transport lowers it to what it or the system
    /// allows (see [`Transport::message_limit`]), and the ends'
    /// `max_message()` report what it got. A larger message is refused with
    /// [`Error::TooLarge`], which names the limit; a frame header announcing
    /// more is [`Error::Corrupt`].
    pub max_message: usize,
    /// How many bytes the channel may hold in flight, where the transport lets
    /// us choose (a ring's size, a socket's buffer). `None`: the transport's default.
    pub capacity: Option<usize>,
    /// How long a newly created end waits for its peer to open the other end
    /// (a FIFO rendezvous, a socket connection) before giving up.
    pub connect_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_message: 1 << 20,
            capacity: None,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl Options {
    /// Sets the largest message the channel carries.
    #[must_use]
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// Sets how many bytes may be in flight, where the transport lets us choose.
    #[must_use]
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// Sets how long an end waits for its peer to open the other end.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

/// The sending end of a one-way channel of whole messages.
///
/// Contract (checked for every transport by [`crate::conformance`]):
/// - `send` delivers the whole message or returns an error; messages arrive
///   in the order they were sent, none lost, none duplicated, none altered.
/// - Messages from 0 bytes up to [`Sender::max_message`] are accepted; a longer
///   one is refused with [`Error::TooLarge`], which names the limit, and
///   nothing is sent.
/// - `send` blocks while the channel is full; `try_send` never waits for the
///   receiver and returns [`Error::Full`] instead. A byte stream whose
///   kernel buffer takes only part of a frame keeps the unsent rest in the
///   sender's own buffer and reports the message as accepted; that rest is
///   written before anything else: by the next `send` or `try_send` (which
///   returns `Full` while it cannot go), by [`Sender::flush`], and on drop as
///   far as the receiver takes it.
/// - Once the receiver is gone, every call returns [`Error::Disconnected`]
///   (a message sent just before the receiver went away may be lost with
///   it), also when the receiver's process was killed: a transport that
///   cannot see that by itself asks [`crate::liveness`], on `try_send` too.
pub trait Sender {
    /// Sends one whole message, waiting for room if the channel is full.
    fn send(&mut self, msg: &[u8]) -> Result<()>;
    /// Sends one whole message if there is room now, else returns [`Error::Full`].
    fn try_send(&mut self, msg: &[u8]) -> Result<()>;
    /// Waits until every accepted message has left this end (the rest of a
    /// frame a byte stream could only partly write). Most transports hold
    /// nothing back, and return at once.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    /// The largest message this end sends.
    fn max_message(&self) -> usize;
}

/// Zero-copy sends, beside the trait: the message is written straight into
/// the channel's own memory, where the receiver will read it, instead of
/// being copied in from the caller's buffer. Only transports with memory
/// both sides map have it (shared memory); the harness measures it with
/// `--zero-copy`.
pub trait SendInPlace: Sender {
    /// Waits for room for a `len`-byte message, lets `fill` write all of it
    /// in place (the bytes it finds there are left over from earlier
    /// messages), then publishes it; `fill`'s result is returned.
    /// [`Error::TooLarge`] above the maximum, as for `send`.
    fn send_in_place<T>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> T) -> Result<T>;
}

/// Zero-copy receives, beside the trait: the next message is shown where the
/// sender wrote it, and freed when the view is done, instead of being copied
/// into the receiver's buffer. This is the one exception to the rule that a
/// receiver never hands out a view of memory the other side may write: an
/// honest sender never writes a published message, but one that breaks the
/// protocol can change the bytes while `f` reads them (see the transport's
/// own documentation for what that can and cannot do).
pub trait RecvInPlace: Receiver {
    /// Waits for the next message and hands a view of it to `f`; the
    /// message is freed when `f` returns.
    fn recv_in_place<T>(&mut self, f: impl FnOnce(&[u8]) -> T) -> Result<T>;
    /// As [`RecvInPlace::recv_in_place`] if a message is waiting, else
    /// [`Error::Empty`].
    fn try_recv_in_place<T>(&mut self, f: impl FnOnce(&[u8]) -> T) -> Result<T>;
}

/// The receiving end of a one-way channel of whole messages.
///
/// Contract (checked for every transport by [`crate::conformance`]):
/// - Each call returns the next whole message, copied into a buffer this
///   receiver owns; the slice stays valid until the next call. Never a view
///   into memory the other side may still write (zero-copy, the opt-in
///   exception, is [`RecvInPlace`], beside this trait).
/// - `recv` waits for a message; `try_recv` never waits and returns
///   [`Error::Empty`]; `recv_timeout` waits at most the timeout and then
///   returns [`Error::Timeout`], never sooner.
/// - When the sender is gone and every message it sent has been received,
///   all three return [`Error::Disconnected`].
/// - A frame that cannot be valid (a length above the maximum) is
///   [`Error::Corrupt`], and no memory is allocated for it.
/// - In coroutine mode, where nothing else could fill the channel while the
///   caller waits, `recv` on an empty channel returns [`Error::WouldDeadlock`]
///   instead of hanging.
/// - `ready` returns `false` only when no message is waiting, and it
///   returns `true` again within a bounded number of calls whatever
///   happens: a loop that calls `try_recv` whenever `ready` says `true`
///   gets each message as soon as it is there, and the end of the channel
///   (or the death of the peer) soon after.
pub trait Receiver {
    /// Waits for the next message.
    fn recv(&mut self) -> Result<&[u8]>;
    /// Returns the next message if one is waiting, else [`Error::Empty`].
    fn try_recv(&mut self) -> Result<&[u8]>;
    /// Waits at most `timeout` for the next message, else [`Error::Timeout`].
    fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8]>;
    /// The largest message this end accepts.
    fn max_message(&self) -> usize;

    /// Whether `try_recv` may have something to return, looked up as cheaply
    /// as the transport can: a polling loop calls it between polls, and
    /// calls `try_recv` only when it says `true`. `false` promises that no
    /// message is waiting. It says nothing of the end of the channel, so a
    /// transport that overrides it must also say `true` every so many calls
    /// (ipc-shm: every 256), for `try_recv` to report a closed or dead peer
    /// and to count the polls that make its own checks due. The default,
    /// `true`, always asks `try_recv`; a transport whose `try_recv` costs
    /// more than a look at one word of memory overrides it.
    #[inline]
    fn ready(&mut self) -> bool {
        true
    }
}

/// A consumer run as a coroutine: called with each message as it arrives.
pub type Handler = Box<dyn FnMut(&[u8]) -> Result<()>>;

/// A message a channel lost to the death of a process that had it in hand
/// (see [`Transport::loss_report`]): the sender it came from and its number
/// among that sender's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LostMessage {
    /// The sender it came from, as [`Transport::producer_number`] names it.
    pub producer: u32,
    /// Its number among that sender's messages, from 0.
    pub seq: u64,
}

/// Asks a channel, at any time, which messages it has lost to deaths so far
/// (after repairing what the deaths left); it keeps the channel's shared
/// state for as long as it lives.
pub type LossReport = Box<dyn Fn() -> Vec<LostMessage> + Send + Sync>;

/// A limit on sizes, with the name an error or a usage message gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The largest size allowed, in bytes.
    pub bytes: usize,
    /// What sets it, such as "the 4-byte length of a frame".
    pub name: &'static str,
}

impl Limit {
    /// No limit of the transport's own (the memory of the machine is one).
    pub const NONE: Limit = Limit {
        bytes: usize::MAX,
        name: "no limit of the transport",
    };

    /// Refuses a `capacity` option of `bytes` above this limit, naming it.
    pub fn check_capacity(self, bytes: usize) -> Result<()> {
        if bytes <= self.bytes {
            return Ok(());
        }
        Err(Error::io(
            format!("make a channel of {bytes} bytes"),
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the capacity is above {} bytes, {}", self.bytes, self.name),
            ),
        ))
    }

    /// The maximum a channel gets when `requested` is asked for under this
    /// limit, with the name of what set it: the request itself
    /// ([`crate::LIMIT_OPTION`]) or this limit (also when the request is the
    /// limit, as when an end lowered by its creator is reopened in a child).
    pub fn lower(self, requested: usize) -> (usize, &'static str) {
        if requested >= self.bytes {
            (self.bytes, self.name)
        } else {
            (requested, crate::error::LIMIT_OPTION)
        }
    }
}

/// A way to move whole messages one way, with the ends in two processes, two
/// threads or two coroutines (see [`Transport::MODES`]).
///
/// Contract:
/// - `channel` makes a fresh, independent channel. Whoever creates it owns
///   its named OS objects (named `ipc-showcase.<method>.<pid>.<random>`,
///   owner-only) and removes them when the last end it holds is dropped.
/// - A mode not in `MODES` is refused with [`Error::Unsupported`].
/// - For [`Mode::Process`], an end is exported into a [`Handover`] and reopened
///   in the child with `open_sender`/`open_receiver` from the [`Endpoint`];
///   the parent keeps nothing of an exported end. An end is opened once:
///   opening it again (from a copy of the token, in any process) is refused
///   with [`Error::InUse`], unless the transport has several producers (or
///   consumers) and says so in [`Transport::MULTI_PRODUCER`]
///   ([`Transport::MULTI_CONSUMER`]).
pub trait Transport: 'static {
    /// The method's name, as in `ipc-<method>` (`pipes`, `shm`, ...).
    const NAME: &'static str;
    /// This variant's name (`pipe`, `fifo`, `uds`, `tcp`, ...).
    const VARIANT: &'static str;
    /// The modes this transport serves, the default first.
    const MODES: &'static [Mode];
    /// Whether several producers may send on one channel: then
    /// [`Transport::clone_sender`] makes another sender, and every
    /// producer's messages arrive in the order that producer sent them.
    const MULTI_PRODUCER: bool = false;
    /// Whether several consumers may receive from one channel: then
    /// [`Transport::clone_receiver`] makes another receiver, and each
    /// message reaches exactly one of them.
    const MULTI_CONSUMER: bool = false;
    /// The sending end.
    type Sender: Sender + 'static;
    /// The receiving end.
    type Receiver: Receiver + 'static;

    /// Makes a fresh one-way channel for `mode`.
    fn channel(mode: Mode, opts: &Options) -> Result<(Self::Sender, Self::Receiver)>;

    /// The largest message this transport can carry at all, whatever the
    /// options ask (the options' `max_message` is lowered to it).
    fn message_limit() -> Limit {
        Limit::NONE
    }

    /// The largest `capacity` option this transport takes.
    fn capacity_limit() -> Limit {
        Limit::NONE
    }

    /// Runs in `main` before any thread starts, so that a transport can set
    /// up what every thread inherits (the signals transport blocks its
    /// signals there). The harness's binaries call it first; a library user
    /// calls it first in `main`. The default does nothing.
    ///
    /// A signal mask set here is inherited by every thread started later
    /// and, since `std::process::Command` passes the mask on, by every
    /// child process the program spawns. Under the test runner, whose
    /// threads exist before any test runs, a test that needs it runs in a
    /// `harness = false` test binary that calls it first.
    fn before_threads() -> Result<()> {
        Ok(())
    }

    /// Another sender on the same channel, for a transport with several
    /// producers; others refuse with [`Error::InUse`].
    fn clone_sender(end: &Self::Sender) -> Result<Self::Sender> {
        let _ = end;
        Err(Error::InUse(format!(
            "{}/{} has one producer per channel: a second sender cannot be made",
            Self::NAME,
            Self::VARIANT
        )))
    }

    /// Another receiver on the same channel, for a transport with several
    /// consumers; others refuse with [`Error::InUse`].
    fn clone_receiver(end: &Self::Receiver) -> Result<Self::Receiver> {
        let _ = end;
        Err(Error::InUse(format!(
            "{}/{} has one consumer per channel: a second receiver cannot be made",
            Self::NAME,
            Self::VARIANT
        )))
    }

    /// Describes `end` for a child process and adds what it must inherit to
    /// `handover`. The default says the transport cannot cross processes.
    fn export_sender(end: Self::Sender, handover: &mut Handover) -> Result<Endpoint> {
        let _ = (end, handover);
        Err(unsupported::<Self>(Mode::Process))
    }

    /// Describes `end` for a child process (see [`Transport::export_sender`]).
    fn export_receiver(end: Self::Receiver, handover: &mut Handover) -> Result<Endpoint> {
        let _ = (end, handover);
        Err(unsupported::<Self>(Mode::Process))
    }

    /// Tells the sender the parent keeps which process holds the other end,
    /// once that child is spawned (its pid, start time and pidfd), so that
    /// the transport can aim at it or watch it. The default ignores it.
    fn set_peer_of_sender(end: &mut Self::Sender, peer: &PeerProcess) -> Result<()> {
        let _ = (end, peer);
        Ok(())
    }

    /// The same for a receiver the parent keeps.
    fn set_peer_of_receiver(end: &mut Self::Receiver, peer: &PeerProcess) -> Result<()> {
        let _ = (end, peer);
        Ok(())
    }

    /// For a transport that survives the death of one of several
    /// consumers or producers at the cost of the message it had in hand
    /// (ipc-semaphores): the report of those messages, which the producers'
    /// side can read once every consumer is done. `None`, the default: the
    /// transport never loses a message without an error at the other end.
    fn loss_report(end: &Self::Sender) -> Option<LossReport> {
        let _ = end;
        None
    }

    /// The number the messages `end` sends carry in a [`LostMessage`].
    fn producer_number(end: &Self::Sender) -> Option<u32> {
        let _ = end;
        None
    }

    /// Reopens, in the child, a sender exported by the parent.
    fn open_sender(endpoint: Endpoint) -> Result<Self::Sender> {
        let _ = endpoint;
        Err(unsupported::<Self>(Mode::Process))
    }

    /// Reopens, in the child, a receiver exported by the parent.
    fn open_receiver(endpoint: Endpoint) -> Result<Self::Receiver> {
        let _ = endpoint;
        Err(unsupported::<Self>(Mode::Process))
    }

    /// Coroutine mode: runs `handler` as the consumer of `receiver`, resumed by
    /// every `send` on `sender` (the two ends of one channel). The default says
    /// the transport has no coroutine mode.
    fn spawn_consumer(
        sender: &mut Self::Sender,
        receiver: Self::Receiver,
        handler: Handler,
    ) -> Result<()> {
        let _ = (sender, receiver, handler);
        Err(unsupported::<Self>(Mode::Coroutine))
    }

    /// Removes the named objects of this method left behind by runs whose
    /// creator is dead; returns what it removed and what it refused to touch.
    fn clean() -> Result<crate::names::CleanReport> {
        Ok(crate::names::CleanReport::default())
    }
}

/// The [`Error::Unsupported`] for transport `T` in `mode`, with a hint.
pub fn unsupported<T: Transport + ?Sized>(mode: Mode) -> Error {
    Error::Unsupported {
        transport: T::NAME,
        mode,
        hint: match mode {
            Mode::Process => "use a process transport (pipes, sockets, shm, mqueue, ...)",
            Mode::Thread => "use a thread transport (channels, pipes, shm, ...)",
            Mode::Coroutine => "use ipc-coroutines for coroutine mode",
        },
    }
}

/// Checks that `T` serves `mode`, with the [`Error::Unsupported`] it returns otherwise.
pub fn check_mode<T: Transport + ?Sized>(mode: Mode) -> Result<()> {
    if T::MODES.contains(&mode) {
        Ok(())
    } else {
        Err(unsupported::<T>(mode))
    }
}
