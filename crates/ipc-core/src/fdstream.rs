//! Framed messages over a byte-stream file descriptor (a pipe, a FIFO, a
//! stream socket): the sending and receiving halves every stream transport
//! builds on. One `write` per message (`writev` above [`COPY_BELOW`]); reads
//! go through a [`FrameReader`].

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::error::{Error, Result};
use crate::framing::{self, FrameReader};
use crate::transport::{Receiver, Sender};

/// Waits until `fd` is ready for `events` or `timeout` passes (`None`: no
/// limit). Returns whether it is ready; hang-up and errors count as ready, so
/// that the following read or write reports them.
pub fn wait_ready(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let poll_timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up, so that we never wake before the deadline.
                let ms = left.as_nanos().div_ceil(1_000_000);
                PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(fd, events)];
        match nix::poll::poll(&mut fds, poll_timeout) {
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(false);
                }
            }
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads once from `fd` into `buf`.
fn read_once(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    nix::unistd::read(fd, buf).map_err(io::Error::from)
}

/// Messages up to this size are copied behind their header and written with
/// one `write`; larger ones go out with `writev` and no copy (a
/// single-segment `write` skips the iovec import of `writev`, which is
/// measurable on small messages; the copy is not: see the README).
pub const COPY_BELOW: usize = 4096;

/// How long a dropped sender waits, at each step, for the receiver to take
/// the unsent rest of a frame before it gives up.
pub const LINGER: Duration = Duration::from_secs(2);

/// The sending half: frames each message onto a byte-stream fd.
///
/// The fd is made non-blocking (`O_NONBLOCK`), so that `try_send` never
/// waits: when the stream takes only part of a frame, the rest is kept in
/// this sender's own buffer and written before anything else (the
/// [`Sender`] contract). `send` waits for room with `poll`.
#[derive(Debug)]
pub struct FdSender {
    fd: Option<OwnedFd>,
    max: usize,
    limit: &'static str,
    /// A small message's frame, assembled for one `write`.
    frame: Vec<u8>,
    /// The unsent rest of a frame that `try_send` accepted.
    pending: Vec<u8>,
    /// How much of `pending` is written.
    sent: usize,
    /// A socket: on drop, shut its sending direction down
    /// (`shutdown(SHUT_WR)`), so that the receiver sees the end even when
    /// another copy of the fd lives on (in a child, or for the other
    /// direction of the same socket).
    shutdown_on_drop: bool,
}

impl FdSender {
    /// Sends frames of at most `max` bytes (lowered to [`framing::FRAME_LIMIT`])
    /// on `fd`, a byte stream, which it makes non-blocking.
    pub fn new(fd: OwnedFd, max: usize) -> Result<Self> {
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)
            .map_err(|e| Error::sys("read the stream's flags", e))?;
        let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))
            .map_err(|e| Error::sys("make the stream non-blocking", e))?;
        let (max, limit) = framing::FRAME_LIMIT.lower(max);
        Ok(FdSender {
            fd: Some(fd),
            max,
            limit,
            frame: Vec::with_capacity(framing::HEADER_LEN + COPY_BELOW.min(max)),
            pending: Vec::new(),
            sent: 0,
            shutdown_on_drop: false,
        })
    }

    /// For a socket: on drop, after the unsent rest of a frame, shuts the
    /// sending direction down (`shutdown(SHUT_WR)`) before the fd closes.
    pub fn shutdown_on_drop(mut self) -> Self {
        self.shutdown_on_drop = true;
        self
    }

    /// The fd inside, after the unsent rest of a frame (if any) is written;
    /// a receiver that takes none of it for [`LINGER`] is a `Timeout`.
    pub fn into_fd(mut self) -> Result<OwnedFd> {
        self.finish_pending(Some(LINGER))?;
        self.fd
            .take()
            .ok_or_else(|| Error::io("take the stream", io::ErrorKind::NotConnected))
    }

    fn fd(&self) -> Result<BorrowedFd<'_>> {
        self.fd
            .as_ref()
            .map(AsFd::as_fd)
            .ok_or_else(|| Error::io("use the stream", io::ErrorKind::NotConnected))
    }

    /// Whether part of a frame waits in this sender's buffer.
    pub fn has_pending(&self) -> bool {
        self.sent < self.pending.len()
    }

    /// Writes the unsent rest of a frame, waiting for room at most `step`
    /// at a time (`None`: no limit).
    fn finish_pending(&mut self, step: Option<Duration>) -> Result<()> {
        if self.has_pending() {
            let fd = self.fd()?;
            write_waiting(fd, &[&self.pending], self.sent, step)?;
            self.pending.clear();
            self.sent = 0;
        }
        Ok(())
    }
}

