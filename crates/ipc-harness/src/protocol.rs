//! What the consumer side of a run does with each message (its [`Role`]),
//! and its loop. The same code runs in a thread, a child process or a
//! coroutine.

use std::time::Duration;

use ipc_core::{Receiver, RecvInPlace, Sender};
use serde::{Deserialize, Serialize};

use crate::control::{Control, Tally};
use crate::error::Result;
use crate::payload::{self, Verify};
use crate::sys::thread_cpu;
use crate::wait::Wait;

/// With several producers, the high bits of a message's 8-byte stamp name
/// its producer and the low ones its number from that producer.
pub const PRODUCER_SHIFT: u32 = 40;

/// The stamp of message `seq` of producer `p`.
pub fn shared_stamp(p: usize, seq: u64) -> u64 {
    ((p as u64) << PRODUCER_SHIFT) | seq
}

/// What the consumer does with each message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Role {
    /// Sends every message back unchanged; after the last timed one, reports
    /// its CPU time ([`Control::Cpu`]) when `report_cpu`.
    Echo {
        /// Untimed messages before the timed ones.
        warmup: u64,
        /// Timed messages, at most.
        count: u64,
        /// Whether to measure and report its own CPU time.
        report_cpu: bool,
        /// The size of every message of the run: one of another size is
        /// the producer's word that it stopped early (its time budget ran
        /// out), and is answered with the CPU report instead of an echo.
        size: usize,
    },
    /// Verifies every message; answers [`Control::Warm`] after the warm-up,
    /// [`Control::Done`] after the last, [`Control::Fail`] at the first bad
    /// message.
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
    /// One of several consumers, or the consumer of several producers:
    /// verifies every message and that each producer's come in order, and
    /// when the producers are gone answers [`Control::Done`] with what it
    /// got from each.
    SharedSink {
        /// The size of every message.
        size: usize,
        /// How much of each message to check.
        verify: Verify,
        /// How many producers send.
        producers: usize,
    },
    /// Prints each task as it arrives and acknowledges it.
    Demo,
    /// Prints each task as it arrives (one of several consumers, or the
    /// consumer of several producers); when the producers are gone answers
    /// [`Control::Done`] with what it got from each.
    SharedDemo {
        /// How many producers send.
        producers: usize,
        /// This consumer's number.
        consumer: usize,
    },
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
    cpu_start: Option<Duration>,
    /// Per producer (shared roles): what arrived, and the next number due.
    tally: Vec<Tally>,
    next: Vec<u64>,
}

impl<S: Sender> Consumer<S> {
    /// A consumer playing `role`, answering on `back`.
    pub fn new(role: Role, back: S) -> Self {
        let producers = match role {
            Role::SharedSink { producers, .. } | Role::SharedDemo { producers, .. } => producers,
            _ => 0,
        };
        Consumer {
            role,
            back,
            seen: 0,
            cpu_start: None,
            tally: vec![Tally::default(); producers],
            next: vec![0; producers],
        }
    }

    fn answer(&mut self, control: Control) -> ipc_core::Result<()> {
        self.back.send(&control.encode())
    }

    fn cpu_used(&self) -> Option<u64> {
        self.cpu_start
            .map(|start| thread_cpu().saturating_sub(start).as_nanos() as u64)
    }

    /// Handles one message: an echo inline (it lies on the path of every
    /// round trip a ping-pong times), every other role out of line.
    #[inline(always)]
    pub fn handle(&mut self, msg: &[u8]) -> ipc_core::Result<Flow> {
        match self.role {
            Role::Echo {
                warmup,
                count,
                report_cpu,
                size,
            } if msg.len() == size && !(report_cpu && self.seen == warmup) => {
                self.echo(msg, warmup + count, report_cpu)
            }
            _ => self.handle_out_of_line(msg),
        }
    }

    /// Sends `msg` back, and after the echo numbered `last` reports the CPU
    /// time when `report_cpu`.
    #[inline(always)]
    fn echo(&mut self, msg: &[u8], last: u64, report_cpu: bool) -> ipc_core::Result<Flow> {
        self.back.send(msg)?;
        self.seen += 1;
        if report_cpu && self.seen == last {
            let cpu = self.cpu_used();
            self.answer(Control::Cpu(cpu))?;
        }
        Ok(Flow::Continue)
    }

