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
//! would take a wall-clock deadline), and between slices look at the
//! channel's presence link, a Unix socket pair, one side held by each end,
//! that reads as hung up once the other end is dropped or its process dies,
//! and at the other end's process through the core's liveness service,
//! where it is known (see [`ends`]). A sender blocked on a full queue whose
//! receiver went wakes with `Disconnected`, in this process or another, and
//! so does a receiver whose sender went, once the queue is empty: **the end
//! of the stream** is that, so a 0-byte message stays a message.
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

use std::os::fd::OwnedFd;
use std::sync::Arc;

use ipc_core::liveness::{PeerProcess, ProcessId};
use ipc_core::names::CleanReport;
use ipc_core::{check_mode, Endpoint, Error, Handover, Limit, Mode, Options, Result, Transport};

pub use ends::{MqReceiver, MqSender};

use ends::End;
use limits::Bounds;
use queue::Queue;

/// POSIX message queues, process or thread mode.
#[derive(Debug, Clone, Copy)]
pub struct Mqueue;

fn receiver(end: End) -> MqReceiver {
    let size = end.queue.msgsize;
    MqReceiver {
        end,
        buf: vec![0; size.max(1)],
    }
}

/// The presence link: a Unix socket pair nothing is written on.
fn presence_link() -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::sys("make the queue's presence link", e))
}

/// The endpoint of an end handed to a child: its queue descriptor and its
/// side of the presence link, and who created it.
fn export(end: End, handover: &mut Handover) -> Result<Endpoint> {
    let mut ep = Endpoint::new(Mqueue::NAME, Mqueue::VARIANT, end.queue.msgsize);
    ep.extra = vec![ProcessId::current().pack()];
    let End {
        queue, presence, ..
    } = end;
    handover.add_fd(&mut ep, queue.into_fd());
    handover.add_fd(&mut ep, presence);
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
    let presence = ep.take_fd(1)?;
    Ok(End::new(queue, presence, Some(creator), None))
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
        let named = Arc::new(named);
        let (mine, theirs) = presence_link()?;
        Ok((
            MqSender {
                end: End::new(send, mine, None, Some(Arc::clone(&named))),
                limit,
            },
            receiver(End::new(recv, theirs, None, Some(named))),
        ))
    }

    fn message_limit() -> Limit {
        Bounds::here().message_limit()
    }

    fn capacity_limit() -> Limit {
        let b = Bounds::here();
        Limit {
            bytes: b.budget() as usize,
            name: "an eighth of RLIMIT_MSGQUEUE (the bytes one user's queues may hold)",
        }
    }

    fn set_peer_of_sender(end: &mut MqSender, peer: &PeerProcess) -> Result<()> {
        end.end.peer = Some(peer.id());
        Ok(())
    }

    fn set_peer_of_receiver(end: &mut MqReceiver, peer: &PeerProcess) -> Result<()> {
        end.end.peer = Some(peer.id());
        Ok(())
    }

    fn export_sender(end: MqSender, handover: &mut Handover) -> Result<Endpoint> {
        export(end.end, handover)
    }

    fn export_receiver(end: MqReceiver, handover: &mut Handover) -> Result<Endpoint> {
        export(end.end, handover)
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