impl Sender for FdSender {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let header = framing::encode_header(msg.len(), self.max, self.limit)?;
        self.finish_pending(None)?;
        let fd = self.fd.as_ref().map(AsFd::as_fd);
        let fd = fd.ok_or_else(|| Error::io("use the stream", io::ErrorKind::NotConnected))?;
        let mut scratch = std::mem::take(&mut self.frame);
        let result = {
            let parts = frame_parts(&mut scratch, &header, msg);
            write_waiting(fd, &parts, 0, None)
        };
        self.frame = scratch;
        result
    }

    /// Never waits: writes what the stream takes now. `Full` when it takes
    /// nothing (or the rest of an earlier frame is still waiting); when it
    /// takes part of the frame, the rest waits in this sender's buffer and
    /// the message counts as sent.
    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        let header = framing::encode_header(msg.len(), self.max, self.limit)?;
        if self.has_pending() {
            self.sent = write_now(self.fd()?, &[&self.pending], self.sent)?;
            if self.has_pending() {
                return Err(Error::Full);
            }
            self.pending.clear();
            self.sent = 0;
        }
        let fd = self.fd.as_ref().map(AsFd::as_fd);
        let fd = fd.ok_or_else(|| Error::io("use the stream", io::ErrorKind::NotConnected))?;
        let mut scratch = std::mem::take(&mut self.frame);
        let parts = frame_parts(&mut scratch, &header, msg);
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let result = write_now(fd, &parts, 0);
        if let Ok(done) = result {
            if done > 0 && done < total {
                let mut skip = done;
                for part in parts {
                    let from = skip.min(part.len());
                    self.pending.extend_from_slice(&part[from..]);
                    skip -= from;
                }
            }
        }
        self.frame = scratch;
        match result? {
            0 if total > 0 => Err(Error::Full),
            _ => Ok(()),
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.finish_pending(None)
    }

    fn max_message(&self) -> usize {
        self.max
    }
}

impl Drop for FdSender {
    fn drop(&mut self) {
        // As far as the receiver takes it: a receiver that is gone or stops
        // reading for `LINGER` ends the wait.
        let _ = self.finish_pending(Some(LINGER));
        if self.shutdown_on_drop {
            if let Some(fd) = &self.fd {
                let _ =
                    nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Write);
            }
        }
    }
}

/// The frame of `msg` as two slices: small messages are copied behind their
/// header into `scratch` (one `write`), larger ones go as header and payload.
fn frame_parts<'a>(scratch: &'a mut Vec<u8>, header: &'a [u8], msg: &'a [u8]) -> [&'a [u8]; 2] {
    if msg.len() < COPY_BELOW {
        scratch.clear();
        scratch.extend_from_slice(header);
        scratch.extend_from_slice(msg);
        [scratch.as_slice(), &[]]
    } else {
        [header, msg]
    }
}

/// Writes what the stream takes now of `parts` (all of them, one after the
/// other), from byte `done` on; returns how far it got. A stream that takes
/// nothing more (EAGAIN) ends the attempt; EPIPE is [`Error::Disconnected`].
fn write_now(fd: BorrowedFd<'_>, parts: &[&[u8]], mut done: usize) -> Result<usize> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    while done < total {
        let mut skip = done;
        let mut iov = [IoSlice::new(&[]); 2];
        let mut n = 0;
        for part in parts.iter().filter(|p| !p.is_empty()) {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            if n < iov.len() {
                iov[n] = IoSlice::new(&part[skip..]);
                n += 1;
            }
            skip = 0;
        }
        let result = if n == 1 {
            nix::unistd::write(fd, &iov[0])
        } else {
            nix::sys::uio::writev(fd, &iov[..n])
        };
        match result {
            Ok(0) => return Err(Error::Disconnected),
            Ok(k) => done += k,
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => return Ok(done),
            Err(e) => return Err(framing::stream_error("write a frame", e.into())),
        }
    }
    Ok(done)
}

/// Writes all of `parts` from byte `done` on, waiting for room between
/// attempts, at most `step` each time (`None`: no limit; then
/// [`Error::Timeout`]).
fn write_waiting(
    fd: BorrowedFd<'_>,
    parts: &[&[u8]],
    mut done: usize,
    step: Option<Duration>,
) -> Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    loop {
        done = write_now(fd, parts, done)?;
        if done == total {
            return Ok(());
        }
        if !wait_ready(fd, PollFlags::POLLOUT, step)
            .map_err(|e| framing::stream_error("poll for room", e))?
        {
            return Err(Error::Timeout);
        }
    }
}

/// The receiving half: reads whole frames from a byte-stream fd.
#[derive(Debug)]
pub struct FdReceiver {
    fd: OwnedFd,
    frames: FrameReader,
}

impl FdReceiver {
    /// Receives frames of at most `max` bytes (lowered to
    /// [`framing::FRAME_LIMIT`]) from `fd`, a byte stream (blocking or not).
    pub fn new(fd: OwnedFd, max: usize) -> Self {
        FdReceiver {
            fd,
            frames: FrameReader::new(framing::FRAME_LIMIT.lower(max).0),
        }
    }

