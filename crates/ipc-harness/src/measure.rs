//! The measurements, written once for every transport and every mode:
//! ping-pong round trips, one-way streams (with one producer and one
//! consumer, or several of each) and the demo.

use std::time::{Duration, Instant};

use ipc_core::{Mode, Receiver, RecvInPlace, SendInPlace, Sender, Transport};

use crate::config::{Batch, RunConfig};
use crate::control::Control;
use crate::error::{HarnessError, Result};
use crate::link::{connect_in_place, with_link, Connect};
use crate::payload::{self, Verify};
use crate::protocol::Role;
use crate::report::{PingpongReport, Rtt, StreamReport};
use crate::sys::thread_cpu;
use crate::wait::Wait;

/// Reads the consumer's next control message, which must be `want` (by
/// kind); [`Control::Fail`] becomes [`HarnessError::Verify`], anything else
/// a protocol error.
fn expect_answer<R: Receiver>(rx: &mut R, wait: Wait, want: &str) -> Result<Control> {
    let answer = wait.recv_with(rx, Control::decode)??;
    match (&answer, want) {
        (Control::Fail(why), _) => Err(HarnessError::Verify(why.clone())),
        (Control::Warm, "warm") | (Control::Done { .. }, "done") | (Control::Cpu(_), "cpu") => {
            Ok(answer)
        }
        _ => Err(HarnessError::Protocol(format!(
            "expected the consumer's {want:?}, got {answer:?}"
        ))),
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

/// Where a ping-pong's CPU time of the other side comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerCpu {
    /// The consumer reports it after the last echo ([`Control::Cpu`]).
    Reported,
    /// The consumer runs on this very thread (coroutines): its time is
    /// counted in ours.
    SameThread,
    /// A plain echo server that cannot tell: the CPU per message is unknown.
    Unknown,
}

/// Ping-pong: `count` timed round trips of `size`-byte messages, each echoed
/// by the consumer; samples are batches of round trips, each recorded as the
/// batch's mean.
pub fn pingpong<T: Transport>(cfg: &RunConfig, connect: Connect<T>) -> Result<PingpongReport> {
    let report_cpu = cfg.mode != Mode::Coroutine;
    let role = Role::Echo {
        warmup: cfg.warmup,
        count: cfg.count,
        report_cpu,
        size: cfg.size,
    };
    let peer_cpu = if report_cpu {
        PeerCpu::Reported
    } else {
        PeerCpu::SameThread
    };
    with_link(cfg, role, connect, |tx, rx| {
        pingpong_on(cfg, tx, rx, peer_cpu)
    })
}

/// Zero-copy ping-pong: as [`pingpong`], with each message written in
/// place by the producer, echoed by a consumer that copies it straight from
/// one channel's memory into the other's, and checked in place.
pub fn pingpong_in_place<T: Transport>(cfg: &RunConfig) -> Result<PingpongReport>
where
    T::Sender: Send + SendInPlace,
    T::Receiver: Send + RecvInPlace,
{
    let role = Role::Echo {
        warmup: cfg.warmup,
        count: cfg.count,
        report_cpu: true,
        size: cfg.size,
    };
    with_link(cfg, role, connect_in_place::<T>, |tx, rx| {
        let moves = InPlace {
            tx,
            rx,
            size: cfg.size,
            verify: cfg.verify,
            wait: cfg.wait,
        };
        round_trips(cfg, moves, PeerCpu::Reported)
    })
}

/// The ping-pong itself, on a sender and a receiver whose other side echoes
/// every message unchanged: this process's consumer, or an echo server on
/// another host (`ipc-sockets serve`, with [`PeerCpu::Unknown`]).
pub fn pingpong_on<S: Sender, R: Receiver>(
    cfg: &RunConfig,
    tx: &mut S,
    rx: &mut R,
    peer_cpu: PeerCpu,
) -> Result<PingpongReport> {
    let moves = Copied {
        tx,
        rx,
        msg: vec![0u8; cfg.size],
        verify: cfg.verify,
        wait: cfg.wait,
    };
    round_trips(cfg, moves, peer_cpu)
}

/// How a ping-pong moves its messages.
trait RoundTrip {
    /// Before a batch (untimed) that begins with message `seq`.
    fn prepare(&mut self, seq: u64);
    /// Sends message `seq`.
    fn send(&mut self, seq: u64) -> Result<()>;
    /// Waits for the echo of message `seq`: whether it is what was sent.
    fn echo_ok(&mut self, seq: u64) -> Result<bool>;
    /// Tells the consumer the run stopped before its count: a message of
    /// another size than the run's (see [`Role::Echo`]).
    fn stop(&mut self) -> Result<()>;
    /// The consumer's CPU time, which it reports after the last echo.
    fn peer_cpu(&mut self) -> Result<Option<u64>>;
}

/// Messages copied in and out through the transport's trait: the message is
/// made in full at the start of each batch, and only its stamp changes
/// within one; each echo is compared with it.
struct Copied<'a, S, R> {
    tx: &'a mut S,
    rx: &'a mut R,
    msg: Vec<u8>,
    verify: Verify,
    wait: Wait,
}

