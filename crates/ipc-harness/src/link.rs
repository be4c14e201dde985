//! Where the ends of a run live: the mode only changes where the consumer
//! runs (a child process, a thread, a coroutine), never what producer and
//! consumer do.

use std::time::Duration;

use ipc_core::{check_mode, Endpoint, Error, Handler, Handover, Mode, RecvInPlace, Transport};

use crate::config::RunConfig;
use crate::error::{HarnessError, Result};
use crate::peer::{self, ChildPeer, PeerSpec};
use crate::protocol::{consume, consume_in_place, Consumer, Role};
use crate::sys::pin_current_thread;

/// Where a consumer runs.
pub(crate) enum Place {
    Process(ChildPeer),
    Thread(std::thread::JoinHandle<Result<()>>),
    Coroutine,
}

impl Place {
    /// Waits for the consumer to end, after its channel was closed.
    pub(crate) fn finish(self) -> Result<()> {
        match self {
            Place::Process(child) => child.finish(),
            Place::Thread(handle) => handle.join().unwrap_or_else(|_| {
                Err(HarnessError::Other("the consumer thread panicked".into()))
            }),
            Place::Coroutine => Ok(()),
        }
    }

    /// Turns an error seen by the producer into its real cause: a dead peer
    /// process, or the consumer thread's own error.
    fn explain(self, err: HarnessError) -> HarnessError {
        match self {
            Place::Process(child) => child.explain(err),
            Place::Thread(handle) => match handle.join() {
                Ok(Err(consumer_err)) => consumer_err,
                _ => err,
            },
            Place::Coroutine => err,
        }
    }
}

/// The producer's ends of a running exchange: `tx` to the consumer, `rx` for
/// its answers.
pub struct Link<T: Transport> {
    pub(crate) tx: T::Sender,
    pub(crate) rx: T::Receiver,
    place: Place,
}

/// Sets up an exchange for a run: two channels and a consumer in its place.
pub type Connect<T> = fn(&RunConfig, Role) -> Result<Link<T>>;

impl<T: Transport> Link<T> {
    /// Closes the channel to the consumer and waits for it to end.
    fn finish(self) -> Result<()> {
        let Link { tx, rx, place } = self;
        drop(tx);
        let result = place.finish();
        drop(rx);
        result
    }

    /// Turns an error seen by the producer into its real cause.
    fn explain(self, err: HarnessError) -> HarnessError {
        let Link { tx, rx, place } = self;
        drop(tx);
        drop(rx);
        place.explain(err)
    }
}

fn coroutine_link<T: Transport>(cfg: &RunConfig, role: Role) -> Result<Link<T>> {
    let opts = cfg.options();
    let (mut tx, frx) = T::channel(Mode::Coroutine, &opts)?;
    let (btx, rx) = T::channel(Mode::Coroutine, &opts)?;
    let mut consumer = Consumer::new(role, btx);
    let handler: Handler = Box::new(move |m| consumer.handle(m).map(|_| ()));
    T::spawn_consumer(&mut tx, frx, handler)?;
    Ok(Link {
        tx,
        rx,
        place: Place::Coroutine,
    })
}

/// How a consumer takes its messages: [`consume`] (copied out) or
/// [`consume_in_place`] (zero-copy).
pub(crate) type Consume<T> = fn(
    &mut <T as Transport>::Receiver,
    &mut Consumer<<T as Transport>::Sender>,
    crate::wait::Wait,
) -> Result<()>;

/// Starts a consumer playing `role` on `rx`, answering on `back`: in a child
/// process (process mode) or a thread; it takes its messages in place when
/// `in_place` is `Some` (the function that does so in a thread).
pub(crate) fn place_consumer<T: Transport>(
    cfg: &RunConfig,
    rx: T::Receiver,
    back: T::Sender,
    role: Role,
    in_place: Option<Consume<T>>,
) -> Result<Place>
where
    T::Sender: Send,
    T::Receiver: Send,
{
    let wait = cfg.wait;
    let pin = cfg.pin.map(|(_, consumer)| consumer);
    if cfg.mode == Mode::Process {
        let mut handover = Handover::new();
        let forward = T::export_receiver(rx, &mut handover)?;
        let back = T::export_sender(back, &mut handover)?;
        let spec = PeerSpec {
            entry: format!("{}/{}", T::NAME, T::VARIANT),
            role,
            wait,
            spin_ns: cfg.spin.as_nanos() as u64,
            spin_yields: cfg.shares_one_cpu(),
            forward: forward.to_token(),
            back: back.to_token(),
            pin,
            parent: std::process::id(),
            lifeline: String::new(),
            in_place: in_place.is_some(),
        };
        return Ok(Place::Process(peer::spawn(
            spec,
            handover,
            cfg.peer_timeout,
        )?));
    }
    let handle = std::thread::Builder::new()
        .name("consumer".into())
        .spawn(move || {
            if let Some(cpu) = pin {
                pin_current_thread(cpu).map_err(HarnessError::Usage)?;
            }
            let mut rx = rx;
            let run = in_place.unwrap_or(consume::<T::Receiver, T::Sender>);
            run(&mut rx, &mut Consumer::new(role, back), wait)
        })
        .map_err(|e| Error::io("start the consumer thread", e))?;
    Ok(Place::Thread(handle))
}

