//! The measurements, written once for every transport and every mode: the
//! mode only changes where the consumer lives (a child process, a thread, a
//! coroutine), never what producer and consumer do.

use std::time::{Duration, Instant};

use ipc_core::{
    check_mode, Endpoint, Error, Handler, Handover, Mode, Options, Receiver, Sender, Transport,
};
use serde::{Deserialize, Serialize};

use crate::error::{HarnessError, Result};
use crate::payload::{self, Verify};
use crate::peer::{self, ChildPeer, PeerSpec};
use crate::report::{PingpongReport, Rtt, StreamReport};
use crate::sys::{pin_current_thread, thread_cpu};
use crate::wait::Wait;

/// How many round trips one sample times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// 1, except in coroutine mode, where it is chosen so that reading the
    /// clock is under 5% of a sample.
    Auto,
    /// Exactly this many.
    Fixed(u64),
}

/// What to run, as the command line says it.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Where the consumer lives.
    pub mode: Mode,
    /// How both sides wait for messages.
    pub wait: Wait,
    /// The whole message handed to the transport, in bytes.
    pub size: usize,
    /// Timed messages (round trips for pingpong).
    pub count: u64,
    /// Untimed messages first.
    pub warmup: u64,
    /// Round trips per sample.
    pub batch: Batch,
    /// CPUs for producer and consumer.
    pub pin: Option<(usize, usize)>,
    /// How long to wait for a silent or dying peer.
    pub peer_timeout: Duration,
    /// How much of each message the receiver checks.
    pub verify: Verify,
    /// The demo's pause between tasks.
    pub interval: Duration,
    /// How long `--wait hybrid` polls before it blocks.
    pub spin: Duration,
    /// Bytes the channel may hold in flight, where the transport lets us
    /// choose (a ring's size, a pipe's buffer); `None`: its default.
    pub capacity: Option<usize>,
}

impl RunConfig {
    /// Whether producer and consumer are pinned to the same CPU, where a
    /// spinning side must yield it for the other to run at all.
    pub fn shares_one_cpu(&self) -> bool {
        matches!(self.pin, Some((a, b)) if a == b)
    }

    /// A run of `count` messages of `size` bytes in `mode`, waiting with
    /// `wait`, and the command line's defaults for the rest: 1000 warm-up
    /// messages, `--batch auto`, not pinned, a 5 s peer timeout, every byte
    /// verified, hybrid's 50 us spin, the transport's own capacity.
    pub fn new(mode: Mode, wait: Wait, size: usize, count: u64) -> Self {
        RunConfig {
            mode,
            wait,
            size,
            count,
            warmup: 1000,
            batch: Batch::Auto,
            pin: None,
            peer_timeout: Duration::from_secs(5),
            verify: Verify::Full,
            interval: Duration::ZERO,
            spin: crate::wait::HYBRID_SPIN,
            capacity: None,
        }
    }

    /// The channel options for this run. The largest message is the run's
    /// `size` (at least 4 KiB, for the control messages), so that a
    /// transport sized by its largest message (a ring) is not sized for more.
    pub fn options(&self) -> Options {
        let defaults = Options::default();
        let max = self.size.max(4096);
        let opts = defaults.max_message(max).connect_timeout(self.peer_timeout);
        match self.capacity {
            Some(bytes) => opts.capacity(bytes),
            None => opts,
        }
    }
}

/// What the consumer does with each message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Role {
    /// Sends every message back unchanged; after the last timed one, reports
    /// its CPU time (`cpu <ns>`) when `report_cpu`.
    Echo {
        /// Untimed messages before the timed ones.
        warmup: u64,
        /// Timed messages.
        count: u64,
        /// Whether to measure and report its own CPU time.
        report_cpu: bool,
    },
    /// Verifies every message; answers `warm` after the warm-up, `done <ns>`
    /// after the last, `fail <reason>` at the first bad message.
    Sink {
        /// The size of every message.
        size: usize,
        /// Untimed messages before the timed ones.
        warmup: u64,
        /// Timed messages.
        count: u64,
        /// How much of each message to check.
        verify: Verify,
        /// Whether to measure and report its own CPU time.
        report_cpu: bool,
    },
    /// Prints each task as it arrives and acknowledges it.
    Demo,
}

/// Whether the consumer goes on after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Wait for the next message.
    Continue,
    /// Stop: a bad message was reported to the producer.
    Stop,
}

/// The consumer side: a role and the channel it answers on.
pub struct Consumer<S> {
    role: Role,
    back: S,
    seen: u64,
    cpu_start: Duration,
}

impl<S: Sender> Consumer<S> {
    /// A consumer playing `role`, answering on `back`.
    pub fn new(role: Role, back: S) -> Self {
        Consumer {
            role,
            back,
            seen: 0,
            cpu_start: Duration::ZERO,
        }
    }

