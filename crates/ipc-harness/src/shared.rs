//! Runs with several producers or consumers on one channel (`--producers P
//! --consumers C`): each producer is a thread of this process with a sender
//! of its own; each consumer lives where the mode puts it and answers on a
//! channel of its own. Every message carries its producer and its number
//! from that producer; each consumer checks that every producer's messages
//! come in order, and at the end says what it got from each ([`Tally`]), so
//! that the producers' side can check that every message arrived exactly
//! once.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use ipc_core::{Sender, Transport};

use crate::config::RunConfig;
use crate::control::{Control, Tally};
use crate::entry::SharedDemo;
use crate::error::{HarnessError, Result};
use crate::link::{connect_shared, pin_producer, Place, SharedLink};
use crate::measure::per_second;
use crate::payload;
use crate::protocol::{shared_stamp, task_text, Role};
use crate::report::StreamReport;
use crate::sys::thread_cpu;

/// `total` split between `parts`: part `p`'s share.
fn share(total: u64, parts: usize, p: usize) -> u64 {
    let parts = parts as u64;
    total / parts + u64::from((p as u64) < total % parts)
}

/// What every consumer said at the end, merged per producer, checked
/// against what each producer sent: returns the consumers' CPU time
/// (`None` if one could not tell).
fn check_tallies<T: Transport>(
    link: &mut SharedLink<T>,
    cfg: &RunConfig,
    sent: &[u64],
) -> Result<Option<Duration>> {
    let mut merged = vec![Tally::default(); sent.len()];
    let mut cpu = Some(Duration::ZERO);
    for (answers, _) in &mut link.consumers {
        let answer = cfg.wait.recv_with(answers, Control::decode)??;
        match answer {
            Control::Done { cpu_ns, tally } if tally.len() == sent.len() => {
                cpu = cpu.zip(cpu_ns).map(|(c, ns)| c + Duration::from_nanos(ns));
                merged.iter_mut().zip(tally).for_each(|(m, t)| m.merge(t));
            }
            Control::Fail(why) => return Err(HarnessError::Verify(why)),
            other => {
                return Err(HarnessError::Protocol(format!(
                    "expected a consumer's \"done\" with {} producers' tallies, got {other:?}",
                    sent.len()
                )))
            }
        }
    }
    for (p, (got, &n)) in merged.iter().zip(sent).enumerate() {
        if *got != Tally::of_all(n) {
            return Err(HarnessError::Verify(format!(
                "producer {p} sent {n} messages, the consumers got {} (lost, duplicated or altered)",
                got.count
            )));
        }
    }
    Ok(cpu)
}

/// Runs `produce(p, sender)` for each producer on a thread of its own,
/// pinned like the producer (the caller checked that it can be), and drops
/// each sender when its producer is done. Returns each producer's CPU time.
fn run_producers<S: Sender + Send>(
    cfg: &RunConfig,
    senders: Vec<S>,
    produce: impl Fn(usize, &mut S) -> Result<Duration> + Sync,
) -> Result<Vec<Duration>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = senders
            .into_iter()
            .enumerate()
            .map(|(p, mut tx)| {
                let produce = &produce;
                scope.spawn(move || {
                    let _ = pin_producer(cfg);
                    produce(p, &mut tx)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(HarnessError::Other("a producer thread panicked".into()))
                })
            })
            .collect::<Vec<_>>()
    })
    .into_iter()
    .collect()
}

