//! Named FIFOs made by `mkfifo` in a private directory.
//!
//! Each end is opened once: beside the FIFO, the directory holds a lock file
//! per end (`reader.lock`, `writer.lock`), and an open end holds its lock
//! (`flock`), so a second reader or writer, which would split or interleave
//! the byte stream, is refused with [`Error::InUse`].

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ipc_core::fdstream::{FdReceiver, FdSender};
use ipc_core::framing::FRAME_LIMIT;
use ipc_core::liveness::PeerProcess;
use ipc_core::names::{self, CleanReport, PrivateDir};
use ipc_core::{
    check_mode, Endpoint, Error, Handover, Limit, Mode, Options, Receiver, Result, Sender,
    Transport,
};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag};
use nix::sys::stat::Mode as Perm;

/// A named FIFO: `mkfifo` with mode 0600 in a private 0700 directory under
/// `$TMPDIR`, opened by path on each side, removed by its creator.
#[derive(Debug, Clone, Copy)]
pub struct Fifo;

/// Where the creator's receiving end is.
const RECEIVER_HERE: u8 = 0;
const RECEIVER_EXPORTED: u8 = 1;
const RECEIVER_DROPPED: u8 = 2;

/// What the creator's two ends share: the directory (removed when both are
/// gone), where the receiving end went, and whether the sending end was
/// handed to a child.
#[derive(Debug)]
struct Shared {
    _dir: PrivateDir,
    receiver: AtomicU8,
    sender_exported: OnceLock<()>,
}

/// How often a receiver waiting for its first writer checks that the
/// writer's process still runs.
const WRITER_CHECK: Duration = Duration::from_millis(50);