    /// Handles one message.
    #[inline]
    pub fn handle(&mut self, msg: &[u8]) -> ipc_core::Result<Flow> {
        match self.role {
            Role::Echo {
                warmup,
                count,
                report_cpu,
            } => {
                if report_cpu && self.seen == warmup {
                    self.cpu_start = thread_cpu();
                }
                self.back.send(msg)?;
                self.seen += 1;
                if report_cpu && self.seen == warmup + count {
                    let used = thread_cpu().saturating_sub(self.cpu_start);
                    self.back
                        .send(format!("cpu {}", used.as_nanos()).as_bytes())?;
                }
            }
            Role::Sink {
                size,
                warmup,
                count,
                verify,
                report_cpu,
            } => {
                if report_cpu && self.seen == warmup {
                    self.cpu_start = thread_cpu();
                }
                if let Err(why) = payload::check(msg, self.seen, size, verify) {
                    self.back.send(format!("fail {why}").as_bytes())?;
                    return Ok(Flow::Stop);
                }
                self.seen += 1;
                if warmup > 0 && self.seen == warmup {
                    self.back.send(b"warm")?;
                }
                if self.seen == warmup + count {
                    let used = if report_cpu {
                        thread_cpu().saturating_sub(self.cpu_start)
                    } else {
                        Duration::ZERO
                    };
                    self.back
                        .send(format!("done {}", used.as_nanos()).as_bytes())?;
                }
            }
            Role::Demo => {
                println!("consumer: got {:?}", String::from_utf8_lossy(msg));
                self.back.send(msg)?;
            }
        }
        Ok(Flow::Continue)
    }
}

/// The consumer's loop in a thread or a child process: handles messages
/// until the producer closes the channel.
pub fn consume<R: Receiver, S: Sender>(
    rx: &mut R,
    consumer: &mut Consumer<S>,
    wait: Wait,
) -> Result<()> {
    loop {
        match wait.recv_with(rx, |m| consumer.handle(m)) {
            Ok(Ok(Flow::Continue)) => {}
            Ok(Ok(Flow::Stop)) => return Ok(()),
            Ok(Err(e)) | Err(e) if e.is_disconnected() => return Ok(()),
            Ok(Err(e)) | Err(e) => return Err(e.into()),
        }
    }
}

/// Where the consumer runs.
enum Place {
    Process(ChildPeer),
    Thread(std::thread::JoinHandle<Result<()>>),
    Coroutine,
}

/// The producer's ends of a running exchange: `tx` to the consumer, `rx` for
/// its answers.
pub struct Link<T: Transport> {
    tx: T::Sender,
    rx: T::Receiver,
    place: Place,
}

/// Sets up an exchange for a run: two channels and a consumer in its place.
pub type Connect<T> = fn(&RunConfig, Role) -> Result<Link<T>>;

impl<T: Transport> Link<T> {
    /// Closes the channel to the consumer and waits for it to end.
    fn finish(self) -> Result<()> {
        let Link { tx, rx, place } = self;
        drop(tx);
        let result = match place {
            Place::Process(child) => child.finish(),
            Place::Thread(handle) => handle.join().unwrap_or_else(|_| {
                Err(HarnessError::Other("the consumer thread panicked".into()))
            }),
            Place::Coroutine => Ok(()),
        };
        drop(rx);
        result
    }