/// Tells the ends the parent keeps which process holds their peers.
pub(crate) fn introduce<T: Transport>(
    place: &Place,
    senders: &mut [T::Sender],
    receiver: &mut T::Receiver,
) -> Result<()> {
    if let Place::Process(child) = place {
        for tx in senders {
            T::set_peer_of_sender(tx, child.process())?;
        }
        T::set_peer_of_receiver(receiver, child.process())?;
    }
    Ok(())
}

/// [`Connect`] for transports whose ends can move between threads: every mode
/// the transport supports.
pub fn connect_any<T: Transport>(cfg: &RunConfig, role: Role) -> Result<Link<T>>
where
    T::Sender: Send,
    T::Receiver: Send,
{
    check_mode::<T>(cfg.mode)?;
    if cfg.mode == Mode::Coroutine {
        return coroutine_link(cfg, role);
    }
    link_to_consumer::<T>(cfg, role, None)
}

/// Two channels, and a consumer in another process or thread that answers
/// on the second (taking its messages in place when `in_place` says how).
fn link_to_consumer<T: Transport>(
    cfg: &RunConfig,
    role: Role,
    in_place: Option<Consume<T>>,
) -> Result<Link<T>>
where
    T::Sender: Send,
    T::Receiver: Send,
{
    let opts = cfg.options();
    let (tx, frx) = T::channel(cfg.mode, &opts)?;
    let (btx, rx) = T::channel(cfg.mode, &opts)?;
    let place = place_consumer::<T>(cfg, frx, btx, role, in_place)?;
    let mut link = Link { tx, rx, place };
    introduce::<T>(
        &link.place,
        std::slice::from_mut(&mut link.tx),
        &mut link.rx,
    )?;
    Ok(link)
}

/// [`Connect`] for zero-copy runs: a consumer in another process or thread
/// that takes its messages in place.
pub fn connect_in_place<T: Transport>(cfg: &RunConfig, role: Role) -> Result<Link<T>>
where
    T::Sender: Send,
    T::Receiver: Send + RecvInPlace,
{
    check_mode::<T>(cfg.mode)?;
    if cfg.mode == Mode::Coroutine {
        return Err(HarnessError::Usage(
            "--zero-copy runs the consumer in another process or thread".into(),
        ));
    }
    let in_place: Consume<T> = consume_in_place::<T::Receiver, T::Sender>;
    link_to_consumer::<T>(cfg, role, Some(in_place))
}

/// [`Connect`] for transports whose ends stay on one thread: coroutine mode only.
pub fn connect_local<T: Transport>(cfg: &RunConfig, role: Role) -> Result<Link<T>> {
    check_mode::<T>(cfg.mode)?;
    if cfg.mode != Mode::Coroutine {
        return Err(ipc_core::unsupported::<T>(cfg.mode).into());
    }
    coroutine_link(cfg, role)
}

/// In a peer process: reopens the ends and runs the consumer.
///
/// # Safety
///
/// `spec` came from the parent that spawned this process, which handed over
/// the fds its endpoint tokens name; nothing else in this process owns them.
pub unsafe fn peer_main<T: Transport>(spec: &PeerSpec) -> Result<()> {
    if spec.in_place {
        return Err(HarnessError::Usage(format!(
            "{} has no zero-copy path",
            spec.entry
        )));
    }
    // SAFETY: passed on from our caller.
    unsafe { peer_with::<T>(spec, consume::<T::Receiver, T::Sender>) }
}

/// [`peer_main`] for a transport with zero-copy: takes the messages in
/// place when the parent asked for it.
///
/// # Safety
///
/// As for [`peer_main`].
pub unsafe fn peer_main_in_place<T: Transport>(spec: &PeerSpec) -> Result<()>
where
    T::Receiver: RecvInPlace,
{
    let run: Consume<T> = if spec.in_place {
        consume_in_place::<T::Receiver, T::Sender>
    } else {
        consume::<T::Receiver, T::Sender>
    };
    // SAFETY: passed on from our caller.
    unsafe { peer_with::<T>(spec, run) }
}