/// Takes the lock of end `side` (`reader`, `writer`) of the FIFO at `path`,
/// or says who has that end open.
fn lock_end(path: &Path, side: &str) -> Result<OwnedFd> {
    let lock = path.with_file_name(format!("{side}.lock"));
    let fd = nix::fcntl::open(
        &lock,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_CLOEXEC,
        Perm::S_IRUSR | Perm::S_IWUSR,
    )
    .map_err(|e| Error::sys(format!("open the lock {}", lock.display()), e))?;
    // SAFETY: flock takes an fd we own and flags; it touches no memory.
    if unsafe { nix::libc::flock(fd.as_raw_fd(), nix::libc::LOCK_EX | nix::libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::WouldBlock {
            return Err(Error::InUse(format!(
                "the {side} end of the FIFO {} is already open: a FIFO has one writer and one reader",
                path.display()
            )));
        }
        return Err(Error::io(format!("lock {}", lock.display()), e));
    }
    Ok(fd)
}

/// The writing end of a FIFO. It opens the FIFO on first use (or when reopened
/// in a child), waiting up to the connect timeout for a reader.
#[derive(Debug)]
pub struct FifoSender {
    path: PathBuf,
    stream: Option<FdSender>,
    max: usize,
    limit: &'static str,
    connect_timeout: Duration,
    /// When `try_send` first found no reader: a reader that has not come
    /// within the connect timeout counts as gone.
    no_reader_since: Option<Instant>,
    /// The process holding the receiving end, once the parent spawned it.
    peer: Option<PeerProcess>,
    /// Whether dropping it unopened should make a waiting reader see a hang-up.
    hang_up_on_drop: bool,
    shared: Option<Arc<Shared>>,
    /// This end's lock, held while it is open here.
    lock: Option<OwnedFd>,
}

/// The reading end of a FIFO.
#[derive(Debug)]
pub struct FifoReceiver {
    stream: FdReceiver,
    path: PathBuf,
    /// Whether a writer has been seen: before that, a read would report EOF
    /// at once, so a blocking receive first waits in `poll`.
    writer_seen: bool,
    shared: Option<Arc<Shared>>,
    /// The process holding the sending end, once the parent spawned it.
    peer: Option<PeerProcess>,
    /// When `try_recv` last asked whether the writer can still come.
    last_check: Option<Instant>,
    /// This end's lock, held while it is open here.
    _lock: OwnedFd,
}

impl Transport for Fifo {
    const NAME: &'static str = "pipes";
    const VARIANT: &'static str = "fifo";
    const MODES: &'static [Mode] = &[Mode::Process, Mode::Thread];
    type Sender = FifoSender;
    type Receiver = FifoReceiver;

    fn channel(mode: Mode, opts: &Options) -> Result<(FifoSender, FifoReceiver)> {
        check_mode::<Self>(mode)?;
        let dir = PrivateDir::create(Self::NAME)?;
        let path = dir.path().join("fifo");
        nix::unistd::mkfifo(&path, Perm::S_IRUSR | Perm::S_IWUSR)
            .map_err(|e| Error::sys(format!("create the FIFO {}", path.display()), e))?;
        let shared = Arc::new(Shared {
            _dir: dir,
            receiver: AtomicU8::new(RECEIVER_HERE),
            sender_exported: OnceLock::new(),
        });
        let mut rx = FifoReceiver::open(&path, opts.max_message)?;
        rx.shared = Some(Arc::clone(&shared));
        let writer_lock = lock_end(&path, "writer")?;
        if let Some(bytes) = opts.capacity {
            crate::pipe::set_pipe_size(
                &rx.stream
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::io("dup", e))?,
                bytes,
            )?;
        }
        let mut tx = FifoSender::new(path, opts.max_message, opts.connect_timeout, Some(shared));
        tx.lock = Some(writer_lock);
        Ok((tx, rx))
    }

    fn message_limit() -> Limit {
        FRAME_LIMIT
    }

    fn capacity_limit() -> Limit {
        crate::pipe::PIPE_BUFFER_LIMIT
    }

    fn set_peer_of_sender(end: &mut FifoSender, peer: &PeerProcess) -> Result<()> {
        end.peer = Some(peer.clone());
        Ok(())
    }

    fn set_peer_of_receiver(end: &mut FifoReceiver, peer: &PeerProcess) -> Result<()> {
        end.peer = Some(peer.clone());
        Ok(())
    }

    fn export_sender(mut end: FifoSender, _handover: &mut Handover) -> Result<Endpoint> {
        if end.stream.is_some() {
            return Err(Error::BadEndpoint(
                "a FIFO sender must be exported before its first send".into(),
            ));
        }
        let shared = keeps_an_end(end.shared.as_ref())?;
        let _ = shared.sender_exported.set(());
        let mut ep = Endpoint::new(Self::NAME, Self::VARIANT, end.max);
        ep.path = Some(end.path.to_string_lossy().into_owned());
        ep.extra = vec![end.connect_timeout.as_millis() as u64];
        // Dropping an unused sender tells a waiting reader "no writer": not
        // wanted here, the child is about to become the writer. Its lock
        // goes with it, for the child to take.
        end.hang_up_on_drop = false;
        Ok(ep)
    }

    fn export_receiver(end: FifoReceiver, _handover: &mut Handover) -> Result<Endpoint> {
        if end.stream.buffered_bytes() > 0 {
            return Err(Error::BadEndpoint(
                "a FIFO receiver that has read part of the stream cannot be handed over: its child would start inside a frame".into(),
            ));
        }
        let shared = keeps_an_end(end.shared.as_ref())?;
        shared.receiver.store(RECEIVER_EXPORTED, Ordering::Release);
        let mut ep = Endpoint::new(Self::NAME, Self::VARIANT, end.stream.max_message());
        ep.path = Some(end.path.to_string_lossy().into_owned());
        Ok(ep)
    }

    fn open_sender(ep: Endpoint) -> Result<FifoSender> {
        ep.expect(Self::NAME, Self::VARIANT)?;
        let timeout = Duration::from_millis(ep.extra.first().copied().unwrap_or(5000));
        let path = endpoint_path(&ep)?;
        let lock = lock_end(&path, "writer")?;
        let mut tx = FifoSender::new(path, ep.max_message, timeout, None);
        tx.lock = Some(lock);
        tx.connect(true)?;
        Ok(tx)
    }

    fn open_receiver(ep: Endpoint) -> Result<FifoReceiver> {
        ep.expect(Self::NAME, Self::VARIANT)?;
        FifoReceiver::open(&endpoint_path(&ep)?, ep.max_message)
    }

    fn clean() -> Result<CleanReport> {
        names::clean_dir(&names::temp_dir(), Self::NAME, names::remove_dir_all)
    }
}

/// The creator's shared state of an end about to be handed over, if the
/// creator keeps the other end: the FIFO's directory lives as long as the
/// creator holds an end, so a child can only open an end while it does.
fn keeps_an_end(shared: Option<&Arc<Shared>>) -> Result<&Arc<Shared>> {
    match shared {
        Some(shared) if Arc::strong_count(shared) > 1 => Ok(shared),
        Some(_) => Err(Error::BadEndpoint(
            "the FIFO's other end was handed over already: its creator must keep one end, which keeps the FIFO".into(),
        )),
        None => Err(Error::BadEndpoint(
            "only the process that made a FIFO can hand over its ends".into(),
        )),
    }
}

