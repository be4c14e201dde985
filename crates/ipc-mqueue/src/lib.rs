//! POSIX message queues: the kernel keeps each message whole, so a message
//! is one `mq_send` and one `mq_receive`, with no framing; a 0-byte message
//! is a message.
//!
//! # Hello, world!
//!
//! ```
//! use ipc_core::{Mode, Options, Receiver, Sender, Transport};
//! use ipc_mqueue::Mqueue;
//!
//! let (mut tx, mut rx) = Mqueue::channel(Mode::Thread, &Options::default().max_message(64))?;
//! tx.send(b"hello through a queue")?;
//! tx.send(b"")?;
//! assert_eq!(rx.recv()?, b"hello through a queue");
//! assert_eq!(rx.recv()?, b"");
//! drop(tx);
//! assert!(rx.recv().is_err()); // the end, told apart from the empty message
//! # Ok::<(), ipc_core::Error>(())
//! ```
//!
//! # Semantics
//!
//! A channel is one queue, `/ipc-showcase.mqueue.<pid>.<start>.<random>`,
//! created owner-only (0600) and opened twice, non-blocking: once to send,
//! once to receive. Its name is unlinked when the creating process's last
//! end goes, on Ctrl-C, and by the next creation or `clean` after a killed
//! creator; a record of the name in `$TMPDIR` lets `clean` find it where
//! /dev/mqueue is not mounted. In process mode the child gets its end's
//! descriptor, not the name, and refuses a queue of another user.
//!
//! **Waits** use `poll` on the queue's descriptor in slices of
//! [`ends::LIVENESS_CHECK`], on the monotonic clock (`mq_timedreceive`
//! would take a wall-clock deadline), and between slices look at the other
//! side: in the same process through a shared flag, in another through the
//! core's liveness service (pid and start time). A sender blocked on a
//! full queue whose receiver died wakes with `Disconnected`, and so does a
//! receiver whose sender died, once the queue is empty.
//!
//! **The end of the stream** is told apart from an empty message by its
//! priority: data goes at priority 1, and a dropped sender's close notice,
//! an empty message, at priority 0, so it is received only after every
//! message sent before it.
//!
//! **Sizes**: see [`limits`]: the `max_message` option sets the queue's
//! message size, lowered to what binds (`TooLarge` names it), and
//! `capacity` its depth.

#[cfg(not(target_os = "linux"))]
compile_error!("ipc-mqueue uses Linux's mqueue descriptors, which poll.");

pub mod ends;
pub mod limits;
pub mod queue;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use ipc_core::liveness::{PeerProcess, ProcessId};
use ipc_core::names::CleanReport;
use ipc_core::{check_mode, Endpoint, Error, Handover, Limit, Mode, Options, Result, Transport};

pub use ends::{MqReceiver, MqSender};

use ends::{End, Other, Pair};
use limits::Bounds;
use queue::Queue;

/// POSIX message queues, process or thread mode.
#[derive(Debug, Clone, Copy)]
pub struct Mqueue;

fn end(queue: Queue, other: Other, named: Option<Arc<queue::Named>>) -> End {
    End {
        queue,
        other,
        _named: named,
        gone: false,
        last_look: Instant::now(),
        handed_over: false,
    }
}

fn receiver(end: End) -> MqReceiver {
    let size = end.queue.msgsize;
    MqReceiver {
        end,
        buf: vec![0; size.max(1)],
        len: 0,
    }
}

/// Marks the other end of a pair made here as handed to another process.
fn mark_away(other: &Other, sender_away: bool) {
    if let Other::Here(pair, _) = other {
        pair.mark_away(sender_away);
    }
}

/// Tells an end whose partner went to a child which process that is.
fn set_peer(other: &Other, peer: &PeerProcess) {
    if let Other::Here(_, slot) = other {
        if let Ok(mut slot) = slot.lock() {
            *slot = Some(peer.clone());
        }
    }
}

