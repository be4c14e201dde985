//! A connected pair of stream sockets, made in this process: a listener,
//! a connection to it, and the accepted end, checked to be that very
//! connection (and, for a Unix socket, a process of this user) before the
//! listener goes.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;

use interprocess::local_socket::traits::{Listener as _, StreamCommon as _};
use interprocess::local_socket::{ConnectOptions, GenericNamespaced, ListenerOptions, ToNsName};
use interprocess::os::unix::uds_local_socket::{Listener as UdsListener, Stream as UdsStream};
use ipc_core::{Error, Result};

/// Strangers a pair accepts (and closes) before it gives up on its own
/// connection.
const STRANGERS: usize = 16;

/// A connected Unix domain stream socket pair: `(connecting end, accepted
/// end)`, through a listener on a fresh abstract name
/// (`ipc-showcase.sockets.<pid>.<start>.<random>`, gone with the listener,
/// so a crash leaves no socket file).
pub fn uds_pair() -> Result<(OwnedFd, OwnedFd)> {
    let name = ipc_core::names::unique_name("sockets");
    let listener = uds_listen(&name)?;
    uds_pair_on(&listener, &name)
}

/// Listens on the abstract name `name`.
pub fn uds_listen(name: &str) -> Result<UdsListener> {
    let ns_name = name
        .to_ns_name::<GenericNamespaced>()
        .map_err(|e| Error::io(format!("name the socket {name}"), e))?;
    ListenerOptions::new()
        .name(ns_name)
        .create_sync_as()
        .map_err(|e| Error::io(format!("listen on the abstract socket {name}"), e))
}

/// Connects to `listener` (on `name`) and accepts that connection.
fn uds_pair_on(listener: &UdsListener, name: &str) -> Result<(OwnedFd, OwnedFd)> {
    let ns_name = name
        .to_ns_name::<GenericNamespaced>()
        .map_err(|e| Error::io(format!("name the socket {name}"), e))?;
    let client: UdsStream = ConnectOptions::new()
        .name(ns_name)
        .connect_sync_as()
        .map_err(|e| Error::io(format!("connect to the abstract socket {name}"), e))?;
    check_same_user(&client, "the listener")?;
    let me = std::process::id();
    for _ in 0..STRANGERS {
        let accepted: UdsStream = listener
            .accept()
            .map_err(|e| Error::io(format!("accept on the abstract socket {name}"), e))?;
        // Anyone in this network namespace can connect to an abstract name:
        // only our own connection, from this process, is the pair.
        let creds = accepted
            .peer_creds()
            .map_err(|e| Error::io("read the peer's credentials (SO_PEERCRED)", e))?;
        if creds.pid().is_some_and(|p| p as u32 == me) {
            check_same_user(&accepted, "the connecting process")?;
            return Ok((client.into(), accepted.into()));
        }
    }
    Err(Error::io(
        format!("connect to the abstract socket {name}"),
        io::Error::other(format!("{STRANGERS} other processes connected first")),
    ))
}

/// Refuses a peer of another user: an abstract socket has no file mode.
pub fn check_same_user(stream: &UdsStream, who: &str) -> Result<()> {
    let creds = stream
        .peer_creds()
        .map_err(|e| Error::io("read the peer's credentials (SO_PEERCRED)", e))?;
    let mine = nix::unistd::geteuid().as_raw();
    match creds.euid() {
        Some(uid) if uid == mine => Ok(()),
        other => Err(Error::io(
            "check the peer's credentials",
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{who} runs as uid {other:?}, this process as {mine}: refused"),
            ),
        )),
    }
}

/// A connected TCP pair over loopback, `TCP_NODELAY` on both: `(connecting
/// end, accepted end)`. Any local process could connect to the port
/// first; the accepted connection is the one whose address is our
/// connecting end's.
pub fn tcp_pair() -> Result<(OwnedFd, OwnedFd)> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(|e| Error::io("listen on a loopback TCP port", e))?;
    tcp_pair_on(&listener)
}