/// A stream with several producers or consumers: every producer sends its
/// share of `warmup`, all meet, then each sends its share of `count` as
/// fast as it goes; the time runs until every consumer has seen all
/// producers go and said what it got.
pub fn stream_shared<T: Transport>(cfg: &RunConfig) -> Result<StreamReport>
where
    T::Sender: Send,
    T::Receiver: Send,
{
    pin_producer(cfg)?;
    crate::wait::set_spin(cfg.spin, cfg.shares_one_cpu());
    let (size, verify, producers) = (cfg.size, cfg.verify, cfg.producers);
    let mut link = connect_shared::<T>(cfg, |_| Role::SharedSink {
        size,
        verify,
        producers,
    })?;
    let senders = std::mem::take(&mut link.senders);
    let start = Barrier::new(producers + 1);
    let mut started = Instant::now();
    let produced = std::thread::scope(|scope| {
        let producers = scope.spawn(|| {
            run_producers(cfg, senders, |p, tx| {
                // Every producer meets the others at `start`, whatever
                // happened to its warm-up, so that none waits for ever.
                let warmup = share(cfg.warmup, producers, p);
                let count = share(cfg.count, producers, p);
                let mut msg = vec![0u8; size];
                let send = |tx: &mut T::Sender, msg: &mut Vec<u8>, seq: u64| {
                    payload::fill(msg, shared_stamp(p, seq), verify);
                    tx.send(msg)
                };
                let mut result = (0..warmup).try_for_each(|seq| send(tx, &mut msg, seq));
                start.wait();
                let cpu_start = thread_cpu();
                if result.is_ok() {
                    result = (warmup..warmup + count).try_for_each(|seq| send(tx, &mut msg, seq));
                }
                result?;
                Ok(thread_cpu().saturating_sub(cpu_start))
            })
        });
        start.wait();
        started = Instant::now();
        producers
            .join()
            .unwrap_or_else(|_| Err(HarnessError::Other("the producers panicked".into())))
    });
    let result = produced.and_then(|cpus| {
        let sent: Vec<u64> = (0..producers)
            .map(|p| share(cfg.warmup, producers, p) + share(cfg.count, producers, p))
            .collect();
        let consumers_cpu = check_tallies(&mut link, cfg, &sent)?;
        let elapsed = started.elapsed();
        let cpu = consumers_cpu.map(|c| c + cpus.iter().sum::<Duration>());
        Ok(StreamReport {
            msgs_per_s: per_second(cfg.count, elapsed),
            bytes_per_s: per_second(cfg.count * size as u64, elapsed),
            cpu_ns_per_msg: cpu.map(|c| c.as_nanos() as f64 / cfg.count.max(1) as f64),
        })
    });
    match result {
        Ok(report) => link.finish().map(|()| report),
        Err(e) => Err(link.explain(e)),
    }
}

/// The demo with several producers or consumers: each producer sends
/// `count` tasks ("producer P: task I") with the pause between them, each
/// consumer prints the tasks it gets and says so ([`Control::Got`]); at the
/// end every task must have reached exactly one consumer, or have been
/// reported lost by the channel after the death of the consumer that had it
/// in hand, and nothing else. A consumer that dies leaves the others to
/// finish the run; when all are gone, the producers' error says so.
pub fn demo_shared<T: Transport>(cfg: &RunConfig) -> Result<SharedDemo>
where
    T::Sender: Send,
    T::Receiver: Send,
{
    pin_producer(cfg)?;
    let producers = cfg.producers;
    let mut link = connect_shared::<T>(cfg, |consumer| Role::SharedDemo {
        producers,
        consumer,
    })?;
    let senders = std::mem::take(&mut link.senders);
    let numbers: Vec<Option<u32>> = senders.iter().map(T::producer_number).collect();
    let losses = senders.first().and_then(T::loss_report);
    let consumers = std::mem::take(&mut link.consumers);
    let start = Barrier::new(producers + 1);
    let (produced, heard) = std::thread::scope(|scope| {
        let collectors: Vec<_> = consumers
            .into_iter()
            .map(|(answers, place)| scope.spawn(move || collect::<T>(cfg, answers, place)))
            .collect();
        let handle = scope.spawn(|| {
            run_producers(cfg, senders, |p, tx| {
                start.wait();
                for i in 0..cfg.count {
                    if i > 0 {
                        std::thread::sleep(cfg.interval);
                    }
                    let task = task_text(p, i);
                    println!("producer {p}: sent {task:?}");
                    tx.send(task.as_bytes())?;
                }
                Ok(Duration::ZERO)
            })
        });
        start.wait();
        let produced = handle
            .join()
            .unwrap_or_else(|_| Err(HarnessError::Other("the producers panicked".into())));
        let heard: Vec<Heard> = collectors
            .into_iter()
            .map(|c| {
                c.join()
                    .unwrap_or_else(|_| Heard::failed("a collector panicked"))
            })
            .collect();
        (produced, heard)
    });
    let mut report = SharedDemo::default();
    for (j, h) in heard.iter().enumerate() {
        match &h.ended {
            Ok(()) => {}
            Err(HarnessError::PeerDied { pid, how }) => report.died.push((j, *pid, how.clone())),
            Err(e) => return Err(HarnessError::Other(format!("consumer {j}: {e}"))),
        }
        if let Err(why) = &h.end {
            return Err(HarnessError::Verify(format!("consumer {j}: {why}")));
        }
    }
    if let Err(e) = produced {
        // Every consumer gone: that is the cause.
        return Err(match report.died.first() {
            Some((_, pid, how)) => HarnessError::PeerDied {
                pid: *pid,
                how: how.clone(),
            },
            None => e,
        });
    }
    let lost = losses.map(|report| report()).unwrap_or_default();
    report.lost = lost
        .iter()
        .filter_map(|l| {
            let p = numbers.iter().position(|&n| n == Some(l.producer))?;
            Some((p, l.seq))
        })
        .collect();
    report.per_consumer = heard.iter().map(|h| h.got.len() as u64).collect();
    check_demo(cfg, &heard, &report)?;
    Ok(report)
}

