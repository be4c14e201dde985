//! The two transports, `Uds` and `Tcp`: one connected stream socket per
//! channel, framed by the core's byte-stream ends.

use std::os::fd::{AsFd, OwnedFd};

use ipc_core::fdstream::{FdReceiver, FdSender};
use ipc_core::framing::FRAME_LIMIT;
use ipc_core::{check_mode, Endpoint, Error, Handover, Limit, Mode, Options, Result, Transport};

use crate::pair;

/// The largest `capacity` (SO_SNDBUF on the sender and SO_RCVBUF on the
/// receiver); the kernel also holds it to net.core.wmem_max / rmem_max
/// unless the process has CAP_NET_ADMIN.
pub const BUFFER_LIMIT: Limit = Limit {
    bytes: (i32::MAX / 2) as usize,
    name: "the largest socket buffer the kernel takes (1 GiB; net.core.wmem_max and rmem_max bind below it without CAP_NET_ADMIN)",
};

/// Sets the sender's SO_SNDBUF and the receiver's SO_RCVBUF to `bytes`.
fn set_buffers(send: &OwnedFd, recv: &OwnedFd, bytes: usize) -> Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    BUFFER_LIMIT.check_capacity(bytes)?;
    setsockopt(send, sockopt::SndBuf, &bytes)
        .map_err(|e| Error::sys(format!("set SO_SNDBUF to {bytes} bytes"), e))?;
    setsockopt(recv, sockopt::RcvBuf, &bytes)
        .map_err(|e| Error::sys(format!("set SO_RCVBUF to {bytes} bytes"), e))?;
    Ok(())
}

/// The sending end over `fd`, which shuts its direction down when dropped.
fn sender(fd: OwnedFd, max: usize) -> Result<FdSender> {
    Ok(FdSender::new(fd, max)?.shutdown_on_drop())
}

/// Refuses to hand over a receiver that has read part of the stream.
fn check_fresh(end: &FdReceiver) -> Result<()> {
    if end.buffered_bytes() > 0 {
        return Err(Error::BadEndpoint(
            "a socket receiver that has read part of the stream cannot be handed over: its child would start inside a frame".into(),
        ));
    }
    Ok(())
}

/// Checks that an fd handed over is a connected stream socket.
fn check_socket(fd: &OwnedFd) -> Result<()> {
    use nix::sys::socket::{getsockopt, sockopt};
    match getsockopt(&fd.as_fd(), sockopt::SockType) {
        Ok(nix::sys::socket::SockType::Stream) => Ok(()),
        Ok(other) => Err(Error::BadEndpoint(format!(
            "the handed-over fd is a {other:?} socket, not a stream socket"
        ))),
        Err(e) => Err(Error::BadEndpoint(format!(
            "the handed-over fd is not a socket ({e})"
        ))),
    }
}

macro_rules! socket_transport {
    ($(#[$doc:meta])* $ty:ident, $variant:literal, $pair:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $ty;

        impl Transport for $ty {
            const NAME: &'static str = "sockets";
            const VARIANT: &'static str = $variant;
            const MODES: &'static [Mode] = &[Mode::Process, Mode::Thread];
            type Sender = FdSender;
            type Receiver = FdReceiver;

            fn channel(mode: Mode, opts: &Options) -> Result<(FdSender, FdReceiver)> {
                check_mode::<Self>(mode)?;
                let (send, recv) = $pair()?;
                if let Some(bytes) = opts.capacity {
                    set_buffers(&send, &recv, bytes)?;
                }
                Ok((sender(send, opts.max_message)?, FdReceiver::new(recv, opts.max_message)))
            }

            fn message_limit() -> Limit {
                FRAME_LIMIT
            }

            fn capacity_limit() -> Limit {
                BUFFER_LIMIT
            }

            fn export_sender(end: FdSender, handover: &mut Handover) -> Result<Endpoint> {
                let max = ipc_core::Sender::max_message(&end);
                let mut ep = Endpoint::new(Self::NAME, Self::VARIANT, max);
                handover.add_fd(&mut ep, end.into_fd()?);
                Ok(ep)
            }

            fn export_receiver(end: FdReceiver, handover: &mut Handover) -> Result<Endpoint> {
                check_fresh(&end)?;
                let max = ipc_core::Receiver::max_message(&end);
                let mut ep = Endpoint::new(Self::NAME, Self::VARIANT, max);
                handover.add_fd(&mut ep, end.into_fd());
                Ok(ep)
            }

            fn open_sender(mut ep: Endpoint) -> Result<FdSender> {
                ep.expect(Self::NAME, Self::VARIANT)?;
                let fd = ep.take_fd(0)?;
                check_socket(&fd)?;
                sender(fd, ep.max_message)
            }

            fn open_receiver(mut ep: Endpoint) -> Result<FdReceiver> {
                ep.expect(Self::NAME, Self::VARIANT)?;
                let fd = ep.take_fd(0)?;
                check_socket(&fd)?;
                Ok(FdReceiver::new(fd, ep.max_message))
            }
        }
    };
}

socket_transport!(
    /// A Unix domain stream socket (`interprocess` local sockets, abstract
    /// name), framed messages, process or thread mode.
    Uds,
    "uds",
    pair::uds_pair
);

socket_transport!(
    /// A TCP connection over loopback (`TCP_NODELAY`), framed messages,
    /// process or thread mode; `serve` and `--connect` take it to another
    /// host.
    Tcp,
    "tcp",
    pair::tcp_pair
);
