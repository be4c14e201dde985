//! The transport: making the buffer and its first two ends, handing ends
//! to other processes and opening them there, cleaning up after crashes.

use super::*;

impl Transport for Semaphores {
    const NAME: &'static str = "semaphores";
    const VARIANT: &'static str = "posix";
    const MODES: &'static [Mode] = &[Mode::Process, Mode::Thread];
    const MULTI_PRODUCER: bool = true;
    const MULTI_CONSUMER: bool = true;
    type Sender = SemSender;
    type Receiver = SemReceiver;

    fn channel(mode: Mode, opts: &Options) -> Result<(SemSender, SemReceiver)> {
        check_mode::<Self>(mode)?;
        let slot_size = crate::SLOT_LIMIT.lower(opts.max_message).0;
        let slots = match opts.capacity {
            None => (crate::DEFAULT_CAPACITY / slot_size.max(1)).clamp(1, crate::DEFAULT_SLOTS),
            Some(bytes) => {
                crate::CAPACITY_LIMIT.check_capacity(bytes)?;
                (bytes / slot_size.max(1)).clamp(1, crate::MAX_SLOTS)
            }
        };
        let geo = Geometry { slot_size, slots };
        let buffer = Buffer::create(Self::NAME, geo, opts.connect_timeout)?;
        let tx = buffer.join(PRODUCER)?;
        let rx = buffer.join(CONSUMER)?;
        Ok((
            SemSender {
                end: End::new(Arc::clone(&buffer), tx, PRODUCER),
            },
            SemReceiver {
                end: End::new(buffer, rx, CONSUMER),
                buf: Vec::new(),
            },
        ))
    }

    fn message_limit() -> Limit {
        crate::SLOT_LIMIT
    }

    fn capacity_limit() -> Limit {
        crate::CAPACITY_LIMIT
    }

    fn clone_sender(end: &SemSender) -> Result<SemSender> {
        let b = Arc::clone(&end.end.buffer);
        let me = b.join(PRODUCER)?;
        Ok(SemSender {
            end: End::new(b, me, PRODUCER),
        })
    }

    fn clone_receiver(end: &SemReceiver) -> Result<SemReceiver> {
        let b = Arc::clone(&end.end.buffer);
        let me = b.join(CONSUMER)?;
        Ok(SemReceiver {
            end: End::new(b, me, CONSUMER),
            buf: Vec::new(),
        })
    }

    fn set_peer_of_sender(end: &mut SemSender, peer: &PeerProcess) -> Result<()> {
        end.end.buffer.expect(peer)
    }

    fn set_peer_of_receiver(end: &mut SemReceiver, peer: &PeerProcess) -> Result<()> {
        end.end.buffer.expect(peer)
    }

    fn export_sender(mut end: SemSender, _handover: &mut Handover) -> Result<Endpoint> {
        end.end.hand_over()
    }

    fn export_receiver(mut end: SemReceiver, _handover: &mut Handover) -> Result<Endpoint> {
        end.end.hand_over()
    }

    fn open_sender(ep: Endpoint) -> Result<SemSender> {
        let (buffer, me) = open(&ep, PRODUCER)?;
        Ok(SemSender {
            end: End::new(buffer, me, PRODUCER),
        })
    }

    fn open_receiver(ep: Endpoint) -> Result<SemReceiver> {
        let (buffer, me) = open(&ep, CONSUMER)?;
        Ok(SemReceiver {
            end: End::new(buffer, me, CONSUMER),
            buf: Vec::new(),
        })
    }

    fn loss_report(end: &SemSender) -> Option<LossReport> {
        let buffer = Arc::clone(&end.end.buffer);
        // The lock fails only when the buffer can no longer be used at all,
        // and then the run has failed and says so.
        Some(Box::new(move || buffer.lost().unwrap_or_default()))
    }

    fn producer_number(end: &SemSender) -> Option<u32> {
        Some(end.producer_number())
    }

    fn clean() -> Result<CleanReport> {
        ipc_shm::clean(Self::NAME)
    }
}

fn open(ep: &Endpoint, role: u32) -> Result<(Arc<Buffer>, usize)> {
    ep.expect(Semaphores::NAME, Semaphores::VARIANT)?;
    let name = ep.name.as_deref().ok_or_else(|| {
        Error::BadEndpoint("a semaphore endpoint carries its buffer's name".into())
    })?;
    let me = ep
        .extra
        .first()
        .map(|&i| i as usize)
        .filter(|&i| i < MAX_PARTICIPANTS)
        .ok_or_else(|| {
            Error::BadEndpoint("a semaphore endpoint carries its end's number".into())
        })?;
    let buffer = Buffer::open(name)?;
    buffer.claim(me, role)?;
    Ok((buffer, me))
}