fn endpoint_path(ep: &Endpoint) -> Result<PathBuf> {
    ep.path
        .as_ref()
        .map(PathBuf::from)
        .ok_or_else(|| Error::BadEndpoint("a FIFO endpoint carries no path".into()))
}

/// Opens `path` with `flags | O_NONBLOCK | O_CLOEXEC`, then makes the fd blocking.
fn open_fifo(path: &Path, flags: OFlag) -> std::result::Result<OwnedFd, Errno> {
    let fd = nix::fcntl::open(
        path,
        flags | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Perm::empty(),
    )?;
    nix::fcntl::fcntl(&fd, FcntlArg::F_SETFL(OFlag::empty()))?;
    Ok(fd)
}

impl FifoReceiver {
    /// Opens the reading end (this never waits for a writer).
    fn open(path: &Path, max: usize) -> Result<Self> {
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| Error::io(format!("open the FIFO {}", path.display()), e))?;
        check_owner(path, &meta)?;
        let lock = lock_end(path, "reader")?;
        let fd = open_fifo(path, OFlag::O_RDONLY)
            .map_err(|e| Error::sys(format!("open the FIFO {}", path.display()), e))?;
        Ok(FifoReceiver {
            stream: FdReceiver::new(fd, max),
            path: path.to_owned(),
            writer_seen: false,
            shared: None,
            peer: None,
            last_check: None,
            _lock: lock,
        })
    }

    /// Whether the writer can no longer come, while none has been seen: the
    /// process the sending end was handed to died (once the parent named
    /// it), or, in a child, the creator that keeps the sending end is gone.
    /// (A writer that came and went is a hang-up, which `poll` reports.)
    fn writer_gone(&self) -> bool {
        writer_gone(self.shared.as_deref(), self.peer.as_ref(), &self.path)
    }

    /// Before the first writer: waits in slices until the FIFO is readable
    /// (data, or a writer that came and went), the writer can no longer
    /// come (`Disconnected`) or `deadline` passes (`Timeout`).
    fn wait_for_writer(&mut self, deadline: Option<Instant>) -> Result<()> {
        if self.writer_seen || self.stream.has_buffered() {
            return Ok(());
        }
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if self
                .stream
                .wait_readable(Some(left.map_or(WRITER_CHECK, |l| l.min(WRITER_CHECK))))?
            {
                return Ok(());
            }
            if self.writer_gone() {
                return Err(Error::Disconnected);
            }
            if left.is_some_and(|l| l.is_zero()) {
                return Err(Error::Timeout);
            }
        }
    }
}

/// See [`FifoReceiver::writer_gone`].
fn writer_gone(shared: Option<&Shared>, peer: Option<&PeerProcess>, path: &Path) -> bool {
    match shared {
        Some(shared) => {
            shared.sender_exported.get().is_some() && peer.is_some_and(|p| !p.is_running())
        }
        None => {
            let dir = path.parent().and_then(Path::file_name);
            let creator = dir.and_then(|d| names::creator(&d.to_string_lossy(), Fifo::NAME));
            creator.is_some_and(|(pid, start)| names::creator_is_gone(pid, start))
        }
    }
}

/// Refuses a FIFO (or anything else at that path) that another user owns.
fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { nix::libc::geteuid() };
    if meta.uid() != me {
        return Err(Error::Foreign {
            path: path.to_owned(),
            owner: meta.uid(),
        });
    }
    Ok(())
}

impl FifoSender {
    fn new(
        path: PathBuf,
        max: usize,
        connect_timeout: Duration,
        shared: Option<Arc<Shared>>,
    ) -> Self {
        let (max, limit) = FRAME_LIMIT.lower(max);
        FifoSender {
            path,
            stream: None,
            max,
            limit,
            connect_timeout,
            no_reader_since: None,
            peer: None,
            hang_up_on_drop: true,
            shared,
            lock: None,
        }
    }

    /// Whether the reader can no longer come: it was dropped here, its
    /// process is gone, or it has not come within the connect timeout.
    fn reader_gone(&self, since: Instant) -> bool {
        let dropped = self
            .shared
            .as_ref()
            .is_some_and(|s| s.receiver.load(Ordering::Acquire) == RECEIVER_DROPPED);
        dropped
            || self.peer.as_ref().is_some_and(|p| !p.is_running())
            || since.elapsed() >= self.connect_timeout
    }