impl<S: Sender, R: Receiver> RoundTrip for Copied<'_, S, R> {
    fn prepare(&mut self, seq: u64) {
        payload::fill(&mut self.msg, seq, Verify::Full);
    }

    #[inline(always)]
    fn send(&mut self, seq: u64) -> Result<()> {
        payload::stamp(&mut self.msg, seq);
        Ok(self.tx.send(&self.msg)?)
    }

    #[inline(always)]
    fn echo_ok(&mut self, _seq: u64) -> Result<bool> {
        let msg = &self.msg;
        let verify = self.verify;
        // The stamp is compared as one 8-byte word when the message holds
        // it (as `payload::stamp` writes it), not with `memcmp`.
        Ok(self.wait.recv_with(
            self.rx,
            #[inline(always)]
            |m| match verify {
                Verify::Full => m == msg.as_slice(),
                Verify::Seq => {
                    m.len() == msg.len()
                        && match (m.first_chunk::<8>(), msg.first_chunk::<8>()) {
                            (Some(got), Some(sent)) => got == sent,
                            _ => m == msg.as_slice(),
                        }
                }
            },
        )?)
    }

    fn stop(&mut self) -> Result<()> {
        let other = usize::from(self.msg.is_empty());
        Ok(self.tx.send(&vec![0; other])?)
    }

    fn peer_cpu(&mut self) -> Result<Option<u64>> {
        peer_cpu_of(self.rx, self.wait)
    }
}

/// Zero-copy: each message is made in place (as much of it as `--verify`
/// checks), and each echo is checked in place.
struct InPlace<'a, S, R> {
    tx: &'a mut S,
    rx: &'a mut R,
    size: usize,
    verify: Verify,
    wait: Wait,
}

impl<S: SendInPlace, R: RecvInPlace> RoundTrip for InPlace<'_, S, R> {
    fn prepare(&mut self, _seq: u64) {}

    #[inline(always)]
    fn send(&mut self, seq: u64) -> Result<()> {
        let verify = self.verify;
        Ok(self
            .tx
            .send_in_place(self.size, |m| payload::fill(m, seq, verify))?)
    }

    #[inline(always)]
    fn echo_ok(&mut self, seq: u64) -> Result<bool> {
        let (size, verify) = (self.size, self.verify);
        Ok(self
            .wait
            .recv_in_place_with(self.rx, |m| payload::check(m, seq, size, verify).is_ok())?)
    }

    fn stop(&mut self) -> Result<()> {
        let other = usize::from(self.size == 0);
        Ok(self.tx.send_in_place(other, |m| m.fill(0))?)
    }

    fn peer_cpu(&mut self) -> Result<Option<u64>> {
        peer_cpu_of(self.rx, self.wait)
    }
}

