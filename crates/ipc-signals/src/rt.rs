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

impl RtSender {
    fn new(
        number: Arc<Number>,
        peer: Peer,
        max: usize,
        limit: &'static str,
        connect_timeout: Duration,
    ) -> Self {
        RtSender {
            number,
            peer,
            max,
            limit,
            pending: VecDeque::new(),
            since_check: 0,
            gone: false,
            handed_over: false,
            connect_timeout,
        }
    }

    fn signo(&self) -> i32 {
        self.number.get()
    }

    /// Whether the receiver can be reached: in thread mode, once its thread
    /// has named itself (waiting for it up to the connect timeout, with
    /// `block`).
    fn ready(&self, block: bool) -> Result<bool> {
        let shared = match &self.peer {
            Peer::Thread(shared) => shared,
            Peer::Process(_) => return self.peer.process().map(|_| true),
        };
        let started = Instant::now();
        loop {
            if shared.receiver_closed.load(Ordering::Acquire) {
                return Err(Error::Disconnected);
            }
            if shared.tid.load(Ordering::Acquire) != 0 {
                return Ok(true);
            }
            if !block {
                return Ok(false);
            }
            if started.elapsed() >= self.connect_timeout {
                return Err(Error::Unsupported {
                    transport: "signals/rt",
                    mode: Mode::Thread,
                    hint: "the receiving end did not ask for a message within the connect timeout: in thread mode the signals go to the receiving thread, which names itself on its first receive",
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn queue(&self, value: u64) -> std::io::Result<()> {
        match &self.peer {
            Peer::Thread(shared) => sys::queue_to_thread(
                sys::getpid(),
                shared.tid.load(Ordering::Acquire),
                self.signo(),
                value,
            ),
            Peer::Process(Some(peer)) => queue_to(peer, self.signo(), value),
            Peer::Process(None) => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    /// Whether the receiver said goodbye (dropped its end).
    fn receiver_left(&mut self) -> bool {
        match &self.peer {
            Peer::Thread(shared) => shared.receiver_closed.load(Ordering::Acquire),
            Peer::Process(Some(peer)) => {
                // Its goodbye comes on the channel's own signal, to this
                // process, which has no receiver on it.
                let from = peer.id().pid() as i32;
                while let Ok(Some(sig)) = sys::take(self.signo(), Duration::ZERO) {
                    if sig.pid == from && sig.value == chunks::close() {
                        return true;
                    }
                }
                false
            }
            Peer::Process(None) => false,
        }
    }

    fn receiver_alive(&self) -> bool {
        match &self.peer {
            Peer::Thread(_) => true,
            Peer::Process(Some(peer)) => peer.is_running(),
            Peer::Process(None) => true,
        }
    }

    /// Queues one signal. With `block`, waits for room in the queue (the
    /// user's RLIMIT_SIGPENDING) as long as the receiver lives; without,
    /// says whether it went.
    fn deliver(&mut self, value: u64, block: bool) -> Result<bool> {
        let mut backoff = Duration::from_micros(20);
        let mut checked = Instant::now();
        loop {
            match self.queue(value) {
                Ok(()) => {
                    self.since_check += 1;
                    if self.since_check >= SENDS_PER_CHECK {
                        self.since_check = 0;
                        if self.receiver_left() {
                            return Err(self.lost());
                        }
                    }
                    return Ok(true);
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    // The queue is full: free what this process's own
                    // receivers have waiting, then wait for room.
                    if spill::drain(self.signo()) > 0 {
                        continue;
                    }
                    if self.receiver_left() {
                        return Err(self.lost());
                    }
                    if !block {
                        return Ok(false);
                    }
                    if checked.elapsed() >= LIVENESS_CHECK {
                        if !self.receiver_alive() {
                            return Err(self.lost());
                        }
                        checked = Instant::now();
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(1));
                }
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Err(self.lost()),
                Err(e) if e.kind() == std::io::ErrorKind::NotConnected => {
                    return Err(self.peer.process().err().unwrap_or(Error::Disconnected))
                }
                Err(e) => return Err(Error::io("queue a signal", e)),
            }
        }
    }

    fn lost(&mut self) -> Error {
        self.gone = true;
        Error::Disconnected
    }

    /// Queues what `try_send` left, waiting with `block`; says whether all went.
    fn finish_pending(&mut self, block: bool) -> Result<bool> {
        while let Some(&value) = self.pending.front() {
            if !self.deliver(value, block)? {
                return Ok(false);
            }
            self.pending.pop_front();
        }
        Ok(true)
    }

    fn check(&self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.max,
                limit: self.limit,
            });
        }
        if self.gone {
            return Err(Error::Disconnected);
        }
        Ok(())
    }
}

impl ipc_core::Sender for RtSender {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.check(msg)?;
        self.ready(true)?;
        self.finish_pending(true)?;
        for value in std::iter::once(chunks::head(msg)).chain(chunks::body(msg)) {
            self.deliver(value, true)?;
        }
        Ok(())
    }

    /// Never waits: `Full` while the receiving thread is unknown, the
    /// queue has no room for the first signal, or the rest of an earlier
    /// message waits; when only part of the message fits, the rest waits in
    /// this sender and goes first next time.
    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.check(msg)?;
        if !self.ready(false)? || !self.finish_pending(false)? {
            return Err(Error::Full);
        }
        let mut values = std::iter::once(chunks::head(msg)).chain(chunks::body(msg));
        if let Some(first) = values.next() {
            if !self.deliver(first, false)? {
                return Err(Error::Full);
            }
        }
        while let Some(value) = values.next() {
            if !self.deliver(value, false)? {
                self.pending.push_back(value);
                self.pending.extend(values);
                break;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.finish_pending(true).map(drop)
    }

    fn max_message(&self) -> usize {
        self.max
    }
}

impl Drop for RtSender {
    fn drop(&mut self) {
        if self.handed_over || self.gone {
            return;
        }
        // The rest of a message, then the goodbye, as far as the receiver
        // takes them within LINGER (none if its thread never named itself).
        if self.ready(false).unwrap_or(false) {
            let deadline = Instant::now() + LINGER;
            let mut left: Vec<u64> = self.pending.drain(..).collect();
            left.push(chunks::close());
            'all: for value in left {
                loop {
                    match self.deliver(value, false) {
                        Ok(true) => break,
                        Ok(false) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(1))
                        }
                        _ => break 'all,
                    }
                }
            }
        }
        // After every signal it sent: a receiver that finds nothing pending
        // and this flag knows nothing more will come.
        if let Peer::Thread(shared) = &self.peer {
            shared.sender_closed.store(true, Ordering::Release);
        }
    }
}

/// How a receive waits.
#[derive(Clone, Copy)]
enum Wait {
    /// Not at all (`try_recv`).
    Poll,
    /// Until the deadline, or for ever.
    Until(Option<Instant>),
}

impl RtReceiver {
    fn new(number: Arc<Number>, peer: Peer, max: usize) -> Self {
        let spills = matches!(peer, Peer::Process(_));
        if spills {
            spill::register(number.get());
        }
        RtReceiver {
            number,
            peer,
            assembler: Assembler::new(max),
            thread: None,
            spills,
            foreign: 0,
            idle: 0,
            gone: false,
            handed_over: false,
        }
    }

