//! Anonymous pipes made by `pipe2`.

use ipc_core::fdstream::{FdReceiver, FdSender};
use ipc_core::framing::FRAME_LIMIT;
use ipc_core::{check_mode, Endpoint, Error, Handover, Limit, Mode, Options, Result, Transport};
use nix::fcntl::OFlag;

/// An anonymous pipe: `pipe2(O_CLOEXEC)`, framed messages, process or thread mode.
#[derive(Debug, Clone, Copy)]
pub struct Pipe;

impl Transport for Pipe {
    const NAME: &'static str = "pipes";
    const VARIANT: &'static str = "pipe";
    const MODES: &'static [Mode] = &[Mode::Process, Mode::Thread];
    type Sender = FdSender;
    type Receiver = FdReceiver;

    fn channel(mode: Mode, opts: &Options) -> Result<(FdSender, FdReceiver)> {
        check_mode::<Self>(mode)?;
        let (read, write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("create a pipe", e))?;
        if let Some(bytes) = opts.capacity {
            set_pipe_size(&write, bytes)?;
        }
        Ok((
            FdSender::new(write, opts.max_message)?,
            FdReceiver::new(read, opts.max_message),
        ))
    }

    fn message_limit() -> Limit {
        FRAME_LIMIT
    }

    fn capacity_limit() -> Limit {
        PIPE_BUFFER_LIMIT
    }

    fn export_sender(end: FdSender, handover: &mut Handover) -> Result<Endpoint> {
        let mut ep = Endpoint::new(
            Self::NAME,
            Self::VARIANT,
            ipc_core::Sender::max_message(&end),
        );
        handover.add_fd(&mut ep, end.into_fd()?);
        Ok(ep)
    }

    fn export_receiver(end: FdReceiver, handover: &mut Handover) -> Result<Endpoint> {
        if end.buffered_bytes() > 0 {
            return Err(Error::BadEndpoint(
                "a pipe receiver that has read part of the stream cannot be handed over: its child would start inside a frame".into(),
            ));
        }
        let mut ep = Endpoint::new(
            Self::NAME,
            Self::VARIANT,
            ipc_core::Receiver::max_message(&end),
        );
        handover.add_fd(&mut ep, end.into_fd());
        Ok(ep)
    }

    fn open_sender(mut ep: Endpoint) -> Result<FdSender> {
        ep.expect(Self::NAME, Self::VARIANT)?;
        FdSender::new(ep.take_fd(0)?, ep.max_message)
    }

    fn open_receiver(mut ep: Endpoint) -> Result<FdReceiver> {
        ep.expect(Self::NAME, Self::VARIANT)?;
        Ok(FdReceiver::new(ep.take_fd(0)?, ep.max_message))
    }
}

/// The largest pipe buffer the kernel makes (`F_SETPIPE_SZ`); without
/// CAP_SYS_RESOURCE, /proc/sys/fs/pipe-max-size (1 MiB by default) is lower,
/// and asking for more fails with EPERM.
pub const PIPE_BUFFER_LIMIT: Limit = Limit {
    bytes: 1 << 31,
    name: "the largest pipe buffer the kernel makes (2 GiB)",
};

/// Asks for a pipe buffer of `bytes` (F_SETPIPE_SZ; the kernel rounds it up
/// to a power of two of pages and caps it at /proc/sys/fs/pipe-max-size).
pub(crate) fn set_pipe_size(fd: &std::os::fd::OwnedFd, bytes: usize) -> Result<()> {
    let size = i32::try_from(bytes).unwrap_or(i32::MAX);
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(size)).map_err(|e| {
        let hint = if e == nix::errno::Errno::EPERM {
            " (above /proc/sys/fs/pipe-max-size, which only a privileged process may pass)"
        } else {
            ""
        };
        Error::sys(format!("set the pipe buffer to {bytes} bytes{hint}"), e)
    })?;
    Ok(())
}
