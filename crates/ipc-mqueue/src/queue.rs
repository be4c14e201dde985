//! One POSIX message queue: its name (and the record of it), and its
//! descriptors, non-blocking, waited on with `poll`.

use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

use ipc_core::names::{self, Owned, Resource};
use ipc_core::{Error, Result};
use nix::errno::Errno;
use nix::mqueue::{MQ_OFlag, MqAttr, MqdT};
use nix::poll::PollFlags;
use nix::sys::stat::Mode;

use crate::limits::Bounds;

/// The method's name in object names.
pub const METHOD: &str = "mqueue";

/// A queue's name and the record of it in `$TMPDIR`, removed (the queue
/// unlinked, the record deleted) when the last end in the creating process
/// goes, and by Ctrl-C. The record lets `clean` find the queue where
/// /dev/mqueue is not mounted.
#[derive(Debug)]
pub struct Named {
    /// `/ipc-showcase.mqueue.<pid>.<start>.<random>`.
    pub name: String,
    _queue: Owned,
    _record: Owned,
}

/// One descriptor of a queue (`mqd_t` is an fd on Linux), non-blocking.
#[derive(Debug)]
pub struct Queue {
    fd: OwnedFd,
    /// The queue's message size (`mq_msgsize`): a receive needs a buffer
    /// this large.
    pub msgsize: usize,
    /// How many messages it holds (`mq_maxmsg`).
    pub depth: usize,
}

/// What a non-blocking attempt did.
pub enum Attempt<T> {
    /// It went through.
    Done(T),
    /// The queue was full (send) or empty (receive).
    WouldBlock,
}

/// Explains an `mq_open` failure by the limit that refused it.
fn open_error(name: &str, msgsize: usize, depth: usize, e: Errno) -> Error {
    if e == Errno::EEXIST {
        return Error::sys(
            format!("create the message queue {name}: a queue this run did not make has the name"),
            e,
        );
    }
    let b = Bounds::here();
    let why = match e {
        Errno::EMFILE => format!(
            "this user's queues would hold more than RLIMIT_MSGQUEUE ({} bytes) with {depth} messages of {msgsize} bytes; ask for a smaller --capacity or --size, or raise `ulimit -q`",
            b.rlimit
        ),
        Errno::EINVAL => format!(
            "{depth} messages of {msgsize} bytes are more than the system allows (fs.mqueue.msg_max {}, msgsize_max {}{})",
            b.msg_max,
            b.msgsize_max,
            if b.privileged { "; the kernel's ceilings bind with CAP_SYS_RESOURCE" } else { "" }
        ),
        Errno::ENOSPC => "fs.mqueue.queues_max queues exist already".to_owned(),
        Errno::ENOSYS => "this kernel has no POSIX message queues (CONFIG_POSIX_MQUEUE)".to_owned(),
        other => other.desc().to_owned(),
    };
    Error::io(
        format!("create the message queue {name}"),
        std::io::Error::other(why),
    )
}

/// Opens `name` with `flags` (non-blocking, close-on-exec added).
fn open(name: &str, flags: MQ_OFlag, attr: Option<&MqAttr>) -> nix::Result<OwnedFd> {
    let flags = flags | MQ_OFlag::O_NONBLOCK | MQ_OFlag::O_CLOEXEC;
    let mqd = nix::mqueue::mq_open(name, flags, Mode::S_IRUSR | Mode::S_IWUSR, attr)?;
    // SAFETY: on Linux an mqd_t is a file descriptor that nothing else owns
    // (mq_close is close), so it can be owned as one.
    Ok(unsafe { OwnedFd::from_raw_fd(mqd.into_raw_fd()) })
}

/// Makes a fresh queue for `depth` messages of `msgsize` bytes, owner-only,
/// and opens it twice: `(for sending, for receiving, its name)`. Queues
/// left by dead creators are removed first.
pub fn create(msgsize: usize, depth: usize) -> Result<(Queue, Queue, Named)> {
    let _ = clean();
    let name = format!("/{}", names::unique_name(METHOD));
    let record = names::temp_dir().join(&name[1..]);
    // Registered before they exist, so that Ctrl-C in between removes them.
    // A name found taken (create_new, O_EXCL) is somebody else's object:
    // refused and forgotten, never removed.
    let queue_owned = Owned::register(Resource::Mqueue(name.clone()));
    let record_owned = Owned::register(Resource::Path(record.clone()));
    if let Err(e) = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode_0600()
        .open(&record)
    {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            record_owned.abandon();
            queue_owned.abandon();
        }
        return Err(Error::io(
            format!("record the queue in {}", record.display()),
            e,
        ));
    }
    let attr = MqAttr::new(0, depth as _, msgsize as _, 0);
    let send = match open(
        &name,
        MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_WRONLY,
        Some(&attr),
    ) {
        Ok(fd) => fd,
        Err(e) => {
            if e == nix::errno::Errno::EEXIST {
                queue_owned.abandon();
            }
            return Err(open_error(&name, msgsize, depth, e));
        }
    };
    let recv = open(&name, MQ_OFlag::O_RDONLY, None)
        .map_err(|e| Error::sys(format!("open the message queue {name} to receive"), e))?;
    let named = Named {
        name,
        _queue: queue_owned,
        _record: record_owned,
    };
    Ok((Queue::adopt(send)?, Queue::adopt(recv)?, named))
}

