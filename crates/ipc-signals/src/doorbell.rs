//! The `doorbell` variant: the messages go through ipc-shm's ring, and a
//! signal only wakes a side that announced it sleeps, in place of the
//! ring's futex. This is what signals are for in real programs.
//!
//! The signals are received through signal-hook's handler (its
//! `extended-siginfo` feature; the `WithOrigin` exfiltrator gives the
//! sender's pid), which writes a byte to a pipe that the sleeping side
//! polls with its own timeout. So the doorbell's signal numbers (the top of
//! the real-time range, see [`crate::numbers`]) are never blocked, and the
//! handler stays installed for the life of the process: signal-hook never
//! restores the default action, so a doorbell that rings after its channel
//! was dropped is ignored instead of killing the process. Signals can
//! coalesce or be lost; a doorbell tolerates that, since after every
//! wake-up the side re-checks the ring and its sleeps are bounded: a lost
//! ring costs latency, never a message.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipc_core::liveness::{PeerProcess, ProcessId};
use ipc_core::names::CleanReport;
use ipc_core::{check_mode, Endpoint, Error, Handover, Limit, Mode, Options, Result, Transport};
use ipc_shm::{Bell, ShmReceiver, ShmRing, ShmSender, Side};
use nix::poll::PollFlags;
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::WithOrigin;

use crate::numbers::{doorbell_bounds, Number};
use crate::sys;

/// The ring's messages, a signal as the doorbell: process or thread mode.
#[derive(Debug, Clone, Copy)]
pub struct Doorbell;

/// A doorbell: one signal number for a ring, a signal-hook pipe for each
/// side that sleeps in this process, and the peers it rings.
pub struct SignalBell {
    number: Number,
    /// Per side (producer, consumer): its pipe from the handler.
    sides: [Mutex<Option<SignalDelivery<UnixStream, WithOrigin>>>; 2],
    /// Rings from a process other than the peer.
    foreign: AtomicU64,
    /// Per side: the one process ever rung as that side's holder, with its
    /// pidfd if the kernel gave one.
    rung: [Mutex<Option<PeerProcess>>; 2],
}

impl std::fmt::Debug for SignalBell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalBell")
            .field("signal", &self.number.get())
            .field("foreign", &self.foreign.load(Ordering::Relaxed))
            .finish()
    }
}

fn index(side: Side) -> usize {
    match side {
        Side::Producer => 0,
        Side::Consumer => 1,
    }
}

impl SignalBell {
    fn new(number: Number) -> Arc<Self> {
        Arc::new(SignalBell {
            number,
            sides: [Mutex::new(None), Mutex::new(None)],
            foreign: AtomicU64::new(0),
            rung: [Mutex::new(None), Mutex::new(None)],
        })
    }

    /// Its signal.
    pub fn signal(&self) -> i32 {
        self.number.get()
    }

    /// Rings that came from a process other than the peer (`si_pid`); they
    /// woke the side all the same, which found nothing new and slept again.
    /// This filters accidents, not an attacker: `si_pid` can be forged.
    pub fn foreign_rings(&self) -> u64 {
        self.foreign.load(Ordering::Relaxed)
    }

    /// The holder of `side`'s end, `holder` as the region names it, with a
    /// pidfd opened (once) and checked to name it. An end is held by one
    /// process for the channel's life, so once one was rung, a region that
    /// names another (a peer that rewrote the owner word) is not believed:
    /// nobody is rung (the sleeper's bounded sleep and liveness checks take
    /// over). The first holder rung is trusted as
    /// far as the region is, which only this user can write (0600).
    fn peer(&self, side: Side, holder: ProcessId) -> Option<PeerProcess> {
        let mut rung = self.rung[index(side)].lock().ok()?;
        if let Some(p) = rung.as_ref() {
            if p.id() == holder {
                return Some(p.clone());
            }
            return None;
        }
        let p = PeerProcess::of_pid(holder.pid()).ok()?;
        // The pid may have gone to another process since the region named it.
        if p.id() != holder {
            return None;
        }
        *rung = Some(p.clone());
        Some(p)
    }
}

