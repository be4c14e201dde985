//! The `rt` variant: messages carried by real-time signals, 8 bytes a
//! signal (see [`crate::chunks`] for the format), sent to the peer process
//! through its pidfd or to the receiving thread, and taken with
//! `sigtimedwait` while the signal is blocked.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_core::liveness::{PeerProcess, ProcessId};
use ipc_core::{check_mode, Endpoint, Error, Handover, Limit, Mode, Options, Result, Transport};

use crate::chunks::{self, Assembler, Fed};
use crate::numbers::{data_bounds, Number};
use crate::{spill, sys};

mod receiver;
mod sender;

/// The largest message of the `rt` variant.
pub const MAX_MESSAGE: Limit = Limit {
    bytes: 64 << 10,
    name: "the rt variant's largest message (64 KiB, 8193 signals; every queued signal of a user counts against RLIMIT_SIGPENDING)",
};

/// How often a waiting receiver checks that its sender still runs.
pub const LIVENESS_CHECK: Duration = Duration::from_millis(50);

/// Idle polls (`try_recv` with nothing there) between two such checks.
const POLLS_PER_CHECK: u32 = 1 << 16;

/// Signals sent between two looks for the receiver's goodbye.
const SENDS_PER_CHECK: u32 = 256;

/// How long a dropped sender tries to get its last signals out.
const LINGER: Duration = Duration::from_secs(2);

/// Real-time signals carrying 8 bytes each: process or thread mode.
#[derive(Debug, Clone, Copy)]
pub struct Rt;

/// What the two ends of a thread-mode channel share.
#[derive(Debug, Default)]
struct Shared {
    /// The receiving thread, once it asked for a message (0 before).
    tid: AtomicI32,
    sender_closed: AtomicBool,
    receiver_closed: AtomicBool,
}

/// The other end: a thread of this process, or a process (unknown until
/// the parent has spawned the child that holds it).
#[derive(Debug)]
enum Peer {
    Thread(Arc<Shared>),
    Process(Option<PeerProcess>),
}

impl Peer {
    fn process(&self) -> Result<&PeerProcess> {
        match self {
            Peer::Process(Some(p)) => Ok(p),
            _ => Err(Error::BadEndpoint(
                "this end does not know the process holding the other end yet: after spawning the child, call Transport::set_peer_of_sender/_receiver with what Handover::spawn returned".into(),
            )),
        }
    }
}

/// Queues `value` on signal `signo` to process `peer`.
fn queue_to(peer: &PeerProcess, signo: i32, value: u64) -> std::io::Result<()> {
    match peer.pidfd() {
        Some(fd) => sys::queue_to_pidfd(fd, signo, value),
        None => sys::queue_to_pid(peer.id().pid() as i32, signo, value),
    }
}

/// The sending end.
#[derive(Debug)]
pub struct RtSender {
    number: Arc<Number>,
    peer: Peer,
    max: usize,
    limit: &'static str,
    /// Signals of a message `try_send` accepted but could not all queue.
    pending: VecDeque<u64>,
    since_check: u32,
    gone: bool,
    handed_over: bool,
    connect_timeout: Duration,
}

/// The receiving end.
#[derive(Debug)]
pub struct RtReceiver {
    number: Arc<Number>,
    peer: Peer,
    assembler: Assembler,
    /// Thread mode: the thread that received first, where the signals go.
    thread: Option<std::thread::ThreadId>,
    /// Process mode: whether its spill queue is registered.
    spills: bool,
    foreign: u64,
    idle: u32,
    gone: bool,
    handed_over: bool,
}

impl Transport for Rt {
    const NAME: &'static str = "signals";
    const VARIANT: &'static str = "rt";
    const MODES: &'static [Mode] = &[Mode::Process, Mode::Thread];
    type Sender = RtSender;
    type Receiver = RtReceiver;

    fn channel(mode: Mode, opts: &Options) -> Result<(RtSender, RtReceiver)> {
        check_mode::<Self>(mode)?;
        let number = Arc::new(Number::take_free(data_bounds(), "data")?);
        let (tx_peer, rx_peer) = if mode == Mode::Thread {
            let shared = Arc::new(Shared::default());
            (Peer::Thread(Arc::clone(&shared)), Peer::Thread(shared))
        } else {
            ready_for_processes(number.get())?;
            (Peer::Process(None), Peer::Process(None))
        };
        let (max, limit) = MAX_MESSAGE.lower(opts.max_message);
        let tx = RtSender::new(
            Arc::clone(&number),
            tx_peer,
            max,
            limit,
            opts.connect_timeout,
        );
        let rx = RtReceiver::new(number, rx_peer, max);
        Ok((tx, rx))
    }