    /// Turns an error seen by the producer into its real cause: a dead peer
    /// process, or the consumer thread's own error.
    fn explain(self, err: HarnessError) -> HarnessError {
        let Link { tx, rx, place } = self;
        drop(tx);
        drop(rx);
        match place {
            Place::Process(child) => child.explain(err),
            Place::Thread(handle) => match handle.join() {
                Ok(Err(consumer_err)) => consumer_err,
                _ => err,
            },
            Place::Coroutine => err,
        }
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
    let opts = cfg.options();
    let (tx, frx) = T::channel(cfg.mode, &opts)?;
    let (btx, rx) = T::channel(cfg.mode, &opts)?;
    let wait = cfg.wait;
    let pin = cfg.pin.map(|(_, consumer)| consumer);
    let place = if cfg.mode == Mode::Process {
        let mut handover = Handover::new();
        let forward = T::export_receiver(frx, &mut handover)?;
        let back = T::export_sender(btx, &mut handover)?;
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
            lifeline: -1,
        };
        Place::Process(peer::spawn(spec, handover, cfg.peer_timeout)?)
    } else {
        let handle = std::thread::Builder::new()
            .name("consumer".into())
            .spawn(move || {
                if let Some(cpu) = pin {
                    pin_current_thread(cpu).map_err(HarnessError::Usage)?;
                }
                let mut frx = frx;
                consume(&mut frx, &mut Consumer::new(role, btx), wait)
            })
            .map_err(|e| Error::io("start the consumer thread", e))?;
        Place::Thread(handle)
    };
    Ok(Link { tx, rx, place })
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
pub fn peer_main<T: Transport>(spec: &PeerSpec) -> Result<()> {
    let mut rx = T::open_receiver(&Endpoint::from_token(&spec.forward)?)?;
    let tx = T::open_sender(&Endpoint::from_token(&spec.back)?)?;
    if let Some(cpu) = spec.pin {
        pin_current_thread(cpu).map_err(HarnessError::Usage)?;
    }
    crate::wait::set_spin(Duration::from_nanos(spec.spin_ns), spec.spin_yields);
    consume(
        &mut rx,
        &mut Consumer::new(spec.role.clone(), tx),
        spec.wait,
    )
}

/// Reads one control answer from the consumer: `warm`, `done <ns>`, `cpu <ns>`;
/// `fail <reason>` becomes [`HarnessError::Verify`]. Returns the number after the word.
fn expect_answer<R: Receiver>(rx: &mut R, wait: Wait, want: &str) -> Result<u64> {
    let text = wait.recv_with(rx, |m| String::from_utf8_lossy(m).into_owned())?;
    let (word, rest) = text.split_once(' ').unwrap_or((&text, ""));
    if word == "fail" {
        return Err(HarnessError::Verify(rest.to_owned()));
    }
    if word != want {
        return Err(HarnessError::Verify(format!(
            "expected the consumer's {want:?}, got {:?}",
            text.chars().take(80).collect::<String>()
        )));
    }
    Ok(rest.parse().unwrap_or(0))
}

fn check_pin(cfg: &RunConfig) -> Result<()> {
    if let Some((producer, _)) = cfg.pin {
        pin_current_thread(producer).map_err(HarnessError::Usage)?;
    }
    Ok(())
}

/// Runs `body` on a link, turning its errors into their real causes.
fn with_link<T: Transport, R>(
    cfg: &RunConfig,
    role: Role,
    connect: Connect<T>,
    body: impl FnOnce(&mut T::Sender, &mut T::Receiver) -> Result<R>,
) -> Result<R> {
    check_pin(cfg)?;
    crate::wait::set_spin(cfg.spin, cfg.shares_one_cpu());
    let mut link = connect(cfg, role)?;
    match body(&mut link.tx, &mut link.rx) {
        Ok(r) => link.finish().map(|()| r),
        Err(e) => Err(link.explain(e)),
    }
}

/// The cost of one `Instant::now()` on this machine, in nanoseconds.
fn clock_cost_ns() -> f64 {
    let reads = 10_000u32;
    let start = Instant::now();
    let mut last = start;
    for _ in 0..reads {
        last = std::hint::black_box(Instant::now());
    }
    (last - start).as_nanos() as f64 / reads as f64
}

/// Ping-pong: `count` timed round trips of `size`-byte messages, each echoed
/// by the consumer; samples are batches of round trips, each recorded as the
/// batch's mean.
pub fn pingpong<T: Transport>(cfg: &RunConfig, connect: Connect<T>) -> Result<PingpongReport> {
    let (size, warmup, count, wait, verify) =
        (cfg.size, cfg.warmup, cfg.count, cfg.wait, cfg.verify);
    let report_cpu = cfg.mode != Mode::Coroutine;
    let role = Role::Echo {
        warmup,
        count,
        report_cpu,
    };
    with_link(cfg, role, connect, |tx, rx| {
        let mut msg = vec![0u8; size];
        let stamp_len = size.min(8);
        let echo_ok = |m: &[u8], msg: &[u8]| match verify {
            Verify::Full => m == msg,
            Verify::Seq => m.len() == msg.len() && m[..stamp_len] == msg[..stamp_len],
        };
        let bad = |seq: u64| {
            HarnessError::Verify(format!(
                "the echo of message {seq} differs from what was sent"
            ))
        };

        // Warm-up; its second half is also timed as one block, to choose the batch.
        let mut calibration_start = Instant::now();
        for seq in 0..warmup {
            if seq == warmup / 2 {
                calibration_start = Instant::now();
            }
            payload::fill(&mut msg, seq, Verify::Full);
            tx.send(&msg)?;
            if !wait.recv_with(rx, |m| echo_ok(m, &msg))? {
                return Err(bad(seq));
            }
        }
        let calibration = calibration_start.elapsed();
        let batch = match cfg.batch {
            Batch::Fixed(k) => k.max(1),
            Batch::Auto if cfg.mode != Mode::Coroutine => 1,
            Batch::Auto => {
                let timed = (warmup - warmup / 2).max(1);
                let rtt = (calibration.as_nanos() as f64 / timed as f64).max(0.1);
                // Two clock reads per sample must stay under 5% of it.
                ((2.0 * clock_cost_ns() / (0.05 * rtt)).ceil() as u64).clamp(1, 100_000)
            }
        };

        let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)
            .map_err(|e| HarnessError::Other(e.to_string()))?;
        let mut mean_sum = 0.0f64;
        let mut samples = 0u64;
        let cpu_start = thread_cpu();
        let started = Instant::now();
        let (mut seq, end) = (warmup, warmup + count);
        while seq < end {
            let k = batch.min(end - seq);
            payload::fill(&mut msg, seq, Verify::Full);
            let t0 = Instant::now();
            for _ in 0..k {
                tx.send(&msg)?;
                if !wait.recv_with(rx, |m| echo_ok(m, &msg))? {
                    return Err(bad(seq));
                }
                seq += 1;
                msg[..stamp_len].copy_from_slice(&seq.to_le_bytes()[..stamp_len]);
            }
            let sample = t0.elapsed().as_nanos() as f64 / k as f64;
            hist.saturating_record(sample.round() as u64);
            mean_sum += sample;
            samples += 1;
        }
        let elapsed = started.elapsed();
        let mut cpu = thread_cpu().saturating_sub(cpu_start);
        if report_cpu && count > 0 {
            cpu += Duration::from_nanos(expect_answer(rx, wait, "cpu")?);
        }
        let moved = 2 * count;
        Ok(PingpongReport {
            batch,
            rtt: Rtt::from_histogram(
                &hist,
                if samples > 0 {
                    mean_sum / samples as f64
                } else {
                    0.0
                },
            ),
            msgs_per_s: per_second(moved, elapsed),
            cpu_ns_per_msg: per_message(cpu, moved),
        })
    })
}

