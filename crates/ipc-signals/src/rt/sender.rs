//! The sending end of `rt`: each message cut into chunks, one real-time
//! signal each, queued to the peer; a full queue waited out, a dead peer
//! noticed.

use super::*;

impl RtSender {
    pub(super) fn new(
        number: Arc<Number>,
        peer: Peer,
        max: usize,
        limit: &'static str,
        connect_timeout: Duration,
    ) -> Self {
        RtSender {
            number,
            peer,
            max,
            limit,
            pending: VecDeque::new(),
            since_check: 0,
            gone: false,
            handed_over: false,
            connect_timeout,
        }
    }

    fn signo(&self) -> i32 {
        self.number.get()
    }

    /// Whether the receiver can be reached: in thread mode, once its thread
    /// has named itself (waiting for it up to the connect timeout, with
    /// `block`).
    fn ready(&self, block: bool) -> Result<bool> {
        let shared = match &self.peer {
            Peer::Thread(shared) => shared,
            Peer::Process(_) => return self.peer.process().map(|_| true),
        };
        let started = Instant::now();
        loop {
            if shared.receiver_closed.load(Ordering::Acquire) {
                return Err(Error::Disconnected);
            }
            if shared.tid.load(Ordering::Acquire) != 0 {
                return Ok(true);
            }
            if !block {
                return Ok(false);
            }
            if started.elapsed() >= self.connect_timeout {
                return Err(Error::Unsupported {
                    transport: "signals/rt",
                    mode: Mode::Thread,
                    hint: "the receiving end did not ask for a message within the connect timeout: in thread mode the signals go to the receiving thread, which names itself on its first receive",
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn queue(&self, value: u64) -> std::io::Result<()> {
        match &self.peer {
            Peer::Thread(shared) => sys::queue_to_thread(
                sys::getpid(),
                shared.tid.load(Ordering::Acquire),
                self.signo(),
                value,
            ),
            Peer::Process(Some(peer)) => queue_to(peer, self.signo(), value),
            Peer::Process(None) => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    /// Whether the receiver said goodbye (dropped its end).
    fn receiver_left(&mut self) -> bool {
        match &self.peer {
            Peer::Thread(shared) => shared.receiver_closed.load(Ordering::Acquire),
            Peer::Process(Some(peer)) => {
                // Its goodbye comes on the channel's own signal, to this
                // process, which has no receiver on it.
                let from = peer.id().pid() as i32;
                while let Ok(Some(sig)) = sys::take(self.signo(), Duration::ZERO) {
                    if sig.pid == from && sig.value == chunks::close() {
                        return true;
                    }
                }
                false
            }
            Peer::Process(None) => false,
        }
    }

    fn receiver_alive(&self) -> bool {
        match &self.peer {
            Peer::Thread(_) => true,
            Peer::Process(Some(peer)) => peer.is_running(),
            Peer::Process(None) => true,
        }
    }

    /// Queues one signal. With `block`, waits for room in the queue (the
    /// user's RLIMIT_SIGPENDING) as long as the receiver lives; without,
    /// says whether it went.
    fn deliver(&mut self, value: u64, block: bool) -> Result<bool> {
        let mut backoff = Duration::from_micros(20);
        let mut checked = Instant::now();
        loop {
            match self.queue(value) {
                Ok(()) => {
                    self.since_check += 1;
                    if self.since_check >= SENDS_PER_CHECK {
                        self.since_check = 0;
                        if self.receiver_left() {
                            return Err(self.lost());
                        }
                    }
                    return Ok(true);
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    // The queue is full: free what this process's own
                    // receivers have waiting, then wait for room.
                    if spill::drain(self.signo()) > 0 {
                        continue;
                    }
                    if self.receiver_left() {
                        return Err(self.lost());
                    }
                    if !block {
                        return Ok(false);
                    }
                    if checked.elapsed() >= LIVENESS_CHECK {
                        if !self.receiver_alive() {
                            return Err(self.lost());
                        }
                        checked = Instant::now();
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(1));
                }
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Err(self.lost()),
                Err(e) if e.kind() == std::io::ErrorKind::NotConnected => {
                    return Err(self.peer.process().err().unwrap_or(Error::Disconnected))
                }
                Err(e) => return Err(Error::io("queue a signal", e)),
            }
        }
    }

    fn lost(&mut self) -> Error {
        self.gone = true;
        Error::Disconnected
    }

    /// Queues what `try_send` left, waiting with `block`; says whether all went.
    fn finish_pending(&mut self, block: bool) -> Result<bool> {
        while let Some(&value) = self.pending.front() {
            if !self.deliver(value, block)? {
                return Ok(false);
            }
            self.pending.pop_front();
        }
        Ok(true)
    }

    fn check(&self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.max,
                limit: self.limit,
            });
        }
        if self.gone {
            return Err(Error::Disconnected);
        }
        Ok(())
    }
}

impl ipc_core::Sender for RtSender {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.check(msg)?;
        self.ready(true)?;
        self.finish_pending(true)?;
        for value in std::iter::once(chunks::head(msg)).chain(chunks::body(msg)) {
            self.deliver(value, true)?;
        }
        Ok(())
    }

    /// Never waits: `Full` while the receiving thread is unknown, the
    /// queue has no room for the first signal, or the rest of an earlier
    /// message waits; when only part of the message fits, the rest waits in
    /// this sender and goes first next time.
    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.check(msg)?;
        if !self.ready(false)? || !self.finish_pending(false)? {
            return Err(Error::Full);
        }
        let mut values = std::iter::once(chunks::head(msg)).chain(chunks::body(msg));
        if let Some(first) = values.next() {
            if !self.deliver(first, false)? {
                return Err(Error::Full);
            }
        }
        while let Some(value) = values.next() {
            if !self.deliver(value, false)? {
                self.pending.push_back(value);
                self.pending.extend(values);
                break;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.finish_pending(true).map(drop)
    }

    fn max_message(&self) -> usize {
        self.max
    }
}

impl Drop for RtSender {
    fn drop(&mut self) {
        if self.handed_over || self.gone {
            return;
        }
        // The rest of a message, then the goodbye, as far as the receiver
        // takes them within LINGER (none if its thread never named itself).
        if self.ready(false).unwrap_or(false) {
            let deadline = Instant::now() + LINGER;
            let mut left: Vec<u64> = self.pending.drain(..).collect();
            left.push(chunks::close());
            'all: for value in left {
                loop {
                    match self.deliver(value, false) {
                        Ok(true) => break,
                        Ok(false) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(1))
                        }
                        _ => break 'all,
                    }
                }
            }
        }
        // After every signal it sent: a receiver that finds nothing pending
        // and this flag knows nothing more will come.
        if let Peer::Thread(shared) = &self.peer {
            shared.sender_closed.store(true, Ordering::Release);
        }
    }
}