    fn message_limit() -> Limit {
        MAX_MESSAGE
    }

    fn before_threads() -> Result<()> {
        crate::init()
    }

    fn set_peer_of_sender(end: &mut RtSender, peer: &PeerProcess) -> Result<()> {
        if let Peer::Process(slot) = &mut end.peer {
            *slot = Some(peer.clone());
        }
        Ok(())
    }

    fn set_peer_of_receiver(end: &mut RtReceiver, peer: &PeerProcess) -> Result<()> {
        if let Peer::Process(slot) = &mut end.peer {
            *slot = Some(peer.clone());
        }
        Ok(())
    }

    fn export_sender(mut end: RtSender, handover: &mut Handover) -> Result<Endpoint> {
        let ep = export(&end.peer, end.number.get(), end.max, handover)?;
        end.handed_over = true;
        Ok(ep)
    }

    fn export_receiver(mut end: RtReceiver, handover: &mut Handover) -> Result<Endpoint> {
        if end.assembler.in_progress() || end.thread.is_some() {
            return Err(Error::BadEndpoint(
                "a signals receiver must be handed over before its first receive".into(),
            ));
        }
        let ep = export(&end.peer, end.number.get(), end.assembler.max(), handover)?;
        end.handed_over = true;
        Ok(ep)
    }

    fn open_sender(ep: Endpoint) -> Result<RtSender> {
        let (number, creator) = open(&ep)?;
        let peer = PeerProcess::of_pid(creator.pid())?;
        if peer.id() != creator {
            return Err(Error::Disconnected);
        }
        let (max, limit) = MAX_MESSAGE.lower(ep.max_message);
        Ok(RtSender::new(
            number,
            Peer::Process(Some(peer)),
            max,
            limit,
            Duration::from_secs(5),
        ))
    }

    fn open_receiver(ep: Endpoint) -> Result<RtReceiver> {
        let (number, creator) = open(&ep)?;
        let peer = PeerProcess::of_pid(creator.pid())?;
        if peer.id() != creator {
            return Err(Error::Disconnected);
        }
        let max = MAX_MESSAGE.lower(ep.max_message).0;
        Ok(RtReceiver::new(number, Peer::Process(Some(peer)), max))
    }
}

/// A process-mode channel needs its signal blocked in every thread of the
/// process ([`crate::init`] first in `main`): a signal no thread blocks
/// kills the process.
fn ready_for_processes(signo: i32) -> Result<()> {
    if sys::is_blocked(signo) {
        return Ok(());
    }
    Err(Error::Unsupported {
        transport: "signals/rt",
        mode: Mode::Process,
        hint: "call ipc_signals::init() first in main, before any thread starts: a signal to this process that some thread does not block would kill it",
    })
}

/// The endpoint of an end handed to a child, which must block the data
/// signals before it runs any code.
fn export(peer: &Peer, signo: i32, max: usize, handover: &mut Handover) -> Result<Endpoint> {
    if !matches!(peer, Peer::Process(_)) {
        return Err(ipc_core::unsupported::<Rt>(Mode::Process));
    }
    let mut ep = Endpoint::new(Rt::NAME, Rt::VARIANT, max);
    ep.extra = vec![signo as u64, ProcessId::current().pack()];
    // SAFETY: the hook only fills a signal set on the stack and calls
    // sigprocmask: async-signal-safe.
    unsafe { handover.before_exec(sys::block_data_signals_in_child) };
    Ok(ep)
}

/// In the child: the channel's signal number (held here from now on) and
/// the process that made the channel, which holds the other end.
fn open(ep: &Endpoint) -> Result<(Arc<Number>, ProcessId)> {
    ep.expect(Rt::NAME, Rt::VARIANT)?;
    let bad = || Error::BadEndpoint("a signals endpoint carries its signal and its creator".into());
    let signo = i32::try_from(*ep.extra.first().ok_or_else(bad)?).map_err(|_| bad())?;
    let creator = ep
        .extra
        .get(1)
        .and_then(|&w| ProcessId::unpack(w))
        .ok_or_else(bad)?;
    let number = Number::take(signo, data_bounds())?;
    ready_for_processes(signo)?;
    Ok((Arc::new(number), creator))
}