impl Bell for SignalBell {
    fn prepare(&self, side: Side) -> Result<()> {
        let mut slot = self.sides[index(side)]
            .lock()
            .map_err(|_| Error::io("prepare the doorbell", std::io::ErrorKind::Other))?;
        if slot.is_none() {
            let (read, write) =
                UnixStream::pair().map_err(|e| Error::io("make the doorbell's pipe", e))?;
            let delivery =
                SignalDelivery::with_pipe(read, write, WithOrigin::default(), [self.signal()])
                    .map_err(|e| Error::io("install the doorbell's signal handler", e))?;
            *slot = Some(delivery);
        }
        Ok(())
    }

    fn sleep(
        &self,
        side: Side,
        _futex: &std::sync::atomic::AtomicU32,
        _seq: u32,
        limit: Duration,
        peer: Option<ProcessId>,
    ) {
        let Ok(mut slot) = self.sides[index(side)].lock() else {
            return;
        };
        let Some(delivery) = slot.as_mut() else {
            return;
        };
        let fd = delivery.get_read().as_fd();
        // A ring that came after the announcement but before this poll
        // left its byte in the pipe: the poll returns at once.
        let _ = ipc_core::fdstream::wait_ready(fd, PollFlags::POLLIN, Some(limit));
        let from = peer.map(|p| p.pid() as i32);
        for origin in delivery.pending() {
            let pid = origin.process.map(|p| p.pid);
            if from.is_some() && pid != from {
                self.foreign.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn ring(&self, side: Side, _futex: &std::sync::atomic::AtomicU32, holder: Option<ProcessId>) {
        let Some(holder) = holder else {
            return; // nobody to ring yet: the sleep's bound covers it
        };
        let signo = self.signal();
        if holder == ProcessId::current() {
            let _ = sys::queue_to_pid(sys::getpid(), signo, 0);
            return;
        }
        if let Some(peer) = self.peer(side, holder) {
            let _ = match peer.pidfd() {
                Some(fd) => sys::queue_to_pidfd(fd, signo, 0),
                None => sys::queue_to_pid(holder.pid() as i32, signo, 0),
            };
        }
    }
}

/// The sending end: the ring's, with the doorbell.
#[derive(Debug)]
pub struct DoorbellSender {
    inner: ShmSender<ipc_shm::Native>,
    bell: Arc<SignalBell>,
}

/// The receiving end: the ring's, with the doorbell.
#[derive(Debug)]
pub struct DoorbellReceiver {
    inner: ShmReceiver<ipc_shm::Native>,
    bell: Arc<SignalBell>,
}

impl DoorbellReceiver {
    /// Rings from processes other than the peer (see [`SignalBell::foreign_rings`]).
    pub fn foreign_rings(&self) -> u64 {
        self.bell.foreign_rings()
    }

    /// How long a sleep lasts at most before the sender's liveness is
    /// checked (50 ms by default): a longer one shows whether the doorbell
    /// really wakes the receiver.
    pub fn set_sleep_limit(&self, limit: Duration) {
        self.inner.set_sleep_limit(limit);
    }
}

impl Transport for Doorbell {
    const NAME: &'static str = "signals";
    const VARIANT: &'static str = "doorbell";
    const MODES: &'static [Mode] = &[Mode::Process, Mode::Thread];
    type Sender = DoorbellSender;
    type Receiver = DoorbellReceiver;

    fn channel(mode: Mode, opts: &Options) -> Result<(DoorbellSender, DoorbellReceiver)> {
        check_mode::<Self>(mode)?;
        let bell = SignalBell::new(Number::take_free(doorbell_bounds(), "doorbell")?);
        let (tx, rx) = ShmRing::channel_with_bell(Self::NAME, mode, opts, bell.clone())?;
        Ok((
            DoorbellSender {
                inner: tx,
                bell: Arc::clone(&bell),
            },
            DoorbellReceiver { inner: rx, bell },
        ))
    }

    fn message_limit() -> Limit {
        <ShmRing as Transport>::message_limit()
    }

    fn capacity_limit() -> Limit {
        <ShmRing as Transport>::capacity_limit()
    }

    fn set_peer_of_sender(end: &mut DoorbellSender, peer: &PeerProcess) -> Result<()> {
        ShmRing::set_peer_of_sender(&mut end.inner, peer)
    }

    fn set_peer_of_receiver(end: &mut DoorbellReceiver, peer: &PeerProcess) -> Result<()> {
        ShmRing::set_peer_of_receiver(&mut end.inner, peer)
    }

    fn export_sender(end: DoorbellSender, handover: &mut Handover) -> Result<Endpoint> {
        let signo = end.bell.signal();
        Ok(endpoint(
            ShmRing::export_sender(end.inner, handover)?,
            signo,
        ))
    }

    fn export_receiver(end: DoorbellReceiver, handover: &mut Handover) -> Result<Endpoint> {
        let signo = end.bell.signal();
        Ok(endpoint(
            ShmRing::export_receiver(end.inner, handover)?,
            signo,
        ))
    }

    fn open_sender(ep: Endpoint) -> Result<DoorbellSender> {
        let bell = bell_of(&ep)?;
        let inner = ShmRing::open_sender_with_bell(&ep, bell.clone())?;
        Ok(DoorbellSender { inner, bell })
    }

    fn open_receiver(ep: Endpoint) -> Result<DoorbellReceiver> {
        let bell = bell_of(&ep)?;
        let inner = ShmRing::open_receiver_with_bell(&ep, bell.clone())?;
        Ok(DoorbellReceiver { inner, bell })
    }

    fn clean() -> Result<CleanReport> {
        ipc_shm::clean(Self::NAME)
    }
}

/// The ring's endpoint, made the doorbell's, with its signal.
fn endpoint(mut ep: Endpoint, signo: i32) -> Endpoint {
    ep.transport = format!("{}/{}", Doorbell::NAME, Doorbell::VARIANT);
    ep.extra.push(signo as u64);
    ep
}

/// In the child: the doorbell of an endpoint, its signal held here.
fn bell_of(ep: &Endpoint) -> Result<Arc<SignalBell>> {
    ep.expect(Doorbell::NAME, Doorbell::VARIANT)?;
    let signo = ep
        .extra
        .last()
        .and_then(|&s| i32::try_from(s).ok())
        .ok_or_else(|| Error::BadEndpoint("a doorbell endpoint carries its signal".into()))?;
    Ok(SignalBell::new(Number::take(signo, doorbell_bounds())?))
}

impl ipc_core::Sender for DoorbellSender {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.inner.send(msg)
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.inner.try_send(msg)
    }

    fn max_message(&self) -> usize {
        ipc_core::Sender::max_message(&self.inner)
    }
}

impl ipc_core::Receiver for DoorbellReceiver {
    fn recv(&mut self) -> Result<&[u8]> {
        self.inner.recv()
    }

    fn try_recv(&mut self) -> Result<&[u8]> {
        self.inner.try_recv()
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8]> {
        self.inner.recv_timeout(timeout)
    }

    fn max_message(&self) -> usize {
        ipc_core::Receiver::max_message(&self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether process `pid` got signal `signo`: it died of it, or has it
    /// pending (if it blocks it).
    fn got(child: &mut std::process::Child, signo: i32) -> bool {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        status
            .lines()
            .filter(|l| l.starts_with("ShdPnd:") || l.starts_with("SigPnd:"))
            .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
            .any(|mask| mask & (1 << (signo - 1)) != 0)
    }

    #[test]
    fn a_holder_word_rewritten_to_name_another_process_is_not_rung() {
        let bell =
            SignalBell::new(Number::take_free(doorbell_bounds(), "doorbell").expect("a number"));
        let signo = bell.signal();
        let futex = std::sync::atomic::AtomicU32::new(0);
        let sleeper = || {
            std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .expect("spawn sleep")
        };
        let (mut peer, mut stranger) = (sleeper(), sleeper());
        let id = |c: &std::process::Child| PeerProcess::of_child(c).expect("identity").id();
        // The consumer's holder, as the region names it: rung.
        bell.ring(Side::Consumer, &futex, Some(id(&peer)));
        let start = std::time::Instant::now();
        while !got(&mut peer, signo) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(got(&mut peer, signo), "the holder was not rung");
        // A peer rewrites the owner word to name another process: not rung.
        bell.ring(Side::Consumer, &futex, Some(id(&stranger)));
        std::thread::sleep(Duration::from_millis(200));
        let stranger_got = got(&mut stranger, signo);
        for c in [&mut peer, &mut stranger] {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(
            !stranger_got,
            "a process the region named afterwards was signalled"
        );
    }
}