    /// Opens the writing end if not yet open. With `wait`, retries until a
    /// reader has the FIFO open or the connect timeout passes; without, a
    /// missing reader is [`Error::Full`] until it counts as gone.
    fn connect(&mut self, wait: bool) -> Result<&mut FdSender> {
        if self.stream.is_none() {
            let started = Instant::now();
            let fd = loop {
                match open_fifo(&self.path, OFlag::O_WRONLY) {
                    Ok(fd) => break fd,
                    // ENXIO: no reader has the FIFO open (yet, or any more).
                    Err(Errno::ENXIO) => {
                        let since = if wait {
                            started
                        } else {
                            *self.no_reader_since.get_or_insert(started)
                        };
                        if self.reader_gone(since) {
                            return Err(Error::Disconnected);
                        }
                        if !wait {
                            return Err(Error::Full);
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(Errno::ENOENT) => return Err(Error::Disconnected),
                    Err(e) => {
                        return Err(Error::sys(
                            format!("open the FIFO {}", self.path.display()),
                            e,
                        ))
                    }
                }
            };
            self.stream = Some(FdSender::new(fd, self.max)?);
        }
        self.stream
            .as_mut()
            .ok_or_else(|| Error::io("open the FIFO", std::io::ErrorKind::NotConnected))
    }
}

impl Sender for FifoSender {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        ipc_core::framing::encode_header(msg.len(), self.max, self.limit)?;
        self.connect(true)?.send(msg)
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        ipc_core::framing::encode_header(msg.len(), self.max, self.limit)?;
        self.connect(false)?.try_send(msg)
    }

    fn flush(&mut self) -> Result<()> {
        match &mut self.stream {
            Some(stream) => stream.flush(),
            None => Ok(()),
        }
    }

    fn max_message(&self) -> usize {
        self.max
    }
}

impl Drop for FifoSender {
    fn drop(&mut self) {
        if self.stream.is_none() && self.hang_up_on_drop {
            // Never opened: open and close once, so that a reader waiting for
            // a first writer sees the hang-up instead of waiting forever.
            let _ = open_fifo(&self.path, OFlag::O_WRONLY);
        }
    }
}

impl Receiver for FifoReceiver {
    fn recv(&mut self) -> Result<&[u8]> {
        // With no writer yet, read(2) returns EOF at once; poll instead
        // waits for data, or for a writer that came and went.
        self.wait_for_writer(None)?;
        let msg = self.stream.recv();
        if msg.is_ok() {
            self.writer_seen = true;
        }
        msg
    }

    fn try_recv(&mut self) -> Result<&[u8]> {
        let msg = self.stream.try_recv();
        match msg {
            Ok(_) => self.writer_seen = true,
            Err(Error::Empty) if !self.writer_seen => {
                // Asked at most every WRITER_CHECK: it reads /proc.
                let due = self
                    .last_check
                    .is_none_or(|at| at.elapsed() >= WRITER_CHECK);
                if due {
                    self.last_check = Some(Instant::now());
                    if writer_gone(self.shared.as_deref(), self.peer.as_ref(), &self.path) {
                        return Err(Error::Disconnected);
                    }
                }
            }
            Err(_) => {}
        }
        msg
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<&[u8]> {
        let deadline = Instant::now() + timeout;
        self.wait_for_writer(Some(deadline))?;
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = self.stream.recv_timeout(left);
        if msg.is_ok() {
            self.writer_seen = true;
        }
        msg
    }

    fn max_message(&self) -> usize {
        self.stream.max_message()
    }
}

impl Drop for FifoReceiver {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            let _ = shared.receiver.compare_exchange(
                RECEIVER_HERE,
                RECEIVER_DROPPED,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    use super::*;
    use ipc_core::{Receiver, Sender};

    #[test]
    fn the_directory_the_fifo_and_its_locks_are_owner_only() {
        let (mut tx, mut rx) = Fifo::channel(Mode::Thread, &Options::default()).expect("channel");
        tx.send(b"opens the writer").expect("send");
        assert_eq!(rx.recv().expect("recv"), b"opens the writer");
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .permissions()
                .mode()
                & 0o777
        };
        let fifo = tx.path.clone();
        let dir = fifo.parent().expect("its directory").to_owned();
        assert_eq!(mode(&dir), 0o700, "the directory");
        assert!(std::fs::metadata(&fifo)
            .expect("the FIFO")
            .file_type()
            .is_fifo());
        assert_eq!(mode(&fifo), 0o600, "the FIFO");
        for lock in ["reader.lock", "writer.lock"] {
            assert_eq!(mode(&dir.join(lock)), 0o600, "{lock}");
        }
        drop((tx, rx));
        assert!(!dir.exists(), "removed with the channel");
    }
}