/// A mode of 0600 for a file being created.
trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

impl Queue {
    /// Takes `fd`, which must be a message queue of this user.
    pub fn adopt(fd: OwnedFd) -> Result<Queue> {
        let attr = with_mqd(fd.as_fd(), nix::mqueue::mq_getattr)
            .map_err(|e| Error::BadEndpoint(format!("the fd is not a message queue ({e})")))?;
        let stat =
            nix::sys::stat::fstat(&fd).map_err(|e| Error::sys("read the queue's owner", e))?;
        let me = nix::unistd::geteuid().as_raw();
        if stat.st_uid != me {
            return Err(Error::BadEndpoint(format!(
                "the message queue belongs to uid {}, not to this process's {me}: refused",
                stat.st_uid
            )));
        }
        // It must not block: the waits are ours (poll, with liveness).
        let flags = attr.flags();
        if flags & libc::O_NONBLOCK as nix::mqueue::mq_attr_member_t == 0 {
            with_mqd(fd.as_fd(), nix::mqueue::mq_set_nonblock)
                .map_err(|e| Error::sys("make the queue non-blocking", e))?;
        }
        Ok(Queue {
            fd,
            msgsize: attr.msgsize().max(0) as usize,
            depth: attr.maxmsg().max(0) as usize,
        })
    }

    /// Sends `msg` at priority `prio` if there is room now.
    pub fn try_send(&self, msg: &[u8], prio: u32) -> Result<Attempt<()>> {
        loop {
            match with_mqd(self.fd.as_fd(), |q| nix::mqueue::mq_send(q, msg, prio)) {
                Ok(()) => return Ok(Attempt::Done(())),
                Err(Errno::EAGAIN) => return Ok(Attempt::WouldBlock),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::sys("send on the message queue", e)),
            }
        }
    }

    /// Takes the next message into `buf` (at least `msgsize` bytes) if one
    /// is there now: its length and priority.
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<Attempt<(usize, u32)>> {
        loop {
            let mut prio = 0;
            match with_mqd(self.fd.as_fd(), |q| {
                nix::mqueue::mq_receive(q, buf, &mut prio)
            }) {
                Ok(len) => return Ok(Attempt::Done((len, prio))),
                Err(Errno::EAGAIN) => return Ok(Attempt::WouldBlock),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::sys("receive from the message queue", e)),
            }
        }
    }

    /// Waits up to `timeout` until a message is there (`readable`) or
    /// there is room.
    pub fn wait(&self, readable: bool, timeout: Duration) -> Result<()> {
        let events = if readable {
            PollFlags::POLLIN
        } else {
            PollFlags::POLLOUT
        };
        ipc_core::fdstream::wait_ready(self.fd.as_fd(), events, Some(timeout))
            .map(drop)
            .map_err(|e| Error::io("wait on the message queue", e))
    }

    /// The descriptor, for a hand-over.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// A copy of the descriptor, for a hand-over.
    pub fn dup_fd(&self) -> Result<OwnedFd> {
        self.fd
            .try_clone()
            .map_err(|e| Error::io("duplicate the queue's descriptor", e))
    }
}

/// Runs `f` on `fd` seen as an `MqdT` that is not closed afterwards.
fn with_mqd<R>(fd: BorrowedFd<'_>, f: impl FnOnce(&MqdT) -> R) -> R {
    // SAFETY: on Linux an mqd_t is the fd itself; the MqdT is never closed
    // (ManuallyDrop, and MqdT has no Drop of its own), so `fd` keeps the
    // descriptor.
    let mqd = ManuallyDrop::new(unsafe { MqdT::from_raw_fd(fd.as_raw_fd()) });
    f(&mqd)
}

/// Removes the queues of creators that are gone: the ones recorded in
/// `$TMPDIR`, and where /dev/mqueue is mounted, every one listed there.
pub fn clean() -> Result<names::CleanReport> {
    let unlink = |name: &str| match nix::mqueue::mq_unlink(&*format!("/{name}")) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(std::io::Error::from(e)),
    };
    let mut report = names::clean_dir(&names::temp_dir(), METHOD, |record| {
        let file = record
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        unlink(&file)?;
        std::fs::remove_file(record)
    })?;
    let mounted = std::path::Path::new("/dev/mqueue");
    if mounted.is_dir() {
        let listed = names::clean_dir(mounted, METHOD, |queue| {
            let file = queue
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            unlink(&file)
        })?;
        report.merge(listed);
    }
    Ok(report)
}