/// The endpoint of an end handed to a child: a copy of its descriptor
/// (the end itself then closes its own without a word), and who created it.
fn export(e: &mut End, handover: &mut Handover, sender: bool) -> Result<Endpoint> {
    let fd = e.queue.dup_fd()?;
    e.handed_over = true;
    mark_away(&e.other, sender);
    let mut ep = Endpoint::new(Mqueue::NAME, Mqueue::VARIANT, e.queue.msgsize);
    ep.extra = vec![ProcessId::current().pack()];
    handover.add_fd(&mut ep, fd);
    Ok(ep)
}

/// The end an endpoint describes, in the child.
fn adopt(mut ep: Endpoint) -> Result<End> {
    ep.expect(Mqueue::NAME, Mqueue::VARIANT)?;
    let creator = ep
        .extra
        .first()
        .and_then(|&w| ProcessId::unpack(w))
        .ok_or_else(|| Error::BadEndpoint("a queue endpoint names its creator".into()))?;
    let queue = Queue::adopt(ep.take_fd(0)?)?;
    Ok(end(queue, Other::Creator(creator), None))
}

impl Transport for Mqueue {
    const NAME: &'static str = "mqueue";
    const VARIANT: &'static str = "posix";
    const MODES: &'static [Mode] = &[Mode::Process, Mode::Thread];
    type Sender = MqSender;
    type Receiver = MqReceiver;

    fn channel(mode: Mode, opts: &Options) -> Result<(MqSender, MqReceiver)> {
        check_mode::<Self>(mode)?;
        let bounds = Bounds::here();
        let (msgsize, depth) = bounds.attributes(opts.max_message, opts.capacity);
        let (send, recv, named) = queue::create(msgsize, depth)?;
        let limit = if opts.max_message >= bounds.message_limit().bytes {
            bounds.message_limit().name
        } else {
            ipc_core::LIMIT_OPTION
        };
        let (pair, named) = (Arc::new(Pair::default()), Arc::new(named));
        let here = || Other::Here(Arc::clone(&pair), Mutex::new(None));
        Ok((
            MqSender {
                end: end(send, here(), Some(Arc::clone(&named))),
                limit,
            },
            receiver(end(recv, here(), Some(named))),
        ))
    }

    fn message_limit() -> Limit {
        Bounds::here().message_limit()
    }

    fn capacity_limit() -> Limit {
        let b = Bounds::here();
        Limit {
            bytes: b.budget() as usize,
            name: "a quarter of RLIMIT_MSGQUEUE (the bytes one user's queues may hold)",
        }
    }

    fn set_peer_of_sender(end: &mut MqSender, peer: &PeerProcess) -> Result<()> {
        set_peer(&end.end.other, peer);
        Ok(())
    }

    fn set_peer_of_receiver(end: &mut MqReceiver, peer: &PeerProcess) -> Result<()> {
        set_peer(&end.end.other, peer);
        Ok(())
    }

    fn export_sender(mut end: MqSender, handover: &mut Handover) -> Result<Endpoint> {
        export(&mut end.end, handover, true)
    }

    fn export_receiver(mut end: MqReceiver, handover: &mut Handover) -> Result<Endpoint> {
        export(&mut end.end, handover, false)
    }

    fn open_sender(ep: Endpoint) -> Result<MqSender> {
        let limit = Bounds::here().message_limit().name;
        Ok(MqSender {
            end: adopt(ep)?,
            limit,
        })
    }

    fn open_receiver(ep: Endpoint) -> Result<MqReceiver> {
        Ok(receiver(adopt(ep)?))
    }

    fn clean() -> Result<CleanReport> {
        queue::clean()
    }
}

ipc_core::conformance_tests!(mqueue_conformance, crate::Mqueue, Threads);
ipc_core::conformance_tests!(mqueue_process_conformance, crate::Mqueue, Processes);
