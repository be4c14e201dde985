//! The measurements, written once for every transport and every mode:
//! ping-pong round trips, one-way streams (with one producer and one
//! consumer, or several of each) and the demo.

use std::time::{Duration, Instant};

use ipc_core::{Mode, Receiver, Sender, Transport};

use crate::config::{Batch, RunConfig};
use crate::control::Control;
use crate::error::{HarnessError, Result};
use crate::link::{with_link, Connect};
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
        let mut cpu = Some(thread_cpu().saturating_sub(cpu_start));
        if report_cpu && count > 0 {
            let peer = match expect_answer(rx, wait, "cpu")? {
                Control::Cpu(ns) => ns,
                _ => None,
            };
            cpu = cpu
                .zip(peer)
                .map(|(mine, peer)| mine + Duration::from_nanos(peer));
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
            cpu_ns_per_msg: cpu.map(|cpu| per_message(cpu, moved)),
        })
    })
}

/// Stream: `count` timed messages one way as fast as they go, each verified
/// by the consumer; the time runs until the consumer confirms the last.
/// With several producers or consumers, see [`stream_shared`].
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
            match expect_answer(rx, wait, "done")? {
                Control::Done { cpu_ns, .. } => cpu_ns,
                _ => None,
            }
        } else {
            Some(0)
        };
        let elapsed = started.elapsed();
        let cpu = peer_cpu
            .map(|peer| thread_cpu().saturating_sub(cpu_start) + Duration::from_nanos(peer));
        Ok(StreamReport {
            msgs_per_s: per_second(count, elapsed),
            bytes_per_s: per_second(count * size as u64, elapsed),
            cpu_ns_per_msg: cpu.map(|cpu| per_message(cpu, count)),
        })
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