    /// The fd inside (bytes already buffered are lost).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Whether a whole message is already buffered (no system call needed).
    pub fn has_buffered(&self) -> bool {
        self.frames.has_frame()
    }

    /// Bytes read from the stream and not yet returned (part of a frame,
    /// or whole ones): lost if the fd is taken out with [`FdReceiver::into_fd`].
    pub fn buffered_bytes(&self) -> usize {
        self.frames.buffered()
    }

    /// Waits up to `timeout` (`None`: no limit) for the fd to be readable.
    pub fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool> {
        wait_ready(self.fd.as_fd(), PollFlags::POLLIN, timeout)
            .map_err(|e| Error::io("poll for a message", e))
    }
}

impl AsFd for FdReceiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Receiver for FdReceiver {
    fn recv(&mut self) -> Result<&[u8]> {
        let fd = self.fd.as_fd();
        self.frames.read_frame(|buf| loop {
            match read_once(fd, buf) {
                // A stream shared with a non-blocking sender (one socket for
                // both directions) says "nothing yet" instead of waiting.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_ready(fd, PollFlags::POLLIN, None)?;
                }
                other => return other,
            }
        })
    }

    fn try_recv(&mut self) -> Result<&[u8]> {
        let fd = self.fd.as_fd();
        self.frames.read_frame(|buf| {
            if !wait_ready(fd, PollFlags::POLLIN, Some(Duration::ZERO))? {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            read_once(fd, buf)
        })
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8]> {
        let fd = self.fd.as_fd();
        let deadline = Instant::now() + timeout;
        self.frames.read_frame(|buf| {
            let left = deadline.saturating_duration_since(Instant::now());
            if !wait_ready(fd, PollFlags::POLLIN, Some(left))? {
                return Err(io::ErrorKind::TimedOut.into());
            }
            read_once(fd, buf)
        })
    }

    fn max_message(&self) -> usize {
        self.frames.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::OFlag;

    /// A pipe with a 4 KiB buffer, as a sender and a receiver.
    fn small_pipe(max: usize) -> (FdSender, FdReceiver) {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe");
        nix::fcntl::fcntl(&write, nix::fcntl::FcntlArg::F_SETPIPE_SZ(4096)).expect("size");
        (
            FdSender::new(write, max).expect("sender"),
            FdReceiver::new(read, max),
        )
    }

    #[test]
    fn try_send_keeps_the_rest_of_a_frame_and_never_waits() {
        let (mut tx, mut rx) = small_pipe(1 << 20);
        let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        tx.try_send(&big).expect("the first part fits: accepted");
        assert!(tx.has_pending(), "the rest waits in the sender");
        assert!(matches!(tx.try_send(b"next"), Err(Error::Full)));
        // The receiver takes the first part; the rest follows on the next try.
        let reader = std::thread::spawn(move || {
            let got = rx.recv().expect("the big message").to_vec();
            let next = rx.recv().expect("the next one").to_vec();
            (got, next, rx)
        });
        let mut tries = 0;
        while let Err(Error::Full) = tx.try_send(b"next") {
            tries += 1;
            assert!(tries < 1_000_000, "the rest never went out");
            std::thread::yield_now();
        }
        tx.flush().expect("flush");
        let (got, next, mut rx) = reader.join().expect("reader");
        assert_eq!(got, big);
        assert_eq!(next, b"next");
        drop(tx);
        assert!(matches!(rx.recv(), Err(Error::Disconnected)));
    }

    #[test]
    fn a_dropped_sender_writes_its_rest_as_far_as_the_receiver_takes_it() {
        let (mut tx, mut rx) = small_pipe(1 << 20);
        let big = vec![7u8; 50_000];
        tx.try_send(&big).expect("accepted");
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let got = rx.recv().map(<[u8]>::to_vec);
            (got, rx.recv().map(<[u8]>::to_vec))
        });
        drop(tx);
        let (got, after) = reader.join().expect("reader");
        assert_eq!(got.expect("the whole message"), big);
        assert!(matches!(after, Err(Error::Disconnected)));

        // A receiver that is gone ends the wait at once.
        let (mut tx, rx) = small_pipe(1 << 20);
        tx.try_send(&big).expect("accepted");
        drop(rx);
        let started = std::time::Instant::now();
        drop(tx);
        assert!(
            started.elapsed() < LINGER,
            "waited for a receiver that is gone"
        );
    }

    #[test]
    fn the_maximum_is_lowered_to_what_a_frame_can_say() {
        let (tx, rx) = small_pipe(usize::MAX);
        assert_eq!(tx.max_message(), u32::MAX as usize);
        assert_eq!(rx.max_message(), u32::MAX as usize);
    }
}
