//! Framed messages over a byte-stream file descriptor (a pipe, a FIFO, a
//! stream socket): the sending and receiving halves every stream transport
//! builds on. One `writev` per message; reads go through a [`FrameReader`].

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
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
/// one `write`; larger ones go out with `writev` and no copy. A single-segment
/// `write` skips the iovec import of `writev`, which is measurable on small
/// messages (see the README's pipe figures); the copy is not.
pub const COPY_BELOW: usize = 4096;

/// The sending half: frames each message onto a byte-stream fd.
#[derive(Debug)]
pub struct FdSender {
    fd: OwnedFd,
    max: usize,
    frame: Vec<u8>,
}

impl FdSender {
    /// Sends frames of at most `max` bytes on `fd` (a blocking stream).
    pub fn new(fd: OwnedFd, max: usize) -> Self {
        FdSender {
            fd,
            max,
            frame: Vec::with_capacity(framing::HEADER_LEN + COPY_BELOW.min(max)),
        }
    }

    /// The fd inside.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for FdSender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Sender for FdSender {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let fd = self.fd.as_fd();
        if msg.len() < COPY_BELOW {
            let header = framing::encode_header(msg.len(), self.max)?;
            self.frame.clear();
            self.frame.extend_from_slice(&header);
            self.frame.extend_from_slice(msg);
            return write_all(fd, &self.frame);
        }
        framing::write_frame(msg, self.max, |iov| {
            nix::sys::uio::writev(fd, iov).map_err(io::Error::from)
        })
    }

    /// Sends if the stream can take bytes now. A stream that takes the first
    /// byte receives the whole frame, so a message larger than the free room
    /// may wait for the reader to drain the rest.
    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        framing::encode_header(msg.len(), self.max)?;
        match wait_ready(self.fd.as_fd(), PollFlags::POLLOUT, Some(Duration::ZERO)) {
            Ok(true) => self.send(msg),
            Ok(false) => Err(Error::Full),
            Err(e) => Err(framing::stream_error("poll for room", e)),
        }
    }

    fn max_message(&self) -> usize {
        self.max
    }
}

/// Writes all of `bytes`, retrying short and interrupted writes.
fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(0) => return Err(Error::Disconnected),
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(framing::stream_error("write a frame", e.into())),
        }
    }
    Ok(())
}

/// The receiving half: reads whole frames from a byte-stream fd.
#[derive(Debug)]
pub struct FdReceiver {
    fd: OwnedFd,
    frames: FrameReader,
}

impl FdReceiver {
    /// Receives frames of at most `max` bytes from `fd` (a blocking stream).
    pub fn new(fd: OwnedFd, max: usize) -> Self {
        FdReceiver {
            fd,
            frames: FrameReader::new(max),
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
        self.frames.read_frame(|buf| read_once(fd, buf))
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