    /// [`Consumer::handle`] for all but the echo's common case.
    #[inline(never)]
    fn handle_out_of_line(&mut self, msg: &[u8]) -> ipc_core::Result<Flow> {
        match self.role {
            Role::Echo {
                warmup,
                count,
                report_cpu,
                size,
            } => {
                if msg.len() != size {
                    // Stopped early: the CPU time so far, and no echo.
                    if report_cpu {
                        let cpu = self.cpu_used();
                        self.answer(Control::Cpu(cpu))?;
                    }
                    return Ok(Flow::Continue);
                }
                if report_cpu && self.seen == warmup {
                    self.cpu_start = Some(thread_cpu());
                }
                self.echo(msg, warmup + count, report_cpu)?;
            }
            Role::Sink {
                size,
                warmup,
                count,
                verify,
                report_cpu,
            } => {
                if report_cpu && self.seen == warmup {
                    self.cpu_start = Some(thread_cpu());
                }
                if let Err(why) = payload::check(msg, self.seen, size, verify) {
                    self.answer(Control::Fail(why))?;
                    return Ok(Flow::Stop);
                }
                self.seen += 1;
                if warmup > 0 && self.seen == warmup {
                    self.answer(Control::Warm)?;
                }
                if self.seen == warmup + count {
                    let cpu_ns = if report_cpu { self.cpu_used() } else { Some(0) };
                    self.answer(Control::Done {
                        cpu_ns,
                        tally: Vec::new(),
                    })?;
                }
            }
            Role::SharedSink {
                size,
                verify,
                producers,
            } => {
                if self.cpu_start.is_none() {
                    self.cpu_start = Some(thread_cpu());
                }
                if let Err(why) = self.check_shared(msg, size, verify, producers) {
                    self.answer(Control::Fail(why))?;
                    return Ok(Flow::Stop);
                }
            }
            Role::Demo => {
                println!("consumer: got {:?}", String::from_utf8_lossy(msg));
                self.back.send(msg)?;
            }
            Role::SharedDemo {
                producers,
                consumer,
            } => {
                let text = String::from_utf8_lossy(msg).into_owned();
                println!("consumer {consumer}: got {text:?}");
                match parse_task(&text).filter(|&(p, _)| p < producers) {
                    Some((p, i)) => {
                        self.tally[p].add(i);
                        self.answer(Control::Got {
                            producer: p as u32,
                            seq: i,
                        })?;
                    }
                    None => {
                        self.answer(Control::Fail(format!("{text:?} is not a task")))?;
                        return Ok(Flow::Stop);
                    }
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// Checks a message of one of several producers: its stamp names a
    /// producer, its number follows the last one this consumer got from
    /// that producer (other consumers may have taken those in between), and
    /// its bytes are those of that message.
    fn check_shared(
        &mut self,
        msg: &[u8],
        size: usize,
        verify: Verify,
        producers: usize,
    ) -> std::result::Result<(), String> {
        let stamp = msg
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| format!("a message of {} bytes has no stamp", msg.len()))?;
        let p = (stamp >> PRODUCER_SHIFT) as usize;
        let seq = stamp & ((1 << PRODUCER_SHIFT) - 1);
        if p >= producers {
            return Err(format!("a message names producer {p} of {producers}"));
        }
        if seq < self.next[p] {
            return Err(format!(
                "producer {p}'s message {seq} came after its message {}: duplicated or reordered",
                self.next[p] - 1
            ));
        }
        payload::check(msg, stamp, size, verify)?;
        self.next[p] = seq + 1;
        self.tally[p].add(seq);
        Ok(())
    }

    /// The producers are gone: a shared role reports what it got.
    pub fn finish(&mut self) -> ipc_core::Result<()> {
        if matches!(self.role, Role::SharedSink { .. } | Role::SharedDemo { .. }) {
            let done = Control::Done {
                cpu_ns: self.cpu_used().or(Some(0)),
                tally: self.tally.clone(),
            };
            self.answer(done)?;
        }
        Ok(())
    }
}

/// The task text of the shared demo: `producer P: task I`.
pub fn task_text(p: usize, i: u64) -> String {
    format!("producer {p}: task {i}")
}

fn parse_task(text: &str) -> Option<(usize, u64)> {
    let (p, i) = text.strip_prefix("producer ")?.split_once(": task ")?;
    Some((p.parse().ok()?, i.parse().ok()?))
}

/// The consumer's loop in a thread or a child process: handles messages
/// until the producers close the channel (then a shared role reports).
pub fn consume<R: Receiver, S: Sender>(
    rx: &mut R,
    consumer: &mut Consumer<S>,
    wait: Wait,
) -> Result<()> {
    consume_by(consumer, |c| {
        wait.recv_with(
            rx,
            #[inline(always)]
            |m| c.handle(m),
        )
    })
}

/// [`consume`] with each message shown in place (zero-copy): the consumer
/// checks a stream's messages where the producer wrote them, and an echo
/// copies each straight from one channel's memory into the other's.
pub fn consume_in_place<R: RecvInPlace, S: Sender>(
    rx: &mut R,
    consumer: &mut Consumer<S>,
    wait: Wait,
) -> Result<()> {
    consume_by(consumer, |c| wait.recv_in_place_with(rx, |m| c.handle(m)))
}

/// The consumer's loop over `next`, which waits for a message and has the
/// consumer handle it.
#[inline(always)]
fn consume_by<S: Sender>(
    consumer: &mut Consumer<S>,
    mut next: impl FnMut(&mut Consumer<S>) -> ipc_core::Result<ipc_core::Result<Flow>>,
) -> Result<()> {
    loop {
        match next(consumer) {
            Ok(Ok(Flow::Continue)) => {}
            Ok(Ok(Flow::Stop)) => return Ok(()),
            // The channel back to the producer is gone: so is the run.
            Ok(Err(e)) if e.is_disconnected() => return Ok(()),
            Err(e) if e.is_disconnected() => {
                return match consumer.finish() {
                    Err(e) if !e.is_disconnected() => Err(e.into()),
                    _ => Ok(()),
                }
            }
            Ok(Err(e)) | Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_texts_parse_back() {
        assert_eq!(parse_task(&task_text(3, 17)), Some((3, 17)));
        assert_eq!(parse_task("task 3"), None);
    }
}