    /// Signals ignored because they did not come from the peer (`si_pid`)
    /// as a queued value (`SI_QUEUE`). This filters accidents, not an
    /// attacker: a process of the same user can forge `si_pid`.
    pub fn foreign_signals(&self) -> u64 {
        self.foreign
    }

    /// In thread mode, the first receive names this thread as the one the
    /// signals go to (blocking the signal here first); later receives must
    /// come from the same thread.
    fn on_its_thread(&mut self) -> Result<()> {
        let Peer::Thread(shared) = &self.peer else {
            return Ok(());
        };
        let me = std::thread::current().id();
        match self.thread {
            Some(t) if t == me => Ok(()),
            Some(_) => Err(Error::Unsupported {
                transport: "signals/rt",
                mode: Mode::Thread,
                hint: "a thread-mode signals receiver must stay on the thread of its first receive: the signals are aimed at that thread",
            }),
            None => {
                sys::block([self.number.get()])
                    .map_err(|e| Error::io("block the channel's signal", e))?;
                self.thread = Some(me);
                shared.tid.store(sys::gettid(), Ordering::Release);
                Ok(())
            }
        }
    }

    /// The pid the signals must come from.
    fn sender_pid(&self) -> Result<i32> {
        match &self.peer {
            Peer::Thread(_) => Ok(sys::getpid()),
            Peer::Process(_) => self.peer.process().map(|p| p.id().pid() as i32),
        }
    }