/// Connects to `listener` and accepts that connection.
fn tcp_pair_on(listener: &TcpListener) -> Result<(OwnedFd, OwnedFd)> {
    let at = listener
        .local_addr()
        .map_err(|e| Error::io("read the listening port", e))?;
    let client = TcpStream::connect(at).map_err(|e| Error::io(format!("connect to {at}"), e))?;
    let mine = client
        .local_addr()
        .map_err(|e| Error::io("read the connecting address", e))?;
    for _ in 0..STRANGERS {
        let (accepted, from) = listener
            .accept()
            .map_err(|e| Error::io(format!("accept on {at}"), e))?;
        if from == mine {
            for s in [&client, &accepted] {
                s.set_nodelay(true)
                    .map_err(|e| Error::io("set TCP_NODELAY", e))?;
            }
            return Ok((client.into(), accepted.into()));
        }
    }
    Err(Error::io(
        format!("connect to {at}"),
        io::Error::other(format!("{STRANGERS} other connections came first")),
    ))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    #[test]
    fn both_pairs_carry_bytes_both_ways() {
        for (a, b) in [
            super::uds_pair().expect("uds"),
            super::tcp_pair().expect("tcp"),
        ] {
            let (mut a, mut b) = (std::fs::File::from(a), std::fs::File::from(b));
            a.write_all(b"ping").expect("write");
            let mut got = [0u8; 4];
            b.read_exact(&mut got).expect("read");
            assert_eq!(&got, b"ping");
            b.write_all(b"pong").expect("write back");
            a.read_exact(&mut got).expect("read back");
            assert_eq!(&got, b"pong");
        }
    }

    #[test]
    fn a_tcp_stranger_connecting_first_is_not_taken_for_the_pair() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let stranger =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("stranger");
        let (a, b) = super::tcp_pair_on(&listener).expect("tcp");
        let (a, b) = (std::net::TcpStream::from(a), std::net::TcpStream::from(b));
        assert_eq!(a.local_addr().ok(), b.peer_addr().ok());
        assert_ne!(stranger.local_addr().ok(), b.peer_addr().ok());
    }

    #[test]
    fn a_unix_stranger_from_another_process_is_not_taken_for_the_pair() {
        use std::os::linux::net::SocketAddrExt;
        let name = ipc_core::names::unique_name("sockets");
        let listener = super::uds_listen(&name).expect("listen");
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        // The stranger: a child that connects, says so, and waits.
        let (ready_r, ready_w) = nix::unistd::pipe().expect("pipe");
        // SAFETY: the child only connects, writes a byte and sleeps, then
        // _exits; it allocates nothing the parent's threads could hold a
        // lock on (the address was made before the fork).
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                let held = std::os::unix::net::UnixStream::connect_addr(&addr);
                let _ = nix::unistd::write(&ready_w, &[u8::from(held.is_ok())]);
                std::thread::sleep(std::time::Duration::from_secs(5));
                // SAFETY: ends the child at once, running nothing of the parent's.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(ready_w);
                let mut byte = [0u8];
                nix::unistd::read(&ready_r, &mut byte).expect("the stranger's word");
                assert_eq!(byte[0], 1, "the stranger could not connect");
                let (a, b) = super::uds_pair_on(&listener, &name).expect("uds");
                let (a, b) = (
                    std::os::unix::net::UnixStream::from(a),
                    std::os::unix::net::UnixStream::from(b),
                );
                b.set_read_timeout(Some(std::time::Duration::from_secs(3)))
                    .expect("a read timeout");
                (&a).write_all(b"x").expect("write");
                let mut got = [0u8];
                (&b).read_exact(&mut got).expect("our own connection");
                let _ = nix::sys::signal::kill(child, nix::sys::signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(child, None);
            }
        }
    }
}
