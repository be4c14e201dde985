//! The receiving end of `rt`: signals taken with `sigtimedwait`, only its
//! peer's, put together into messages.

use super::*;

/// How a receive waits.
#[derive(Clone, Copy)]
enum Wait {
    /// Not at all (`try_recv`).
    Poll,
    /// Until the deadline, or for ever.
    Until(Option<Instant>),
}

impl RtReceiver {
    pub(super) fn new(number: Arc<Number>, peer: Peer, max: usize) -> Self {
        let spills = matches!(peer, Peer::Process(_));
        if spills {
            spill::register(number.get());
        }
        RtReceiver {
            number,
            peer,
            assembler: Assembler::new(max),
            thread: None,
            spills,
            foreign: 0,
            idle: 0,
            gone: false,
            handed_over: false,
        }
    }

    /// Signals ignored because they did not come from the peer (`si_pid`)
    /// as a queued value (`SI_QUEUE`). This filters accidents, not an
    /// attacker: a process of the same user can forge `si_pid`.
    pub fn foreign_signals(&self) -> u64 {
        self.foreign
    }

    /// In thread mode, the first receive names this thread as the one the
    /// signals go to (blocking the signal here first); later receives must
    /// come from the same thread.
    fn on_its_thread(&mut self) -> Result<()> {
        let Peer::Thread(shared) = &self.peer else {
            return Ok(());
        };
        let me = std::thread::current().id();
        match self.thread {
            Some(t) if t == me => Ok(()),
            Some(_) => Err(Error::Unsupported {
                transport: "signals/rt",
                mode: Mode::Thread,
                hint: "a thread-mode signals receiver must stay on the thread of its first receive: the signals are aimed at that thread",
            }),
            None => {
                sys::block([self.number.get()])
                    .map_err(|e| Error::io("block the channel's signal", e))?;
                self.thread = Some(me);
                shared.tid.store(sys::gettid(), Ordering::Release);
                Ok(())
            }
        }
    }

    /// The pid the signals must come from.
    fn sender_pid(&self) -> Result<i32> {
        match &self.peer {
            Peer::Thread(_) => Ok(sys::getpid()),
            Peer::Process(_) => self.peer.process().map(|p| p.id().pid() as i32),
        }
    }

    /// Whether the sender is gone without a goodbye.
    fn sender_gone(&self) -> bool {
        match &self.peer {
            Peer::Thread(shared) => shared.sender_closed.load(Ordering::Acquire),
            Peer::Process(Some(p)) => !p.is_running(),
            Peer::Process(None) => false,
        }
    }

    /// Takes the next signal of the channel: spilled first, then from the
    /// kernel, waiting up to `slice`.
    fn take(&self, slice: Duration) -> Result<Option<sys::Received>> {
        let signo = self.number.get();
        if self.spills {
            if let Some(sig) = spill::begin_wait(signo) {
                return Ok(Some(sig));
            }
            let got = sys::take(signo, slice);
            spill::end_wait(signo);
            return got.map_err(|e| Error::io("wait for a signal", e));
        }
        sys::take(signo, slice).map_err(|e| Error::io("wait for a signal", e))
    }

    /// Puts the next message together; `false` when `Poll` found none whole.
    fn next(&mut self, wait: Wait) -> Result<bool> {
        if self.gone {
            return Err(Error::Disconnected);
        }
        self.on_its_thread()?;
        let from = self.sender_pid()?;
        loop {
            let slice = match wait {
                Wait::Poll => Duration::ZERO,
                Wait::Until(None) => LIVENESS_CHECK,
                Wait::Until(Some(d)) => d
                    .saturating_duration_since(Instant::now())
                    .min(LIVENESS_CHECK),
            };
            match self.take(slice)? {
                Some(sig) if sig.code != libc::SI_QUEUE || sig.pid != from => self.foreign += 1,
                Some(sig) => match self.assembler.feed(sig.value)? {
                    Fed::Message => {
                        self.idle = 0;
                        return Ok(true);
                    }
                    Fed::More => {}
                    Fed::Closed => {
                        self.gone = true;
                        return Err(Error::Disconnected);
                    }
                },
                None => {
                    let check = match wait {
                        Wait::Poll => {
                            self.idle += 1;
                            self.idle % POLLS_PER_CHECK == 0
                        }
                        Wait::Until(_) => true,
                    };
                    // Nothing is pending: a sender gone now sent all it will.
                    if check && self.sender_gone() {
                        self.gone = true;
                        return Err(Error::Disconnected);
                    }
                    match wait {
                        Wait::Poll => return Ok(false),
                        Wait::Until(Some(d)) if Instant::now() >= d => return Err(Error::Timeout),
                        Wait::Until(_) => {}
                    }
                }
            }
        }
    }
}

impl ipc_core::Receiver for RtReceiver {
    fn recv(&mut self) -> Result<&[u8]> {
        self.next(Wait::Until(None))?;
        Ok(self.assembler.message())
    }

    fn try_recv(&mut self) -> Result<&[u8]> {
        if self.next(Wait::Poll)? {
            Ok(self.assembler.message())
        } else {
            Err(Error::Empty)
        }
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8]> {
        self.next(Wait::Until(Some(Instant::now() + timeout)))?;
        Ok(self.assembler.message())
    }

    fn max_message(&self) -> usize {
        self.assembler.max()
    }
}

impl Drop for RtReceiver {
    fn drop(&mut self) {
        if self.spills {
            spill::unregister(self.number.get());
        }
        if self.handed_over {
            return;
        }
        match &self.peer {
            Peer::Thread(shared) => shared.receiver_closed.store(true, Ordering::Release),
            // The goodbye goes to the sender's process, on this channel's
            // signal, which no receiver there waits for.
            Peer::Process(Some(peer)) if !self.gone => {
                let _ = queue_to(peer, self.number.get(), chunks::close());
            }
            Peer::Process(_) => {}
        }
    }
}