    /// Whether the sender is gone without a goodbye.
    fn sender_gone(&self) -> bool {
        match &self.peer {
            Peer::Thread(shared) => shared.sender_closed.load(Ordering::Acquire),
            Peer::Process(Some(p)) => !p.is_running(),
            Peer::Process(None) => false,
        }
    }

    /// Takes the next signal of the channel: spilled first, then from the
    /// kernel, waiting up to `slice`.
    fn take(&self, slice: Duration) -> Result<Option<sys::Received>> {
        let signo = self.number.get();
        if self.spills {
            if let Some(sig) = spill::begin_wait(signo) {
                return Ok(Some(sig));
            }
            let got = sys::take(signo, slice);
            spill::end_wait(signo);
            return got.map_err(|e| Error::io("wait for a signal", e));
        }
        sys::take(signo, slice).map_err(|e| Error::io("wait for a signal", e))
    }

    /// Puts the next message together; `false` when `Poll` found none whole.
    fn next(&mut self, wait: Wait) -> Result<bool> {
        if self.gone {
            return Err(Error::Disconnected);
        }
        self.on_its_thread()?;
        let from = self.sender_pid()?;
        loop {
            let slice = match wait {
                Wait::Poll => Duration::ZERO,
                Wait::Until(None) => LIVENESS_CHECK,
                Wait::Until(Some(d)) => d
                    .saturating_duration_since(Instant::now())
                    .min(LIVENESS_CHECK),
            };
            match self.take(slice)? {
                Some(sig) if sig.code != libc::SI_QUEUE || sig.pid != from => self.foreign += 1,
                Some(sig) => match self.assembler.feed(sig.value)? {
                    Fed::Message => {
                        self.idle = 0;
                        return Ok(true);
                    }
                    Fed::More => {}
                    Fed::Closed => {
                        self.gone = true;
                        return Err(Error::Disconnected);
                    }
                },
                None => {
                    let check = match wait {
                        Wait::Poll => {
                            self.idle += 1;
                            self.idle % POLLS_PER_CHECK == 0
                        }
                        Wait::Until(_) => true,
                    };
                    // Nothing is pending: a sender gone now sent all it will.
                    if check && self.sender_gone() {
                        self.gone = true;
                        return Err(Error::Disconnected);
                    }
                    match wait {
                        Wait::Poll => return Ok(false),
                        Wait::Until(Some(d)) if Instant::now() >= d => return Err(Error::Timeout),
                        Wait::Until(_) => {}
                    }
                }
            }
        }
    }
}

impl ipc_core::Receiver for RtReceiver {
    fn recv(&mut self) -> Result<&[u8]> {
        self.next(Wait::Until(None))?;
        Ok(self.assembler.message())
    }

    fn try_recv(&mut self) -> Result<&[u8]> {
        if self.next(Wait::Poll)? {
            Ok(self.assembler.message())
        } else {
            Err(Error::Empty)
        }
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8]> {
        self.next(Wait::Until(Some(Instant::now() + timeout)))?;
        Ok(self.assembler.message())
    }

    fn max_message(&self) -> usize {
        self.assembler.max()
    }
}

impl Drop for RtReceiver {
    fn drop(&mut self) {
        if self.spills {
            spill::unregister(self.number.get());
        }
        if self.handed_over {
            return;
        }
        match &self.peer {
            Peer::Thread(shared) => shared.receiver_closed.store(true, Ordering::Release),
            // The goodbye goes to the sender's process, on this channel's
            // signal, which no receiver there waits for.
            Peer::Process(Some(peer)) if !self.gone => {
                let _ = queue_to(peer, self.number.get(), chunks::close());
            }
            Peer::Process(_) => {}
        }
    }
}