/// Stream: `count` timed messages one way as fast as they go, each verified
/// by the consumer; the time runs until the consumer confirms the last.
pub fn stream<T: Transport>(cfg: &RunConfig, connect: Connect<T>) -> Result<StreamReport> {
    let (size, warmup, count, wait, verify) =
        (cfg.size, cfg.warmup, cfg.count, cfg.wait, cfg.verify);
    let report_cpu = cfg.mode != Mode::Coroutine;
    let role = Role::Sink {
        size,
        warmup,
        count,
        verify,
        report_cpu,
    };
    with_link(cfg, role, connect, |tx, rx| {
        let mut msg = vec![0u8; size];
        for seq in 0..warmup {
            payload::fill(&mut msg, seq, verify);
            tx.send(&msg)?;
        }
        if warmup > 0 {
            expect_answer(rx, wait, "warm")?;
        }
        let cpu_start = thread_cpu();
        let started = Instant::now();
        for seq in warmup..warmup + count {
            payload::fill(&mut msg, seq, verify);
            tx.send(&msg)?;
        }
        let peer_cpu = if count > 0 {
            expect_answer(rx, wait, "done")?
        } else {
            0
        };
        let elapsed = started.elapsed();
        let cpu = thread_cpu().saturating_sub(cpu_start) + Duration::from_nanos(peer_cpu);
        Ok(StreamReport {
            msgs_per_s: per_second(count, elapsed),
            bytes_per_s: per_second(count * size as u64, elapsed),
            cpu_ns_per_msg: per_message(cpu, count),
        })
    })
}

/// The demo: the producer sends "task 0", "task 1", ... one at a time with a
/// pause between them; the consumer prints each and acknowledges it. Returns
/// the round trip of each task.
pub fn demo<T: Transport>(cfg: &RunConfig, connect: Connect<T>) -> Result<Vec<Duration>> {
    let wait = cfg.wait;
    with_link(cfg, Role::Demo, connect, |tx, rx| {
        let mut rtts = Vec::new();
        for i in 0..cfg.count {
            if i > 0 {
                std::thread::sleep(cfg.interval);
            }
            let task = format!("task {i}");
            println!("producer: sent {task:?}");
            let t0 = Instant::now();
            tx.send(task.as_bytes())?;
            let same = wait.recv_with(rx, |m| m == task.as_bytes())?;
            rtts.push(t0.elapsed());
            if !same {
                return Err(HarnessError::Verify(format!(
                    "the acknowledgement of {task:?} differs"
                )));
            }
        }
        Ok(rtts)
    })
}

fn per_second(n: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn per_message(cpu: Duration, n: u64) -> f64 {
    if n > 0 {
        cpu.as_nanos() as f64 / n as f64
    } else {
        0.0
    }
}