/// What one consumer of the demo said, and how it ended.
struct Heard {
    /// The tasks it said it got, in order.
    got: Vec<(usize, u64)>,
    /// Its last word: `Done` agreeing with what it said, or the error that
    /// ended it (`Ok` also when it died: its place tells).
    end: std::result::Result<(), String>,
    /// How its process or thread ended.
    ended: Result<()>,
}

impl Heard {
    fn failed(why: &str) -> Heard {
        Heard {
            got: Vec::new(),
            end: Err(why.to_owned()),
            ended: Ok(()),
        }
    }
}

/// Reads what a demo consumer says until it is done or gone, then waits
/// for it to end.
fn collect<T: Transport>(cfg: &RunConfig, mut answers: T::Receiver, place: Place) -> Heard {
    let mut got = Vec::new();
    let end = loop {
        match cfg.wait.recv_with(&mut answers, Control::decode) {
            Ok(Ok(Control::Got { producer, seq })) => got.push((producer as usize, seq)),
            Ok(Ok(Control::Done { tally, .. })) => {
                let said: u64 = tally.iter().map(|t| t.count).sum();
                break if said == got.len() as u64 {
                    Ok(())
                } else {
                    Err(format!(
                        "said it got {} tasks, then {said} in all",
                        got.len()
                    ))
                };
            }
            Ok(Ok(Control::Fail(why))) => break Err(why),
            Ok(Ok(other)) => break Err(format!("an unexpected {other:?}")),
            Ok(Err(e)) => break Err(e.to_string()),
            // Gone without a word: how, its place tells.
            Err(e) if e.is_disconnected() => break Ok(()),
            Err(e) => break Err(e.to_string()),
        }
    };
    drop(answers);
    let ended = place.finish();
    Heard { got, end, ended }
}

/// The demo's check: no task twice, and every task sent received or
/// reported lost, with no more reported than consumers died.
fn check_demo(cfg: &RunConfig, heard: &[Heard], report: &SharedDemo) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (j, h) in heard.iter().enumerate() {
        for &(p, i) in &h.got {
            if !seen.insert((p, i)) {
                return Err(HarnessError::Verify(format!(
                    "producer {p}'s task {i} was received twice (the second time by consumer {j})"
                )));
            }
        }
    }
    if report.lost.len() > report.died.len() {
        return Err(HarnessError::Verify(format!(
            "the channel reported {} tasks lost for {} deaths: {:?}",
            report.lost.len(),
            report.died.len(),
            report.lost
        )));
    }
    for p in 0..cfg.producers {
        for i in 0..cfg.count {
            if !seen.contains(&(p, i)) && !report.lost.contains(&(p, i)) {
                return Err(HarnessError::Verify(format!(
                    "producer {p}'s task {i} was sent, and neither received nor reported lost"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn shares_add_up() {
        for (total, parts) in [(10, 3), (0, 4), (7, 7), (100_001, 4)] {
            let sum: u64 = (0..parts).map(|p| share(total, parts, p)).sum();
            assert_eq!(sum, total);
        }
    }
}