/// Reopens the ends a peer process was given and runs `run` on them.
///
/// # Safety
///
/// As for [`peer_main`].
unsafe fn peer_with<T: Transport>(spec: &PeerSpec, run: Consume<T>) -> Result<()> {
    // SAFETY: passed on from our caller.
    let (forward, back) = unsafe {
        (
            Endpoint::from_token(&spec.forward)?,
            Endpoint::from_token(&spec.back)?,
        )
    };
    let mut rx = T::open_receiver(forward)?;
    let tx = T::open_sender(back)?;
    if let Some(cpu) = spec.pin {
        pin_current_thread(cpu).map_err(HarnessError::Usage)?;
    }
    crate::wait::set_spin(Duration::from_nanos(spec.spin_ns), spec.spin_yields);
    run(
        &mut rx,
        &mut Consumer::new(spec.role.clone(), tx),
        spec.wait,
    )
}

/// Pins the producer, if asked.
pub(crate) fn pin_producer(cfg: &RunConfig) -> Result<()> {
    if let Some((producer, _)) = cfg.pin {
        pin_current_thread(producer).map_err(HarnessError::Usage)?;
    }
    Ok(())
}

/// Runs `body` on a link, turning its errors into their real causes.
pub(crate) fn with_link<T: Transport, R>(
    cfg: &RunConfig,
    role: Role,
    connect: Connect<T>,
    body: impl FnOnce(&mut T::Sender, &mut T::Receiver) -> Result<R>,
) -> Result<R> {
    pin_producer(cfg)?;
    crate::wait::set_spin(cfg.spin, cfg.shares_one_cpu());
    let mut link = connect(cfg, role)?;
    match body(&mut link.tx, &mut link.rx) {
        Ok(r) => link.finish().map(|()| r),
        Err(e) => Err(link.explain(e)),
    }
}

/// Several producers and consumers on one channel: the producers' senders,
/// and each consumer's place with the channel it answers on.
pub(crate) struct SharedLink<T: Transport> {
    pub(crate) senders: Vec<T::Sender>,
    pub(crate) consumers: Vec<(T::Receiver, Place)>,
}

/// Makes one channel with `cfg.producers` senders and `cfg.consumers`
/// receivers (the transport must allow several), and starts each consumer,
/// playing `role(j)`, with a channel of its own to answer on.
pub(crate) fn connect_shared<T: Transport>(
    cfg: &RunConfig,
    role: impl Fn(usize) -> Role,
) -> Result<SharedLink<T>>
where
    T::Sender: Send,
    T::Receiver: Send,
{
    check_mode::<T>(cfg.mode)?;
    if cfg.mode == Mode::Coroutine {
        return Err(HarnessError::Usage(
            "coroutine mode has one producer and one consumer on one thread".into(),
        ));
    }
    let opts = cfg.options();
    let (tx, rx) = T::channel(cfg.mode, &opts)?;
    let mut senders = Vec::with_capacity(cfg.producers);
    for _ in 1..cfg.producers {
        senders.push(T::clone_sender(&tx)?);
    }
    senders.push(tx);
    let mut receivers = Vec::with_capacity(cfg.consumers);
    for _ in 1..cfg.consumers {
        receivers.push(T::clone_receiver(&rx)?);
    }
    receivers.push(rx);
    let mut consumers = Vec::with_capacity(cfg.consumers);
    for (j, rx) in receivers.into_iter().enumerate() {
        let (back, mut answers) = T::channel(cfg.mode, &opts)?;
        let place = place_consumer::<T>(cfg, rx, back, role(j), None)?;
        introduce::<T>(&place, &mut senders, &mut answers)?;
        consumers.push((answers, place));
    }
    Ok(SharedLink { senders, consumers })
}

impl<T: Transport> SharedLink<T> {
    /// Waits for every consumer to end (the senders are gone by then).
    pub(crate) fn finish(self) -> Result<()> {
        let mut result = Ok(());
        for (answers, place) in self.consumers {
            let ended = place.finish();
            drop(answers);
            if result.is_ok() {
                result = ended;
            }
        }
        result
    }

    /// Turns an error seen by a producer into its real cause: a consumer
    /// process that died, if one did.
    pub(crate) fn explain(self, err: HarnessError) -> HarnessError {
        drop(self.senders);
        let mut cause = err;
        for (j, (answers, place)) in self.consumers.into_iter().enumerate() {
            drop(answers);
            if j == 0 {
                cause = place.explain(cause);
            } else if let died @ HarnessError::PeerDied { .. } =
                place.explain(HarnessError::Other(String::new()))
            {
                if !matches!(cause, HarnessError::PeerDied { .. }) {
                    cause = died;
                }
            }
        }
        cause
    }
}