/// The consumer's report of its CPU time, after the last echo.
fn peer_cpu_of<R: Receiver>(rx: &mut R, wait: Wait) -> Result<Option<u64>> {
    Ok(match expect_answer(rx, wait, "cpu")? {
        Control::Cpu(ns) => ns,
        _ => None,
    })
}

/// The timed ping-pong over `moves`.
fn round_trips(
    cfg: &RunConfig,
    mut moves: impl RoundTrip,
    peer_cpu: PeerCpu,
) -> Result<PingpongReport> {
    let (warmup, count) = (cfg.warmup, cfg.count);
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
        moves.prepare(seq);
        moves.send(seq)?;
        if !moves.echo_ok(seq)? {
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
    let budget = cfg.budget.unwrap_or(Duration::MAX);
    while seq < end {
        let k = batch.min(end - seq);
        moves.prepare(seq);
        let t0 = Instant::now();
        for _ in 0..k {
            moves.send(seq)?;
            if !moves.echo_ok(seq)? {
                return Err(bad(seq));
            }
            seq += 1;
        }
        let sample = t0.elapsed().as_nanos() as f64 / k as f64;
        hist.saturating_record(sample.round() as u64);
        mean_sum += sample;
        samples += 1;
        if seq < end && started.elapsed() >= budget {
            break;
        }
    }
    let elapsed = started.elapsed();
    let count = seq - warmup;
    let stopped_early = seq < end;
    let mine = thread_cpu().saturating_sub(cpu_start);
    let cpu = match peer_cpu {
        PeerCpu::Reported if count > 0 => {
            if stopped_early {
                moves.stop()?;
            }
            moves
                .peer_cpu()?
                .map(|peer| mine + Duration::from_nanos(peer))
        }
        PeerCpu::Reported | PeerCpu::SameThread => Some(mine),
        PeerCpu::Unknown => None,
    };
    let moved = 2 * count;
    Ok(PingpongReport {
        count,
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
        cpu_ns_per_msg: cpu.map(|cpu| per_message(cpu, moved)),
    })
}

/// Stream to an echo server (`ipc-sockets serve`): `count` timed messages
/// one way as fast as they go, while a second thread takes the echoes back
/// (so that neither side's buffers fill up) and checks each; the time runs
/// until the last echo. The server's CPU is unknown, so the CPU per message
/// is too.
pub fn stream_to_echo<S: Sender + Send, R: Receiver + Send>(
    cfg: &RunConfig,
    tx: &mut S,
    rx: &mut R,
) -> Result<StreamReport> {
    let (size, warmup, count, wait, verify) =
        (cfg.size, cfg.warmup, cfg.count, cfg.wait, cfg.verify);
    let total = warmup + count;
    let started = std::sync::Mutex::new(None::<Instant>);
    let elapsed = std::thread::scope(|scope| {
        let drain = scope.spawn(|| -> Result<Instant> {
            // After a bad echo it goes on taking them, unchecked, so that
            // the sender never blocks on full buffers; the first is reported.
            let mut first_bad = None;
            for seq in 0..total {
                let ok = wait.recv_with(rx, |m| payload::check(m, seq, size, verify).is_ok())?;
                if !ok && first_bad.is_none() {
                    first_bad = Some(seq);
                }
            }
            match first_bad {
                Some(seq) => Err(HarnessError::Verify(format!(
                    "the echo of message {seq} differs from what was sent"
                ))),
                None => Ok(Instant::now()),
            }
        });
        let mut msg = vec![0u8; size];
        let sent: Result<()> = (|| {
            for seq in 0..total {
                if seq == warmup {
                    if let Ok(mut s) = started.lock() {
                        *s = Some(Instant::now());
                    }
                }
                payload::fill(&mut msg, seq, verify);
                tx.send(&msg)?;
            }
            tx.flush()?;
            Ok(())
        })();
        let last = drain
            .join()
            .unwrap_or_else(|_| Err(HarnessError::Other("the echo reader panicked".into())));
        sent?;
        let last = last?;
        let from = started.lock().ok().and_then(|s| *s).unwrap_or(last);
        Ok::<Duration, HarnessError>(last.saturating_duration_since(from))
    })?;
    Ok(StreamReport {
        msgs_per_s: per_second(count, elapsed),
        bytes_per_s: per_second(count * size as u64, elapsed),
        cpu_ns_per_msg: None,
    })
}

/// Stream: `count` timed messages one way as fast as they go, each verified
/// by the consumer; the time runs until the consumer confirms the last.
/// With several producers or consumers, see [`stream_shared`].
pub fn stream<T: Transport>(cfg: &RunConfig, connect: Connect<T>) -> Result<StreamReport> {
    let report_cpu = cfg.mode != Mode::Coroutine;
    with_link(cfg, sink(cfg, report_cpu), connect, |tx, rx| {
        let mut msg = vec![0u8; cfg.size];
        stream_on(cfg, rx, |seq| {
            payload::fill(&mut msg, seq, cfg.verify);
            Ok(tx.send(&msg)?)
        })
    })
}

/// Zero-copy stream: as [`stream`], with each message made in place by the
/// producer (as much of it as `--verify` checks) and checked in place by
/// the consumer.
pub fn stream_in_place<T: Transport>(cfg: &RunConfig) -> Result<StreamReport>
where
    T::Sender: Send + SendInPlace,
    T::Receiver: Send + RecvInPlace,
{
    with_link(cfg, sink(cfg, true), connect_in_place::<T>, |tx, rx| {
        stream_on(cfg, rx, |seq| {
            Ok(tx.send_in_place(cfg.size, |m| payload::fill(m, seq, cfg.verify))?)
        })
    })
}

/// The consumer's role in a stream.
fn sink(cfg: &RunConfig, report_cpu: bool) -> Role {
    Role::Sink {
        size: cfg.size,
        warmup: cfg.warmup,
        count: cfg.count,
        verify: cfg.verify,
        report_cpu,
    }
}

/// The stream itself: `send(seq)` sends message `seq`; the consumer's
/// answers come on `rx`.
fn stream_on<R: Receiver>(
    cfg: &RunConfig,
    rx: &mut R,
    mut send: impl FnMut(u64) -> Result<()>,
) -> Result<StreamReport> {
    let (size, warmup, count, wait) = (cfg.size, cfg.warmup, cfg.count, cfg.wait);
    for seq in 0..warmup {
        send(seq)?;
    }
    if warmup > 0 {
        expect_answer(rx, wait, "warm")?;
    }
    let cpu_start = thread_cpu();
    let started = Instant::now();
    for seq in warmup..warmup + count {
        send(seq)?;
    }
    let peer_cpu = if count > 0 {
        match expect_answer(rx, wait, "done")? {
            Control::Done { cpu_ns, .. } => cpu_ns,
            _ => None,
        }
    } else {
        Some(0)
    };
    let elapsed = started.elapsed();
    let cpu =
        peer_cpu.map(|peer| thread_cpu().saturating_sub(cpu_start) + Duration::from_nanos(peer));
    Ok(StreamReport {
        msgs_per_s: per_second(count, elapsed),
        bytes_per_s: per_second(count * size as u64, elapsed),
        cpu_ns_per_msg: cpu.map(|cpu| per_message(cpu, count)),
    })
}

/// The demo: the producer sends "task 0", "task 1", ... one at a time with a
/// pause between them; the consumer prints each and acknowledges it. Returns
/// the round trip of each task. With several producers or consumers, see
/// [`demo_shared`].
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

/// `n` per second of `elapsed`.
pub(crate) fn per_second(n: u64, elapsed: Duration) -> f64 {
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
